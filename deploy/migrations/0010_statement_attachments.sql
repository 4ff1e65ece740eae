-- A monthly_statement notice carries the customer's stored statement of this period (reports:
-- kind statement, format json); e-mail attaches it rendered as PDF at send time.
ALTER TABLE customer_notifications ADD COLUMN statement_period text;
