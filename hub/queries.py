"""Named SQL of the hub's hot path. Values are always bound parameters; arrays go through unnest."""

LOCK_SHIPMENTS = """
SELECT pg_advisory_xact_lock(k)
FROM (SELECT DISTINCT hashtextextended(s, 7) AS k FROM unnest($1::text[]) AS s ORDER BY 1) AS keys
"""

INSERT_INBOX = """
INSERT INTO inbox (event_id, topic, payload_hash, partition, "offset")
SELECT * FROM unnest($1::text[], $2::text[], $3::bytea[], $4::int[], $5::bigint[])
ON CONFLICT (event_id) DO NOTHING
RETURNING event_id
"""

SELECT_INBOX = "SELECT event_id, topic, payload_hash FROM inbox WHERE event_id = ANY($1::text[])"

SELECT_SHIPMENTS = """
SELECT shipment_id, customer_id, order_id, status, last_event_at, promised_delivery_at, eta,
       eta_reported_at, eta_alerted, carrier_id, priority, notified_milestones, repeat_contact_fired
FROM shipments WHERE shipment_id = ANY($1::text[])
"""

SELECT_CUSTOMERS = """
SELECT customer_id, tier, language, preferred_channel FROM customers WHERE customer_id = ANY($1::text[])
"""

SELECT_CONTACTS = """
SELECT shipment_id, occurred_at FROM call_logs
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
                       repeat_contact_fired, updated_at)
SELECT s, c, o, st, le, p, e, er, ea, ca, pr, string_to_array(nm, ','),
       string_to_array(rc, ',')::timestamptz[], now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::timestamptz[],
            $7::timestamptz[], $8::timestamptz[], $9::bool[], $10::text[], $11::text[], $12::text[], $13::text[])
     AS u(s, c, o, st, le, p, e, er, ea, ca, pr, nm, rc)
ON CONFLICT (shipment_id) DO UPDATE SET
    customer_id = EXCLUDED.customer_id, order_id = EXCLUDED.order_id, status = EXCLUDED.status,
    last_event_at = EXCLUDED.last_event_at, promised_delivery_at = EXCLUDED.promised_delivery_at,
    eta = EXCLUDED.eta, eta_reported_at = EXCLUDED.eta_reported_at, eta_alerted = EXCLUDED.eta_alerted,
    carrier_id = EXCLUDED.carrier_id, priority = EXCLUDED.priority,
    notified_milestones = EXCLUDED.notified_milestones, repeat_contact_fired = EXCLUDED.repeat_contact_fired,
    updated_at = now()
"""

INSERT_SHIPMENT_EVENTS = """
INSERT INTO shipment_events (event_id, shipment_id, topic, status, occurred_at, payload)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::jsonb[])
ON CONFLICT (event_id) DO NOTHING
"""

INSERT_CALL_LOGS = """
INSERT INTO call_logs (event_id, call_id, customer_id, shipment_id, direction, channel, category, occurred_at, payload)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::timestamptz[], $9::jsonb[])
ON CONFLICT (event_id) DO NOTHING
"""

INSERT_TASKS = """
INSERT INTO coordination_tasks (task_id, department, kind, severity, shipment_id, customer_id, title, details,
                                due_at, source_event_id, rule, alert_id)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],
                     $8::jsonb[], $9::timestamptz[], $10::text[], $11::text[], $12::uuid[])
ON CONFLICT DO NOTHING
"""

INSERT_NOTIFICATIONS = """
INSERT INTO customer_notifications (notification_id, customer_id, shipment_id, kind, channel, language, body,
                                    source_event_id)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[])
ON CONFLICT DO NOTHING
"""

ADOPT_TASKS = """
UPDATE coordination_tasks AS t SET customer_id = u.c, updated_at = now()
FROM unnest($1::text[], $2::text[]) AS u(s, c)
WHERE t.shipment_id = u.s AND t.customer_id IS NULL
"""

INSERT_OUTBOX = """
INSERT INTO outbox (topic, key, value, headers, message_id)
SELECT * FROM unnest($1::text[], $2::bytea[], $3::bytea[], $4::jsonb[], $5::text[])
"""

INSERT_DEAD_LETTERS = """
INSERT INTO dead_letters (id, source_topic, source_partition, source_offset, value_hash, reason, error_class,
                          message, key, value, headers)
SELECT * FROM unnest($1::uuid[], $2::text[], $3::int[], $4::bigint[], $5::bytea[], $6::text[], $7::text[],
                     $8::text[], $9::bytea[], $10::bytea[], $11::jsonb[])
ON CONFLICT DO NOTHING
RETURNING id
"""

NOTIFY_OUTBOX = "SELECT pg_notify('hub_outbox', '')"
