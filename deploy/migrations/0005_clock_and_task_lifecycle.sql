-- Contract 1.1: the clock (SLA warnings and escalation, stale shipments, overdue deliveries,
-- key-account reviews) and the task lifecycle with its append-only history.
--
-- The clock finds what is due through partial indexes on due moments, so a tick costs what is
-- due, not what exists; `clock_firings` records every firing once, in the transaction of its
-- effects, so a crash or a second evaluator can neither lose nor double one.

-- Tasks: the window (opened_at -> due_at), its moments, the lifecycle's new columns.
ALTER TABLE coordination_tasks
    ADD COLUMN opened_at         timestamptz,            -- the triggering event's occurred_at
    ADD COLUMN warn_at           timestamptz,            -- sla_warning: opened_at + warning point x window
    ADD COLUMN escalate_at       timestamptz,            -- sla_breach level 2: due_at + one window
    ADD COLUMN warned_at         timestamptz,
    ADD COLUMN breached_at       timestamptz,
    ADD COLUMN escalation_level  smallint NOT NULL DEFAULT 0 CHECK (escalation_level BETWEEN 0 AND 2),
    ADD COLUMN resolution        text;

-- Tasks written before this migration: their window starts at their event, else at their creation.
UPDATE coordination_tasks AS t SET opened_at = least(e.occurred_at, t.due_at)
FROM shipment_events AS e WHERE e.event_id = t.source_event_id;
UPDATE coordination_tasks AS t SET opened_at = least(c.occurred_at, t.due_at)
FROM call_logs AS c WHERE c.event_id = t.source_event_id AND t.opened_at IS NULL;
UPDATE coordination_tasks SET opened_at = least(created_at, due_at) WHERE opened_at IS NULL;
UPDATE coordination_tasks
SET warn_at = opened_at + (due_at - opened_at) * 0.75, escalate_at = due_at + (due_at - opened_at);
ALTER TABLE coordination_tasks
    ALTER COLUMN opened_at SET NOT NULL,
    ALTER COLUMN warn_at SET NOT NULL,
    ALTER COLUMN escalate_at SET NOT NULL;

ALTER TABLE coordination_tasks DROP CONSTRAINT coordination_tasks_department_check;
ALTER TABLE coordination_tasks ADD CONSTRAINT coordination_tasks_department_check CHECK (department IN (
    'warehouse', 'carrier_liaison', 'claims', 'complaints', 'key_accounts', 'dispatch', 'call_centre'));

-- What the clock looks for, one partial index per moment: only tasks whose timer is still armed.
CREATE INDEX tasks_warning_due ON coordination_tasks (warn_at)
    WHERE status IN ('open', 'in_progress') AND escalation_level = 0 AND warned_at IS NULL;
CREATE INDEX tasks_breach_due ON coordination_tasks (due_at)
    WHERE status IN ('open', 'in_progress') AND escalation_level = 0;
CREATE INDEX tasks_escalation_due ON coordination_tasks (escalate_at)
    WHERE status IN ('open', 'in_progress') AND escalation_level = 1;

-- Shipments: when they go stale (last_event_at + the threshold of their status) and when their
-- promise passes; NULL once fired or when the shipment is delivered, returned or cancelled.
ALTER TABLE shipments
    ADD COLUMN stale_at    timestamptz,
    ADD COLUMN overdue_at  timestamptz;
CREATE INDEX shipments_stale_due ON shipments (stale_at) WHERE stale_at IS NOT NULL;
CREATE INDEX shipments_overdue_due ON shipments (overdue_at) WHERE overdue_at IS NOT NULL;

-- Every firing, once: (timer, subject, key) is the timer's identity (key: the level, the
-- last_event_at, the promise or the month it fired for).
CREATE TABLE clock_firings (
    timer       text NOT NULL,
    subject     text NOT NULL,
    key         text NOT NULL,
    due_at      timestamptz NOT NULL,   -- the moment it was due
    fired_at    timestamptz NOT NULL,   -- the tick's now
    recorded_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (timer, subject, key)
);
CREATE INDEX clock_firings_recent ON clock_firings (fired_at);

-- Calendar timers (the first tick of a month) sweep once per period; this marks a finished sweep.
CREATE TABLE clock_periods (
    timer       text NOT NULL,
    period      text NOT NULL,          -- e.g. 2026-12 in HUB_TIMEZONE
    swept_at    timestamptz NOT NULL,
    PRIMARY KEY (timer, period)
);

-- The history of every task: who did what, when. Append-only for every role (the trigger).
CREATE TABLE task_events (
    id       bigserial PRIMARY KEY,
    task_id  uuid NOT NULL,
    at       timestamptz NOT NULL DEFAULT now(),
    actor    text NOT NULL,            -- 'hub' for the hub itself, else the person
    action   text NOT NULL CHECK (action IN ('created', 'claimed', 'released', 'commented', 'warned',
                                             'escalated', 'reassigned', 'resolved', 'cancelled', 'reopened')),
    detail   jsonb NOT NULL DEFAULT '{}'
);
CREATE INDEX task_events_task ON task_events (task_id, at, id);

CREATE FUNCTION hub_refuse_history_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'task_events is append-only: % refused', TG_OP USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER task_events_append_only BEFORE UPDATE OR DELETE ON task_events
    FOR EACH ROW EXECUTE FUNCTION hub_refuse_history_change();
CREATE TRIGGER task_events_no_truncate BEFORE TRUNCATE ON task_events
    FOR EACH STATEMENT EXECUTE FUNCTION hub_refuse_history_change();

-- Existing tasks get their 'created' entry, so every task has a history from its start.
INSERT INTO task_events (task_id, at, actor, action, detail)
SELECT task_id, created_at, 'hub', 'created', jsonb_build_object('rule', rule, 'severity', severity)
FROM coordination_tasks;
