-- Contract 1.1, "Notification dispatch": notifications reach customers (e-mail, signed webhooks,
-- SMS and WeChat gateways, call-backs), every try recorded, nothing dropped silently.
--
-- customer_notifications is the dispatch outbox: a pending row is due at next_attempt_at (now
-- for a new one, the end of quiet hours, the next retry). A dispatcher claims due rows with
-- FOR UPDATE SKIP LOCKED and leases them by moving next_attempt_at past its send timeout, so
-- several hubs share the work and a crashed one's rows come back after the lease.

ALTER TABLE customer_notifications
    ADD COLUMN next_attempt_at  timestamptz DEFAULT now(),  -- NULL: not due by time (a call-back waits for its task)
    ADD COLUMN attempts         integer NOT NULL DEFAULT 0,  -- tries in the current schedule
    ADD COLUMN last_error       text,
    ADD COLUMN sent_at          timestamptz,
    ADD COLUMN failed_at        timestamptz,
    ADD COLUMN suppressed_at    timestamptz,
    ADD COLUMN call_task_id     uuid;                        -- phone: the call_centre task that delivers it
UPDATE customer_notifications SET next_attempt_at = created_at WHERE status = 'pending';
UPDATE customer_notifications SET next_attempt_at = NULL WHERE status <> 'pending';

ALTER TABLE customer_notifications DROP CONSTRAINT customer_notifications_channel_check;
ALTER TABLE customer_notifications ADD CONSTRAINT customer_notifications_channel_check
    CHECK (channel IN ('sms', 'email', 'wechat', 'phone', 'webhook'));

DROP INDEX notifications_pending;
CREATE INDEX notifications_due ON customer_notifications (next_attempt_at) WHERE status = 'pending';
CREATE INDEX notifications_calling ON customer_notifications (call_task_id)
    WHERE status = 'pending' AND call_task_id IS NOT NULL;
CREATE INDEX notifications_customer ON customer_notifications (customer_id, created_at);

-- Every try: what was sent where, what came back, how long it took.
CREATE TABLE notification_attempts (
    notification_id  uuid NOT NULL,
    attempt          integer NOT NULL,       -- 1, 2, ... over the notification's whole life
    at               timestamptz NOT NULL,
    outcome          text NOT NULL CHECK (outcome IN ('sent', 'retry', 'failed')),
    status_code      integer,                -- HTTP or SMTP code, when there was one
    error            text,                   -- readable, no secrets
    duration_ms      integer NOT NULL,
    PRIMARY KEY (notification_id, attempt)
);

-- The register gains what dispatch needs (all optional in the CSV).
ALTER TABLE customers
    ADD COLUMN webhook_url          text,
    ADD COLUMN webhook_disabled_at  timestamptz,    -- the endpoint answered 410 Gone
    ADD COLUMN timezone             text,           -- for quiet hours; NULL: HUB_TIMEZONE
    ADD COLUMN quiet_hours          text CHECK (quiet_hours ~ '^[0-2][0-9]:[0-5][0-9]-[0-2][0-9]:[0-5][0-9]$'),
    ADD COLUMN credit_rating        text CHECK (credit_rating IN ('A', 'B', 'C', 'D')),
    ADD COLUMN account_manager      text;
ALTER TABLE customers DROP CONSTRAINT customers_preferred_channel_check;
ALTER TABLE customers ADD CONSTRAINT customers_preferred_channel_check
    CHECK (preferred_channel IN ('sms', 'email', 'wechat', 'phone', 'webhook'));

-- Standard Webhooks secrets (whsec_...). During a rotation the old one keeps signing until it
-- expires, so receivers can switch without a gap. Never imported from CSV, never printed again.
CREATE TABLE webhook_secrets (
    id           bigserial PRIMARY KEY,
    customer_id  text NOT NULL,
    secret       text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz            -- NULL: active until rotated
);
CREATE INDEX webhook_secrets_customer ON webhook_secrets (customer_id, created_at);
