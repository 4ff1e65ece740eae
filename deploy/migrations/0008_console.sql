-- Contract 1.1, "Ops console": who may use `hub console`, their sessions, silences, and a record
-- of every action taken through it.
--
-- The application role has no DELETE (deploy/postgres-init/hub-roles.psql): a session ends by
-- being stamped `ended_at`, a silence by moving its `ends_at`; nothing here is ever deleted.

CREATE TABLE console_users (
    username             text PRIMARY KEY
                         CHECK (username ~ '^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$' AND lower(username) <> 'hub'),
    role                 text NOT NULL CHECK (role IN ('viewer', 'agent', 'supervisor', 'admin')),
    departments          text[] NOT NULL DEFAULT '{}',   -- empty: every department (not allowed for agents)
    password_hash        text NOT NULL,                   -- argon2id, PHC string
    failed_logins        integer NOT NULL DEFAULT 0,      -- in a row; 5 lock the account
    locked_until         timestamptz,
    disabled_at          timestamptz,
    password_changed_at  timestamptz NOT NULL DEFAULT now(),
    last_login_at        timestamptz,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now(),
    CHECK (role <> 'agent' OR cardinality(departments) > 0)
);

-- Server-side sessions: the cookie holds a random token, the table only its SHA-256, so a copy
-- of this table opens no session. Ended by logout, by disabling the user or changing their
-- password, and after 12 h without a request.
CREATE TABLE console_sessions (
    token_hash    bytea PRIMARY KEY,
    username      text NOT NULL REFERENCES console_users (username),
    csrf_token    text NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now(),
    last_seen_at  timestamptz NOT NULL DEFAULT now(),
    ended_at      timestamptz,
    ended_why     text,
    client        text            -- the address it was opened from (X-Forwarded-For from trusted proxies)
);
CREATE INDEX console_sessions_live ON console_sessions (username) WHERE ended_at IS NULL;

-- Silences: while one is active (now < ends_at), alerts it matches are written to the outbox
-- already marked sent, with silenced_by naming it, so the relay never publishes them. Tasks and
-- notifications are unaffected. At least one matcher field is set.
CREATE TABLE silences (
    id           bigserial PRIMARY KEY,
    queue        text,
    kind         text,
    department   text,
    carrier_id   text,
    customer_id  text,
    shipment_id  text,
    author       text NOT NULL,
    comment      text NOT NULL CHECK (btrim(comment) <> ''),
    created_at   timestamptz NOT NULL DEFAULT now(),
    ends_at      timestamptz NOT NULL,
    expired_by   text,          -- who ended it early, if anyone
    CHECK (num_nonnulls(queue, kind, department, carrier_id, customer_id, shipment_id) > 0),
    CHECK (ends_at > created_at OR expired_by IS NOT NULL)
);
CREATE INDEX silences_active ON silences (ends_at);

ALTER TABLE outbox ADD COLUMN silenced_by bigint REFERENCES silences (id);

-- Every action taken through the console or `hub users`, with its user; append-only like
-- task_events (task changes are in task_events too, with the same user as actor).
CREATE TABLE console_audit (
    id       bigserial PRIMARY KEY,
    at       timestamptz NOT NULL DEFAULT clock_timestamp(),
    actor    text NOT NULL,       -- the console user, or 'cli:<os user>' for `hub users`
    action   text NOT NULL,       -- login, login_failed, locked, logout, task_claimed, silence_created, ...
    subject  text,                -- what it acted on: a task id, a silence id, a dead letter id, a user
    detail   jsonb NOT NULL DEFAULT '{}',
    client   text
);
CREATE INDEX console_audit_at ON console_audit (at);
CREATE INDEX console_audit_actor ON console_audit (actor, at);

CREATE FUNCTION hub_refuse_audit_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'console_audit is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER console_audit_append_only BEFORE UPDATE OR DELETE ON console_audit
    FOR EACH ROW EXECUTE FUNCTION hub_refuse_audit_change();
CREATE TRIGGER console_audit_no_truncate BEFORE TRUNCATE ON console_audit
    FOR EACH STATEMENT EXECUTE FUNCTION hub_refuse_audit_change();

-- The console's lists of tasks, each read in its order from an index and cut at a page, never sorted
-- whole: the queues page (open work, breached first: level 2, 1, then by due time), the tasks page
-- (by severity, then due time, whatever the status filter; hub/ops/tasks.tasks_query).
CREATE INDEX tasks_open_by_urgency ON coordination_tasks (escalation_level DESC, due_at)
    WHERE status IN ('open', 'in_progress');
CREATE INDEX tasks_by_severity ON coordination_tasks (severity, due_at, task_id);
-- The queues page's counts of open work per rule and severity: an index-only scan of open tasks.
CREATE INDEX tasks_open_board ON coordination_tasks (rule, severity) INCLUDE (escalation_level, due_at, warned_at, alert_id)
    WHERE status IN ('open', 'in_progress');
-- The console's customer page: a customer's open tasks.
CREATE INDEX tasks_open_by_customer ON coordination_tasks (customer_id)
    WHERE status IN ('open', 'in_progress');
-- How many alerts each silence held back (the silences page).
CREATE INDEX outbox_silenced ON outbox (silenced_by) WHERE silenced_by IS NOT NULL;
