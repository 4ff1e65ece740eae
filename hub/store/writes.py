"""Write what the core decided: tasks with their history, notifications, alerts through the outbox.

Shared by the batch store (an event arrived) and the clock (a moment passed), so both write a
task, its `created` history row and its alert the same way. Rows are new by construction (their
ids derive from an event or a firing that was claimed in the same transaction), so they are
streamed with binary COPY.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from hub.core.outputs import AlertDecision, NotificationDecision, TaskDecision, TaskEvent
from hub.core.topics import Destinations
from hub.store import queries
from hub.store.rows import copy_rows, json_text


async def write_tasks(
    conn: asyncpg.Connection, tasks: Sequence[TaskDecision], history: Sequence[TaskEvent] = ()
) -> None:
    await copy_rows(
        conn,
        queries.COPY_TASKS,
        [
            (
                t.task_id,
                t.department,
                t.kind,
                t.severity.value,
                t.shipment_id,
                t.customer_id,
                t.title,
                json_text(t.details),
                t.opened_at,
                t.due_at,
                t.warn_at,
                t.escalate_at,
                t.source_event_id,
                t.rule,
                t.alert_id,
            )
            for t in tasks
        ],
    )
    await write_history(conn, history)


async def write_history(conn: asyncpg.Connection, history: Sequence[TaskEvent]) -> None:
    await copy_rows(
        conn, queries.COPY_TASK_EVENTS, [(e.task_id, e.at, e.actor, e.action, json_text(e.detail)) for e in history]
    )


def created(tasks: Sequence[TaskDecision], at: datetime) -> list[TaskEvent]:
    """The `created` history row of each task the hub opens on an event."""
    return [TaskEvent(t.task_id, at, "created", {"rule": t.rule, "severity": t.severity.value}) for t in tasks]


async def write_notifications(conn: asyncpg.Connection, notes: Sequence[NotificationDecision]) -> None:
    await copy_rows(
        conn,
        queries.COPY_NOTIFICATIONS,
        [
            (
                n.notification_id,
                n.customer_id,
                n.shipment_id,
                n.kind.value,
                n.channel,
                n.language,
                n.body,
                n.source_event_id,
                n.statement_period,
            )
            for n in notes
        ],
    )


async def write_alerts(conn: asyncpg.Connection, alerts: Sequence[AlertDecision], destinations: Destinations) -> None:
    """Queue the alerts in the outbox and wake the relay (a NOTIFY, delivered on commit)."""
    if not alerts:
        return
    await copy_rows(
        conn,
        queries.COPY_OUTBOX,
        [
            (
                destinations.queues[a.queue],
                (a.alert.key or "").encode(),
                a.alert.model_dump_json().encode(),
                json_text([["hub.alert_id", a.alert.alert_id.encode().hex()]]),
                a.alert.alert_id,
            )
            for a in alerts
        ],
    )
    await conn.execute(queries.NOTIFY_OUTBOX)
