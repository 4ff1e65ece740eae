"""Named SQL of the hub's hot path. Values are always bound parameters.

Bulk writes take one JSON array of row objects (`json_populate_recordset`): asyncpg encodes a
JSON text in one step, where a dozen typed arrays cost it an isinstance check per element.
bytea travels as "\\x<hex>", jsonb columns as nested JSON.
"""

LOCK_SHIPMENTS = """
SELECT pg_advisory_xact_lock(k)
FROM (SELECT DISTINCT hashtextextended(s, 7) AS k FROM unnest($1::text[]) AS s ORDER BY 1) AS keys
"""

INSERT_INBOX = """
INSERT INTO inbox (event_id, topic, payload_hash, partition, "offset")
SELECT event_id, topic, payload_hash, partition, "offset" FROM json_populate_recordset(NULL::inbox, $1::json)
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""

# Lookups by key look up each id of the list on its own (a LATERAL subquery with LIMIT 1, which the
# planner cannot turn into a join). `= ANY($1)` on a table the planner believes small was a
# sequential scan comparing every row with every id (25 ms for 1,500 ids against 2,000 rows); a
# join of the id list fared no better on a table grown since its last ANALYZE (a fresh database,
# a deployment's first minute): a generic plan made while it was small scanned it whole for every
# batch, 0.1 ms growing to 2.3 ms within 30,000 shipments for 40 ids, and a custom plan hashed it
# (9.4 ms for 500 ids). The index lookups stay at 0.4 ms and 1.9 ms (bench/README.md).
SELECT_INBOX = """
SELECT i.event_id, i.topic, i.payload_hash
FROM unnest($1::text[]) AS k(id)
CROSS JOIN LATERAL (SELECT * FROM inbox WHERE inbox.event_id = k.id LIMIT 1) AS i
"""

SELECT_SHIPMENTS = """
SELECT s.shipment_id, s.customer_id, s.order_id, s.status, s.last_event_at, s.promised_delivery_at, s.eta,
       s.eta_reported_at, s.eta_alerted, s.carrier_id, s.priority, s.notified_milestones, s.repeat_contact_fired,
       s.stale_at, s.overdue_at, s.survey_at
FROM unnest($1::text[]) AS k(id)
CROSS JOIN LATERAL (SELECT * FROM shipments WHERE shipments.shipment_id = k.id LIMIT 1) AS s
"""

SELECT_CUSTOMERS = """
SELECT c.customer_id, c.tier, c.language, c.preferred_channel
FROM unnest($1::text[]) AS k(id)
CROSS JOIN LATERAL (SELECT * FROM customers WHERE customers.customer_id = k.id LIMIT 1) AS c
"""

SELECT_CONTACTS = """
SELECT event_id, shipment_id, occurred_at FROM call_logs
WHERE shipment_id = ANY($1::text[]) AND direction = 'inbound' AND category = ANY($2::text[])
  AND occurred_at BETWEEN $3 AND $4
"""

INSERT_CUSTOMERS = """
INSERT INTO customers (customer_id, registered_by)
SELECT c, 'auto' FROM unnest($1::text[]) AS c
ON CONFLICT (customer_id) DO NOTHING
"""

UPSERT_SHIPMENTS = """
INSERT INTO shipments (shipment_id, customer_id, order_id, status, last_event_at, promised_delivery_at, eta,
                       eta_reported_at, eta_alerted, carrier_id, priority, notified_milestones,
                       repeat_contact_fired, stale_at, overdue_at, survey_at, updated_at)
SELECT shipment_id, customer_id, order_id, status, last_event_at, promised_delivery_at, eta, eta_reported_at,
       eta_alerted, carrier_id, priority, notified_milestones, repeat_contact_fired, stale_at, overdue_at, survey_at,
       now()
FROM json_populate_recordset(NULL::shipments, $1::json)
ON CONFLICT (shipment_id) DO UPDATE SET
    customer_id = EXCLUDED.customer_id, order_id = EXCLUDED.order_id, status = EXCLUDED.status,
    last_event_at = EXCLUDED.last_event_at, promised_delivery_at = EXCLUDED.promised_delivery_at,
    eta = EXCLUDED.eta, eta_reported_at = EXCLUDED.eta_reported_at, eta_alerted = EXCLUDED.eta_alerted,
    carrier_id = EXCLUDED.carrier_id, priority = EXCLUDED.priority,
    notified_milestones = EXCLUDED.notified_milestones, repeat_contact_fired = EXCLUDED.repeat_contact_fired,
    stale_at = EXCLUDED.stale_at, overdue_at = EXCLUDED.overdue_at, survey_at = EXCLUDED.survey_at,
    updated_at = now()
