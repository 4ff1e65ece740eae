"""Named SQL of dispatch."""

DISPATCH_WAKE = "hub_dispatch"  # NOTIFY channel: notifications were written

# Claim due notices and lease them (next_attempt_at moves past the send timeout): several hubs
# share the work, and a crashed hub's notices come back when the lease ends.
CLAIM = """
WITH due AS (
    SELECT notification_id FROM customer_notifications
    WHERE status = 'pending' AND next_attempt_at <= $1
    ORDER BY next_attempt_at
    LIMIT $2
    FOR UPDATE SKIP LOCKED
)
UPDATE customer_notifications AS n SET next_attempt_at = $1 + make_interval(secs => $3)
FROM due WHERE n.notification_id = due.notification_id
RETURNING n.notification_id::text, n.kind, n.channel, n.language, n.body, n.customer_id, n.shipment_id,
          n.created_at, n.attempts, n.statement_period,
          -- the number of the last try over the notice's whole life (retry and resend keep counting)
          (SELECT max(a.attempt) FROM notification_attempts AS a WHERE a.notification_id = n.notification_id)
              AS last_attempt
"""

# The stored statements monthly_statement notices carry, by (customer, period).
STORED_STATEMENTS = """
SELECT r.customer_id, r.period, r.content
FROM reports AS r
JOIN unnest($1::text[], $2::text[]) AS wanted(customer_id, period)
  ON r.customer_id = wanted.customer_id AND r.period = wanted.period
WHERE r.kind = 'statement' AND r.format = 'json'
"""

# What the channels need of the notices' customers, with their active webhook secrets (newest
# first; several during a rotation): one round trip.
SELECT_CUSTOMERS = """
SELECT c.customer_id, c.name, c.tier, c.language, c.preferred_channel, c.email, c.phone, c.webhook_url,
       c.webhook_disabled_at IS NOT NULL AS webhook_disabled, c.timezone, c.quiet_hours,
       ARRAY(
           SELECT s.secret FROM webhook_secrets AS s
           WHERE s.customer_id = c.customer_id AND (s.expires_at IS NULL OR s.expires_at > $2)
           ORDER BY s.created_at DESC
       ) AS secrets
FROM customers AS c WHERE c.customer_id = ANY($1::text[])
"""

# The latest milestone notice per shipment (0 dispatched, 1 out for delivery, 2 delivered).
LATEST_MILESTONES = """
SELECT shipment_id, max(CASE kind WHEN 'dispatched' THEN 0 WHEN 'out_for_delivery' THEN 1 ELSE 2 END) AS rank
FROM customer_notifications
WHERE shipment_id = ANY($1::text[]) AND kind IN ('dispatched', 'out_for_delivery', 'delivered')
GROUP BY shipment_id
"""

RECORD_ATTEMPTS = """
INSERT INTO notification_attempts (notification_id, attempt, at, outcome, status_code, error, duration_ms)
SELECT * FROM unnest($1::uuid[], $2::int[], $3::timestamptz[], $4::text[], $5::int[], $6::text[], $7::int[])
ON CONFLICT DO NOTHING
"""

MARK_SENT = """
UPDATE customer_notifications AS n
SET status = 'sent', sent_at = u.at, next_attempt_at = NULL, attempts = n.attempts + 1, last_error = NULL
FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at)
WHERE n.notification_id = u.id AND n.status = 'pending'
"""

MARK_RETRY = """
UPDATE customer_notifications AS n
SET next_attempt_at = u.next_at, attempts = n.attempts + 1, last_error = u.error
FROM unnest($1::uuid[], $2::timestamptz[], $3::text[]) AS u(id, next_at, error)
WHERE n.notification_id = u.id AND n.status = 'pending'
"""

MARK_FAILED = """
UPDATE customer_notifications AS n
SET status = 'failed', failed_at = u.at, next_attempt_at = NULL, attempts = n.attempts + 1, last_error = u.error
FROM unnest($1::uuid[], $2::timestamptz[], $3::text[]) AS u(id, at, error)
WHERE n.notification_id = u.id AND n.status = 'pending'
"""

MARK_SUPPRESSED = """
UPDATE customer_notifications SET status = 'suppressed', suppressed_at = $2, next_attempt_at = NULL
WHERE notification_id = ANY($1::uuid[]) AND status = 'pending'
"""

# Wait (quiet hours, an open circuit): due again later, no try spent.
POSTPONE = """
UPDATE customer_notifications AS n SET next_attempt_at = u.at
FROM unnest($1::uuid[], $2::timestamptz[]) AS u(id, at)
WHERE n.notification_id = u.id AND n.status = 'pending'
"""

PARK_FOR_CALL = """
UPDATE customer_notifications AS n SET next_attempt_at = NULL, call_task_id = u.task_id
FROM unnest($1::uuid[], $2::uuid[]) AS u(id, task_id)
WHERE n.notification_id = u.id AND n.status = 'pending'
"""

DISABLE_WEBHOOKS = "UPDATE customers SET webhook_disabled_at = $2 WHERE customer_id = ANY($1::text[])"

# Call-backs whose task is closed: done delivered the notice, cancelled did not.
CALLS_CLOSED = """
SELECT n.notification_id::text, n.customer_id, n.shipment_id, n.kind, t.status, t.resolved_at, t.resolved_by
FROM customer_notifications AS n JOIN coordination_tasks AS t ON t.task_id = n.call_task_id
WHERE n.status = 'pending' AND n.call_task_id IS NOT NULL AND t.status IN ('done', 'cancelled')
LIMIT $1
"""

DISPATCH_LAG = """
SELECT coalesce(extract(epoch FROM $1 - min(next_attempt_at)), 0)::float8 AS lag_s
FROM customer_notifications WHERE status = 'pending' AND next_attempt_at <= $1
"""
