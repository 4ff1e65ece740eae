"""What one batch did, counted: the consumer logs it, the metrics and the demo add it up."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class BatchOutcome:
    records: int = 0
    processed: int = 0
    duplicates: int = 0
    tasks: int = 0
    notifications: int = 0
    dead_lettered: Counter[str] = field(default_factory=Counter)  # reason -> records
    alerts: Counter[tuple[str, str]] = field(default_factory=Counter)  # (queue, severity) -> alerts
    by_topic: Counter[str] = field(default_factory=Counter)  # topic -> events processed
    duplicates_by_topic: Counter[str] = field(default_factory=Counter)
    dead_lettered_by_topic: Counter[str] = field(default_factory=Counter)

    def merge(self, other: BatchOutcome) -> None:
        self.records += other.records
        self.processed += other.processed
        self.duplicates += other.duplicates
        self.tasks += other.tasks
        self.notifications += other.notifications
        self.dead_lettered.update(other.dead_lettered)
        self.alerts.update(other.alerts)
        self.by_topic.update(other.by_topic)
        self.duplicates_by_topic.update(other.duplicates_by_topic)
        self.dead_lettered_by_topic.update(other.dead_lettered_by_topic)
