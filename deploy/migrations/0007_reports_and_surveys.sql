-- Contract 1.1, "Reports" and "Surveys": stored reports, survey answers, the survey timers.

-- Reports built by the hub (monthly statements) or on demand; one per kind, period, customer, format.
CREATE TABLE reports (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL CHECK (kind IN ('complaints', 'kpi', 'statement')),
    period       text NOT NULL,              -- 2026-11, or 2026-11-01..2026-11-15
    customer_id  text,
    format       text NOT NULL CHECK (format IN ('json', 'csv', 'html', 'pdf')),
    content      bytea NOT NULL,
    as_of        timestamptz NOT NULL,       -- the figures are the database's as of this moment
    created_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE NULLS NOT DISTINCT (kind, period, customer_id, format)
);

-- Survey answers arrive on call.logs (category survey): their score, and the survey they answer.
ALTER TABLE call_logs
    ADD COLUMN satisfaction_score smallint CHECK (satisfaction_score BETWEEN 1 AND 5),
    ADD COLUMN reference text;
UPDATE call_logs SET satisfaction_score = (payload ->> 'satisfaction_score')::smallint
WHERE payload ? 'satisfaction_score' AND jsonb_typeof(payload -> 'satisfaction_score') = 'number';

-- A month of events is read by time: BRIN indexes are tiny and cost the hot path next to nothing,
-- since events arrive roughly in time order.
CREATE INDEX shipment_events_when ON shipment_events USING brin (occurred_at);
CREATE INDEX call_logs_when ON call_logs USING brin (occurred_at);
CREATE INDEX tasks_opened ON coordination_tasks (opened_at);
CREATE INDEX tasks_resolved ON coordination_tasks (resolved_at) WHERE resolved_at IS NOT NULL;
CREATE INDEX notifications_sent_at ON customer_notifications (sent_at) WHERE sent_at IS NOT NULL;
CREATE INDEX notifications_failed_at ON customer_notifications (failed_at) WHERE failed_at IS NOT NULL;
CREATE INDEX notifications_surveys ON customer_notifications (customer_id, created_at)
    WHERE kind = 'satisfaction_survey';

-- delivery_survey: armed when a shipment is delivered (the fold sets it), NULL once decided.
ALTER TABLE shipments ADD COLUMN survey_at timestamptz;
CREATE INDEX shipments_survey_due ON shipments (survey_at) WHERE survey_at IS NOT NULL;

-- complaint_follow_up: armed when a complaints task becomes done, whoever closed it (the CLI, the
-- console): the trigger keeps every path right. NULL once fired, or when the task is reopened.
ALTER TABLE coordination_tasks ADD COLUMN follow_up_at timestamptz;
CREATE FUNCTION hub_arm_complaint_follow_up() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.department = 'complaints' AND NEW.status = 'done' AND OLD.status IS DISTINCT FROM 'done' THEN
        NEW.follow_up_at := coalesce(NEW.resolved_at, now());
    ELSIF NEW.status IS DISTINCT FROM 'done' THEN
        NEW.follow_up_at := NULL;
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER tasks_arm_follow_up BEFORE UPDATE OF status ON coordination_tasks
    FOR EACH ROW EXECUTE FUNCTION hub_arm_complaint_follow_up();
CREATE INDEX tasks_follow_up_due ON coordination_tasks (follow_up_at) WHERE follow_up_at IS NOT NULL;
