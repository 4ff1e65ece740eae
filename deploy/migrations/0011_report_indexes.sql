-- Issue 20, "Reports", scale (`python -m bench reports`: a month of 1,000,000 shipments, 5.4
-- million shipment events, 140,000 tasks, statements for 10,000 customers).
--
-- On a large existing database these indexes take a while to build and block writes to their
-- table meanwhile: build them first with CREATE INDEX CONCURRENTLY under the same names (as the
-- schema owner), and this migration skips them.

-- A customer's statement counts its tasks of the month (complaints, claims, their resolution).
-- Without this index each statement walks every task opened or resolved in the month, and the
-- monthly sweep does that once per customer; with it, a statement reads its customer's tasks.
CREATE INDEX IF NOT EXISTS tasks_customer_opened ON coordination_tasks (customer_id, opened_at);

-- The month-wide reports count the shipments created, delivered and with an exception in the
-- period. Without this index each of those three figures reads the whole events table (1.25 GB
-- for the month above, most of it other statuses); with it, an index-only scan of the period's
-- created and delivered events and the exception rows alone. Partial: the other statuses (more
-- than half of the events) cost the hub's writes nothing more.
CREATE INDEX IF NOT EXISTS shipment_events_reported ON shipment_events (status, occurred_at) INCLUDE (shipment_id)
    WHERE status IN ('created', 'delivered', 'exception');
