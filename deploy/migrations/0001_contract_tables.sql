-- The contract's tables (../shared/spec/CONTRACT.md, "Postgres (outbound)") plus what
-- exactly-once processing needs: an inbox of processed event ids and an outbox of messages
-- still to publish. Every value the hub writes is bound as a parameter, never formatted in.

CREATE TABLE customers (
    customer_id        text PRIMARY KEY,
    name               text,
    tier               text NOT NULL DEFAULT 'standard' CHECK (tier IN ('key', 'standard')),
    language           text NOT NULL DEFAULT 'zh' CHECK (language IN ('zh', 'en')),
    preferred_channel  text NOT NULL DEFAULT 'sms' CHECK (preferred_channel IN ('sms', 'email', 'wechat', 'phone')),
    email              text,
    phone              text,
    registered_by      text NOT NULL DEFAULT 'import',  -- 'import' or 'auto' (unknown customer seen in an event)
    created_at         timestamptz NOT NULL DEFAULT now(),
    updated_at         timestamptz NOT NULL DEFAULT now()
);

-- The per-shipment tracking sheet.
CREATE TABLE shipments (
    shipment_id            text PRIMARY KEY,
    customer_id            text,
    order_id               text,
    status                 text,
    promised_delivery_at   timestamptz,
    eta                    timestamptz,
    eta_reported_at        timestamptz,           -- occurred_at of the update that gave `eta`
    eta_alerted            boolean NOT NULL DEFAULT false,
    carrier_id             text,
    priority               text,
    last_event_at          timestamptz,           -- occurred_at of the event that set `status`
    notified_milestones    text[] NOT NULL DEFAULT '{}',
    repeat_contact_fired   timestamptz[] NOT NULL DEFAULT '{}',
    updated_at             timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shipments_customer ON shipments (customer_id);

-- A shipment's full history across shipment.events and carrier.updates.
CREATE TABLE shipment_events (
    event_id      text PRIMARY KEY,
    shipment_id   text NOT NULL,
    topic         text NOT NULL,
    status        text NOT NULL,
    occurred_at   timestamptz NOT NULL,
    payload       jsonb NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX shipment_events_history ON shipment_events (shipment_id, occurred_at);

-- Contacts from call.logs: the customer's history and the repeat-contact rule's memory.
CREATE TABLE call_logs (
    event_id      text PRIMARY KEY,
    call_id       text NOT NULL,
    customer_id   text NOT NULL,
    shipment_id   text,
    direction     text NOT NULL,
    channel       text NOT NULL,
    category      text NOT NULL,
    occurred_at   timestamptz NOT NULL,
    payload       jsonb NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX call_logs_shipment ON call_logs (shipment_id, occurred_at) WHERE shipment_id IS NOT NULL;
CREATE INDEX call_logs_customer ON call_logs (customer_id, occurred_at);

CREATE TABLE coordination_tasks (
    task_id          uuid PRIMARY KEY,
    department       text NOT NULL CHECK (department IN ('warehouse', 'carrier_liaison', 'claims', 'complaints', 'key_accounts', 'dispatch')),
    kind             text NOT NULL,
    severity         text NOT NULL CHECK (severity IN ('P1', 'P2', 'P3', 'P4')),
    status           text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'in_progress', 'done', 'cancelled')),
    shipment_id      text,
    customer_id      text,
    title            text NOT NULL,
    details          jsonb NOT NULL DEFAULT '{}',
    due_at           timestamptz NOT NULL,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    source_event_id  text NOT NULL,
    rule             text NOT NULL,
    alert_id         uuid,
    claimed_by       text,
    claimed_at       timestamptz,
    resolved_by      text,
    resolved_at      timestamptz,
    UNIQUE (source_event_id, rule, kind)
);
CREATE INDEX tasks_open_by_department ON coordination_tasks (department, severity, due_at)
    WHERE status IN ('open', 'in_progress');
CREATE INDEX tasks_open_by_due ON coordination_tasks (due_at) WHERE status IN ('open', 'in_progress');
CREATE INDEX tasks_shipment ON coordination_tasks (shipment_id);
CREATE INDEX tasks_without_customer ON coordination_tasks (shipment_id) WHERE customer_id IS NULL;

CREATE TABLE customer_notifications (
    notification_id  uuid PRIMARY KEY,
    customer_id      text NOT NULL,
    shipment_id      text,
    kind             text NOT NULL,
    channel          text NOT NULL CHECK (channel IN ('sms', 'email', 'wechat', 'phone')),
    language         text NOT NULL CHECK (language IN ('zh', 'en')),
    body             text NOT NULL,
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'sent', 'failed', 'suppressed')),
    created_at       timestamptz NOT NULL DEFAULT now(),
    source_event_id  text NOT NULL,
    UNIQUE (source_event_id, kind)
);
CREATE INDEX notifications_pending ON customer_notifications (created_at) WHERE status = 'pending';
CREATE INDEX notifications_shipment ON customer_notifications (shipment_id);

-- Exactly-once: one row per processed event_id; the hash tells a redelivery from a conflict.
CREATE TABLE inbox (
    event_id      text PRIMARY KEY,
    topic         text NOT NULL,
    payload_hash  bytea NOT NULL,
    partition     integer NOT NULL,
    "offset"      bigint NOT NULL,
    processed_at  timestamptz NOT NULL DEFAULT now()
);

-- Messages to publish (alerts and dead letters), written in the same transaction as their cause.
CREATE TABLE outbox (
    id             bigserial PRIMARY KEY,
    topic          text NOT NULL,
    key            bytea,
    value          bytea NOT NULL,
    headers        jsonb NOT NULL DEFAULT '[]',  -- [[name, hex of value], ...]
    message_id     text NOT NULL,        -- alert_id, or the dead letter's id
    created_at     timestamptz NOT NULL DEFAULT now(),
    sent_at        timestamptz
);
CREATE INDEX outbox_unsent ON outbox (id) WHERE sent_at IS NULL;

-- A readable register of every dead letter (the topic holds the same records).
CREATE TABLE dead_letters (
    id                uuid PRIMARY KEY,
    source_topic      text NOT NULL,
    source_partition  integer NOT NULL,
    source_offset     bigint NOT NULL,
    value_hash        bytea NOT NULL,
    reason            text NOT NULL,
    error_class       text NOT NULL,
    message           text NOT NULL,
    key               bytea,
    value             bytea,
    created_at        timestamptz NOT NULL DEFAULT now(),
    replayed_at       timestamptz,
    UNIQUE (source_topic, source_partition, source_offset, value_hash)
);
CREATE INDEX dead_letters_reason ON dead_letters (reason, created_at);
