-- Issue 20, "Reports", scale: a customer's statement counts its tasks of the month (complaints,
-- claims, their resolution). Without this index each statement walks every task opened or resolved
-- in the month (tasks_opened, tasks_resolved), about 140,000 in a month of 1,000,000 shipments, and
-- the monthly sweep does that once per customer (`python -m bench reports`). With it, a statement
-- reads only its customer's tasks.
--
-- On a large existing database this index takes a while to build and blocks writes to the tasks
-- meanwhile: build it first with CREATE INDEX CONCURRENTLY under the same name (as the schema
-- owner), and this migration skips it.
CREATE INDEX IF NOT EXISTS tasks_customer_opened ON coordination_tasks (customer_id, opened_at);
