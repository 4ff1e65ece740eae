"""The clock: what the hub does when nothing arrives (SLA warnings and breaches, stale shipments,
overdue deliveries, monthly key-account reviews). The decisions are pure (hub/core/clock.py);
this package finds what is due, applies the decisions in one transaction with the record that
they fired, and runs the evaluator inside `hub run`."""
