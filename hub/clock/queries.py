"""Named SQL of the clock. Every candidate query walks one partial index on a due moment, so a
tick costs what is due, not what exists."""

LEADER_LOCK = 0x6875625F636C6B  # "hub_clk": one `hub run` per database ticks the clock on its schedule
TICK_LOCK = 0x6875625F74636B  # "hub_tck": one tick at a time, whoever evaluates (hub run, hub tick, demo)
TRY_LOCK = "SELECT pg_try_advisory_lock($1)"
UNLOCK = "SELECT pg_advisory_unlock($1)"

# What is due by $1, oldest first, at most $2 (each branch matches one partial index of 0005),
# less the subjects $4-$8 (SLA tasks; stale, overdue, survey shipments; follow-up tasks): those of a
# chunk still being applied while the next one is read (engine._fire_overlapped).
DUE = """
(SELECT 'sla_warning' AS kind, task_id::text AS subject, warn_at AS moment FROM coordination_tasks
 WHERE warn_at <= $1 AND status IN ('open', 'in_progress') AND escalation_level = 0 AND warned_at IS NULL
   AND task_id <> ALL($4::uuid[])
 ORDER BY warn_at LIMIT $2)
UNION ALL
(SELECT 'sla_breach', task_id::text, due_at FROM coordination_tasks
 WHERE due_at <= $1 AND status IN ('open', 'in_progress') AND escalation_level = 0 AND task_id <> ALL($4::uuid[])
 ORDER BY due_at LIMIT $2)
UNION ALL
(SELECT 'sla_breach', task_id::text, escalate_at FROM coordination_tasks
 WHERE escalate_at <= $1 AND status IN ('open', 'in_progress') AND escalation_level = 1
   AND task_id <> ALL($4::uuid[])
 ORDER BY escalate_at LIMIT $2)
UNION ALL
(SELECT 'stale_shipment', shipment_id, stale_at FROM shipments
 WHERE stale_at <= $1 AND shipment_id <> ALL($5::text[])
 ORDER BY stale_at LIMIT $2)
UNION ALL
(SELECT 'delivery_overdue', shipment_id, overdue_at FROM shipments
 WHERE overdue_at <= $1 AND shipment_id <> ALL($6::text[])
 ORDER BY overdue_at LIMIT $2)
UNION ALL
(SELECT 'delivery_survey', shipment_id, survey_at FROM shipments
 WHERE survey_at <= $1 AND shipment_id <> ALL($7::text[])
 ORDER BY survey_at LIMIT $2)
UNION ALL
(SELECT 'complaint_follow_up', task_id::text, follow_up_at + $3 * interval '1 hour' FROM coordination_tasks
 WHERE follow_up_at <= $1 - $3 * interval '1 hour' AND task_id <> ALL($8::uuid[])
 ORDER BY follow_up_at LIMIT $2)
ORDER BY moment, kind, subject
LIMIT $2
"""

# The per-shipment locks of a chunk in one round trip: the shipments $1 and those of the tasks $2,
# the same keys in the same order as hub.store.queries.LOCK_SHIPMENTS (which the batch store takes).
LOCK_CHUNK_SHIPMENTS = """
SELECT pg_advisory_xact_lock(k)
FROM (SELECT DISTINCT hashtextextended(s, 7) AS k
      FROM (SELECT unnest($1::text[])
            UNION ALL
            SELECT shipment_id FROM coordination_tasks WHERE task_id = ANY($2::uuid[]) AND shipment_id IS NOT NULL)
           AS chunk(s)
      ORDER BY 1) AS keys
"""

SELECT_TASKS_FOR_UPDATE = """
SELECT task_id::text, department, kind, severity, status, shipment_id, customer_id, opened_at, due_at, warn_at,
       escalate_at, warned_at, escalation_level, follow_up_at
FROM coordination_tasks WHERE task_id = ANY($1::uuid[]) ORDER BY task_id FOR UPDATE
"""

UPDATE_TASKS = """
UPDATE coordination_tasks AS t
SET severity = u.severity, escalation_level = u.level, warned_at = coalesce(t.warned_at, u.warned_at),
    breached_at = coalesce(t.breached_at, u.breached_at), updated_at = now()
FROM unnest($1::uuid[], $2::text[], $3::smallint[], $4::timestamptz[], $5::timestamptz[])
     AS u(task_id, severity, level, warned_at, breached_at)
WHERE t.task_id = u.task_id
"""

UPDATE_SHIPMENT_TIMERS = """
UPDATE shipments AS s SET stale_at = u.stale_at, overdue_at = u.overdue_at, survey_at = u.survey_at
FROM unnest($1::text[], $2::timestamptz[], $3::timestamptz[], $4::timestamptz[])
     AS u(shipment_id, stale_at, overdue_at, survey_at)
WHERE s.shipment_id = u.shipment_id
"""

FOLLOW_UPS_DONE = "UPDATE coordination_tasks SET follow_up_at = NULL WHERE task_id = ANY($1::uuid[])"

LAST_SURVEYS = """
SELECT customer_id, max(created_at) AS at FROM customer_notifications
WHERE kind = 'satisfaction_survey' AND customer_id = ANY($1::text[])
GROUP BY customer_id
"""

# Customers with a shipment of the period (its created event in it) whose statement is not built yet.
STATEMENTS_TO_BUILD = """
SELECT c.customer_id, c.tier, c.language, c.preferred_channel FROM customers AS c
WHERE c.customer_id IN (
    SELECT s.customer_id FROM shipment_events AS e JOIN shipments AS s USING (shipment_id)
    WHERE e.status = 'created' AND e.occurred_at >= $1 AND e.occurred_at < $2)
  AND NOT EXISTS (SELECT 1 FROM clock_firings AS f
                  WHERE f.timer = 'monthly_statement' AND f.subject = c.customer_id AND f.key = $3)
ORDER BY c.customer_id
LIMIT $4
"""

STORE_REPORT = """
INSERT INTO reports (kind, period, customer_id, format, content, as_of) VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (kind, period, customer_id, format)
DO UPDATE SET content = EXCLUDED.content, as_of = EXCLUDED.as_of, created_at = now()
"""

DELAY_NOTIFIED = """
SELECT DISTINCT shipment_id FROM customer_notifications WHERE shipment_id = ANY($1::text[]) AND kind = $2
"""

# The record that each timer fired; RETURNING tells which are new (a firing already recorded
# has had its effects: they are not written again).
RECORD_FIRINGS = """
INSERT INTO clock_firings (timer, subject, key, due_at, fired_at)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[], $5::timestamptz[])
ON CONFLICT DO NOTHING
RETURNING timer, subject, key
"""

PERIOD_SWEPT = "SELECT EXISTS (SELECT 1 FROM clock_periods WHERE timer = $1 AND period = $2)"
MARK_PERIOD_SWEPT = "INSERT INTO clock_periods (timer, period, swept_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING"

# Key accounts not yet reviewed in the period, a chunk at a time.
KEY_ACCOUNTS_TO_REVIEW = """
SELECT c.customer_id, c.tier, c.language, c.preferred_channel FROM customers AS c
WHERE c.tier = $1 AND NOT EXISTS (
    SELECT 1 FROM clock_firings AS f WHERE f.timer = $2 AND f.subject = c.customer_id AND f.key = $3)
ORDER BY c.customer_id
LIMIT $4
"""
