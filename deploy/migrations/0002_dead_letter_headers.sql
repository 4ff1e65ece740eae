-- Keep a dead letter's original Kafka headers, so `hub dlq replay` can send them back.
ALTER TABLE dead_letters ADD COLUMN headers jsonb NOT NULL DEFAULT '[]';  -- [[name, hex of value], ...]
