-- A dead-lettered tombstone (a record with no value) goes to the dead-letter topic as a
-- tombstone again: the original bytes, untouched, include "no bytes at all".
ALTER TABLE outbox ALTER COLUMN value DROP NOT NULL;
