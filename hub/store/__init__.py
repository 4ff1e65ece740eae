"""The Postgres side of the hot path: one batch in one transaction, and its named SQL."""
