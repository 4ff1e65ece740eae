"""The handler queues as Postgres sees them: open work per queue and severity, the most urgent
tasks (breached first, then by due time), and the newest alerts written to the outbox (published,
waiting, or held back by a silence). Read by the console's queues page, which refreshes it on
NOTIFY hub_outbox / hub_tasks.

A task belongs to the queue its alert went to: the queue of the rule (or timer) that raised it.
Tasks the clock warned or escalated are on `escalations` as well, where their SLA alerts went.
"""

from __future__ import annotations

import contextlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson
from pydantic import ValidationError

from hub.core.rules import Rules
from hub.core.topics import Queue
from hub.ops.tasks import TASK_COLUMNS, Task, task_from_row
from schemas.outbound import Alert

SEVERITIES = ("P1", "P2", "P3", "P4")
DUE_SOON = timedelta(hours=2)

# Timers of the clock and of dispatch that raise alerts with their tasks (hub/core/clock.py,
# hub/dispatch): rule -> queue. The routing rules' own queues come from the rules file.
TIMER_QUEUES = {
    "stale_shipment": Queue.EXCEPTIONS,
    "delivery_overdue": Queue.EXCEPTIONS,
    "low_satisfaction": Queue.COMPLAINTS,
    "notification_failed": Queue.ESCALATIONS,
}

# Open tasks, one pass (an index-only scan of tasks_open_board): per rule and severity, whether they
# came with an alert and whether the clock warned or escalated them.
OPEN_WORK = """
SELECT rule, severity, alert_id IS NOT NULL AS alerted, (escalation_level > 0 OR warned_at IS NOT NULL) AS escalated,
       count(*) AS open,
       count(*) FILTER (WHERE escalation_level > 0) AS breached,
       count(*) FILTER (WHERE due_at < $1) AS overdue,
       count(*) FILTER (WHERE due_at >= $1 AND due_at < $2) AS due_soon
FROM coordination_tasks
WHERE status IN ('open', 'in_progress')
GROUP BY 1, 2, 3, 4
"""
# Breached first (level 2, then 1), then the soonest due: the index tasks_open_by_urgency.
MOST_URGENT = f"""
SELECT {TASK_COLUMNS} FROM coordination_tasks
WHERE status IN ('open', 'in_progress')
ORDER BY escalation_level DESC, due_at
LIMIT $1
"""
# The newest alerts in the outbox (alert topics only: dead letters share the table).
NEWEST_ALERTS = """
SELECT id, topic, value, created_at, sent_at, silenced_by FROM outbox
WHERE topic = ANY($1::text[]) AND id > $2
ORDER BY id DESC
LIMIT $3
"""


@dataclass(frozen=True)
class QueueCount:
    open: int = 0
    breached: int = 0
    overdue: int = 0
    due_soon: int = 0

    def __add__(self, other: QueueCount) -> QueueCount:
        return QueueCount(
            self.open + other.open,
            self.breached + other.breached,
            self.overdue + other.overdue,
            self.due_soon + other.due_soon,
        )


@dataclass(frozen=True)
class OutboxAlert:
    """An alert as written to the outbox: published (sent_at), waiting, or held back by a silence."""

    outbox_id: int
    queue: str
    alert: Alert
    written_at: datetime
    sent_at: datetime | None
    silenced_by: int | None


@dataclass
class Board:
    counts: dict[str, dict[str, QueueCount]] = field(default_factory=dict)  # queue -> severity -> count
    urgent: list[Task] = field(default_factory=list)
    newest: list[OutboxAlert] = field(default_factory=list)

    def total(self, queue: str) -> QueueCount:
        return sum(self.counts.get(queue, {}).values(), QueueCount())


def rule_queues(rules: Rules) -> dict[str, str]:
    """rule id -> the queue its alerts go to."""
    found = {timer: queue.value for timer, queue in TIMER_QUEUES.items()}
    found.update({rule.id: rule.queue.value for rule in rules.rules})
    return found


async def queue_counts(conn: asyncpg.Connection, queues_of_rules: dict[str, str], now: datetime) -> Board:
    board = Board(counts={q.value: {} for q in Queue})
    counts: dict[str, dict[str, QueueCount]] = defaultdict(dict)
    for r in await conn.fetch(OPEN_WORK, now, now + DUE_SOON):
        count = QueueCount(r["open"], r["breached"], r["overdue"], r["due_soon"])
        queues = {queues_of_rules.get(r["rule"])} if r["alerted"] else set()
        if r["escalated"]:
            queues.add(Queue.ESCALATIONS.value)  # where its SLA alerts went
        for queue in queues - {None}:
            assert queue is not None
            counts[queue][r["severity"]] = counts[queue].get(r["severity"], QueueCount()) + count
    board.counts.update(counts)
    return board


async def most_urgent(conn: asyncpg.Connection, limit: int = 25) -> list[Task]:
    return [task_from_row(r) for r in await conn.fetch(MOST_URGENT, limit)]


async def newest_alerts(
    conn: asyncpg.Connection, queue_topics: dict[str, str], after_id: int = 0, limit: int = 20
) -> list[OutboxAlert]:
    """The newest alerts written to the outbox (after `after_id`), newest first.

    `queue_topics`: topic -> queue. A row that is not a readable alert is skipped.
    """
    found = []
    for r in await conn.fetch(NEWEST_ALERTS, list(queue_topics), after_id, limit):
        with contextlib.suppress(orjson.JSONDecodeError, ValidationError, AttributeError):
            document: dict[str, Any] = orjson.loads(bytes(r["value"]))
            alert = Alert.model_validate({k: v for k, v in document.items() if k in Alert.model_fields})
            found.append(
                OutboxAlert(r["id"], queue_topics[r["topic"]], alert, r["created_at"], r["sent_at"], r["silenced_by"])
            )
    return found


async def board(
    conn: asyncpg.Connection, queues_of_rules: dict[str, str], queue_topics: dict[str, str], now: datetime
) -> Board:
    """Everything the queues page shows."""
    result = await queue_counts(conn, queues_of_rules, now)
    result.urgent = await most_urgent(conn)
    result.newest = await newest_alerts(conn, queue_topics)
    return result