"""

# Tasks raised before their shipment's customer was known, with their event's time (contract 1.1).
SELECT_ORPHAN_TASKS = """
SELECT t.task_id::text, t.shipment_id, t.rule, t.severity, t.source_event_id, t.details::text AS details,
       t.status IN ('open', 'in_progress') AS active, coalesce(e.occurred_at, t.created_at) AS occurred_at
FROM coordination_tasks AS t LEFT JOIN shipment_events AS e ON e.event_id = t.source_event_id
WHERE t.shipment_id = ANY($1::text[]) AND t.customer_id IS NULL
ORDER BY t.created_at, t.task_id
"""

UPDATE_TASK_SEVERITIES = """
UPDATE coordination_tasks AS t
SET severity = u.severity, due_at = u.due_at, warn_at = u.warn_at, escalate_at = u.escalate_at, updated_at = now()
FROM unnest($1::uuid[], $2::text[], $3::timestamptz[], $4::timestamptz[], $5::timestamptz[])
     AS u(task_id, severity, due_at, warn_at, escalate_at)
WHERE t.task_id = u.task_id
"""

ADOPT_TASKS = """
UPDATE coordination_tasks AS t SET customer_id = u.c, updated_at = now()
FROM unnest($1::text[], $2::text[]) AS u(s, c)
WHERE t.shipment_id = u.s AND t.customer_id IS NULL
"""

INSERT_OUTBOX = """
INSERT INTO outbox (topic, key, value, headers, message_id)
SELECT topic, key, value, headers, message_id FROM json_populate_recordset(NULL::outbox, $1::json)
"""

INSERT_DEAD_LETTERS = """
INSERT INTO dead_letters (id, source_topic, source_partition, source_offset, value_hash, reason, error_class,
                          message, key, value, headers)
SELECT id, source_topic, source_partition, source_offset, value_hash, reason, error_class, message, key, value,
       headers
FROM json_populate_recordset(NULL::dead_letters, $1::json)
ON CONFLICT DO NOTHING
RETURNING id
"""

NOTIFY_OUTBOX = "SELECT pg_notify('hub_outbox', '')"
NOTIFY_DISPATCH = "SELECT pg_notify('hub_dispatch', '')"

# The stored copy of an event whose redelivery has other bytes, to compare their content.
SELECT_STORED_PAYLOAD = """
SELECT payload::text FROM shipment_events WHERE event_id = $1
UNION ALL
SELECT payload::text FROM call_logs WHERE event_id = $1
"""

# Rows only a fresh event (one the inbox has just accepted) can produce never conflict, so they
# are streamed with binary COPY: the cheapest write for Postgres, no SQL text to parse per row.
COPY_SHIPMENT_EVENTS = ("shipment_events", ("event_id", "shipment_id", "topic", "status", "occurred_at", "payload"))
COPY_CALL_LOGS = (
    "call_logs",
    (
        "event_id",
        "call_id",
        "customer_id",
        "shipment_id",
        "direction",
        "channel",
        "category",
        "occurred_at",
        "payload",
        "satisfaction_score",
        "reference",
    ),
)
COPY_TASKS = (
    "coordination_tasks",
    (
        "task_id",
        "department",
        "kind",
        "severity",
        "shipment_id",
        "customer_id",
        "title",
        "details",
        "opened_at",
        "due_at",
        "warn_at",
        "escalate_at",
        "source_event_id",
        "rule",
        "alert_id",
    ),
)
COPY_TASK_EVENTS = ("task_events", ("task_id", "at", "actor", "action", "detail"))
COPY_NOTIFICATIONS = (
    "customer_notifications",
    (
        "notification_id",
        "customer_id",
        "shipment_id",
        "kind",
        "channel",
        "language",
        "body",
        "source_event_id",
        "statement_period",
    ),
)
COPY_OUTBOX = ("outbox", ("topic", "key", "value", "headers", "message_id"))

# Unpublished outbox rows and the age of the oldest, on the database's own clock (metrics, demo).
OUTBOX_BACKLOG = """
SELECT count(*) AS rows,
       coalesce(extract(epoch FROM now() - min(created_at)), 0)::float8 AS oldest_age_s
FROM outbox WHERE sent_at IS NULL
"""

# Open work per department and severity, for the SLA gauges (the partial index on open tasks).
TASK_GAUGES = """
SELECT department, severity, count(*) AS open, count(*) FILTER (WHERE due_at < now()) AS overdue,
       count(*) FILTER (WHERE escalation_level = 1) AS level_1, count(*) FILTER (WHERE escalation_level = 2) AS level_2
FROM coordination_tasks WHERE status IN ('open', 'in_progress')
GROUP BY department, severity
"""
