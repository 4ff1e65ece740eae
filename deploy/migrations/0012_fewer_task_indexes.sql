-- Three indexes of coordination_tasks whose queries others serve as well. Every task the hub
-- opens (an event's, a timer's) and every update the clock makes (a warning, a breach) writes
-- an entry in each index of the table, so each one cost the ingest of task-raising events and
-- the clock's ticks (on apply_batch alone, 20,000 events that each raise a task: +7 % without them).
-- Checked with EXPLAIN ANALYZE on 200,000 tasks, 100,000 of them open:
--   tasks_open_by_due       hub tasks' overdue-by-department summary: the same plan without it;
--                           the clock's due queries use their own partial indexes (0005).
--   tasks_open_by_customer  a customer's open tasks (customers show, the console's customer page):
--                           tasks_customer_opened (customer_id, opened_at), 0.3 ms.
--   tasks_without_customer  a shipment's tasks still without a customer (the batch store's
--                           adoption): tasks_shipment (shipment_id), 0.06 ms.
DROP INDEX IF EXISTS tasks_open_by_due;
DROP INDEX IF EXISTS tasks_open_by_customer;
DROP INDEX IF EXISTS tasks_without_customer;
