"""Write what the core decided: tasks with their history, notifications, alerts through the outbox.

Shared by the batch store (an event arrived) and the clock (a moment passed), so both write a
task, its `created` history row and its alert the same way. Rows are new by construction (their
ids derive from an event or a firing that was claimed in the same transaction), so they are
streamed with binary COPY.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, NamedTuple

import asyncpg
import orjson

from hub.core.outputs import AlertDecision, NotificationDecision, TaskDecision, TaskEvent
from hub.core.silences import MATCHER_FIELDS, ActiveSilence, AlertFacts, Matcher, needs_lookup, silenced_by
from hub.core.topics import Destinations
from hub.store import queries
from hub.store.rows import copy_rows, json_text


def task_rows(tasks: Sequence[TaskDecision]) -> list[tuple[Any, ...]]:
    """The COPY rows of new tasks (queries.COPY_TASKS)."""
    return [
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
    ]


def history_rows(history: Sequence[TaskEvent]) -> list[tuple[Any, ...]]:
    """The COPY rows of task history (queries.COPY_TASK_EVENTS)."""
    return [(e.task_id, e.at, e.actor, e.action, json_text(e.detail)) for e in history]


async def write_tasks(
    conn: asyncpg.Connection, tasks: Sequence[TaskDecision], history: Sequence[TaskEvent] = ()
) -> None:
    await copy_rows(conn, queries.COPY_TASKS, task_rows(tasks))
    await write_history(conn, history)


# Task changes wake the console's live pages (hub/console), like NOTIFY hub_outbox wakes the relay.
TASKS_CHANNEL = "hub_tasks"
NOTIFY_TASKS = f"SELECT pg_notify('{TASKS_CHANNEL}', '')"


async def write_history(conn: asyncpg.Connection, history: Sequence[TaskEvent]) -> None:
    await _write_history_rows(conn, history_rows(history))


async def _write_history_rows(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    await copy_rows(conn, queries.COPY_TASK_EVENTS, rows)
    if rows:  # every task the hub creates or changes has a history row
        await conn.execute(NOTIFY_TASKS)


def created(tasks: Sequence[TaskDecision], at: datetime) -> list[TaskEvent]:
    """The `created` history row of each task the hub opens on an event."""
    return [TaskEvent(t.task_id, at, "created", {"rule": t.rule, "severity": t.severity.value}) for t in tasks]


def notification_rows(notes: Sequence[NotificationDecision]) -> list[tuple[Any, ...]]:
    """The COPY rows of new notifications (queries.COPY_NOTIFICATIONS)."""
    return [
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
    ]


async def write_notifications(conn: asyncpg.Connection, notes: Sequence[NotificationDecision]) -> None:
    """Store pending notices and wake a running dispatcher (NOTIFY hub_dispatch, delivered on
    commit), which would otherwise find them only at its next poll (HUB_DISPATCH_POLL_S)."""
    await _write_notification_rows(conn, notification_rows(notes))


async def _write_notification_rows(conn: asyncpg.Connection, rows: Sequence[tuple[Any, ...]]) -> None:
    await copy_rows(conn, queries.COPY_NOTIFICATIONS, rows)
    if rows:
        await conn.execute(queries.NOTIFY_DISPATCH)


# --- silences (contract 1.1, "Ops console"; the matcher is hub/core/silences.py) -------------------
# The relay's wake-up and the active silences travel in one round trip, so silences cost a batch
# nothing while none is active, and a batch without alerts sends neither. The alerts' departments
# and carriers are looked up only while some active silence names one of those.
NOTIFY_OUTBOX_AND_SILENCES = """
SELECT pg_notify('hub_outbox', '') AS notified, now() AS now,
       (SELECT json_agg(json_build_object('id', id, 'queue', queue, 'kind', kind, 'department', department,
                                          'carrier_id', carrier_id, 'customer_id', customer_id,
                                          'shipment_id', shipment_id, 'ends_at', ends_at) ORDER BY id)
        FROM silences WHERE ends_at > now())::text AS active
"""
SELECT_ALERT_FACTS = """
SELECT k.i, t.department, s.carrier_id
FROM unnest($1::text[], $2::text[]) WITH ORDINALITY AS k(task_id, shipment_id, i)
LEFT JOIN coordination_tasks AS t ON t.task_id = k.task_id::uuid
LEFT JOIN shipments AS s ON s.shipment_id = k.shipment_id
"""
# A silenced alert is written already sent, naming its silence: the relay (sent_at IS NULL) skips it.
COPY_OUTBOX_SILENCEABLE = ("outbox", (*queries.COPY_OUTBOX[1], "sent_at", "silenced_by"))


async def write_alerts(conn: asyncpg.Connection, alerts: Sequence[AlertDecision], destinations: Destinations) -> None:
    """Queue the alerts in the outbox and wake the relay (a NOTIFY, delivered on commit).

    An alert an active silence matches is recorded all the same, marked sent and silenced by that
    silence, so it never reaches its queue; the task and notifications it came with are unaffected.
    """
    await _queue_alerts(conn, alerts, alert_rows(alerts, destinations))


def alert_rows(alerts: Sequence[AlertDecision], destinations: Destinations) -> list[tuple[Any, ...]]:
    """The outbox rows of alerts (queries.COPY_OUTBOX)."""
    return [
        (
            destinations.queues[a.queue],
            (a.alert.key or "").encode(),
            a.alert.model_dump_json().encode(),
            json_text([["hub.alert_id", a.alert.alert_id.encode().hex()]]),
            a.alert.alert_id,
        )
        for a in alerts
    ]


async def _queue_alerts(
    conn: asyncpg.Connection, alerts: Sequence[AlertDecision], rows: Sequence[tuple[Any, ...]]
) -> None:
    if not alerts:
        return
    found = await conn.fetchrow(NOTIFY_OUTBOX_AND_SILENCES)
    if found["active"] is None:
        await copy_rows(conn, queries.COPY_OUTBOX, rows)
        return
    now = found["now"]
    active = [
        ActiveSilence(
            s["id"], Matcher(**{name: s[name] for name in MATCHER_FIELDS}), datetime.fromisoformat(s["ends_at"])
        )
        for s in orjson.loads(found["active"])
    ]
    silenced = await _silenced_by(conn, alerts, active, now)
    await copy_rows(
        conn,
        COPY_OUTBOX_SILENCEABLE,
        [(*row, now if by is not None else None, by) for row, by in zip(rows, silenced, strict=True)],
    )


async def _silenced_by(
    conn: asyncpg.Connection, alerts: Sequence[AlertDecision], active: Sequence[ActiveSilence], now: datetime
) -> list[int | None]:
    """For each alert, the id of the silence that holds it back, or None (`active`: those active now)."""
    looked_up: dict[int, tuple[str | None, str | None]] = {}
    if needs_lookup(active):
        found = await conn.fetch(
            SELECT_ALERT_FACTS, [a.alert.task_id for a in alerts], [a.alert.shipment_id for a in alerts]
        )
        looked_up = {r["i"] - 1: (r["department"], r["carrier_id"]) for r in found}
    return [
        silenced_by(
            active,
            AlertFacts(
                queue=a.queue.value,
                kind=str(a.alert.kind),
                customer_id=a.alert.customer_id,
                shipment_id=a.alert.shipment_id,
                department=looked_up.get(i, (None, None))[0],
                carrier_id=looked_up.get(i, (None, None))[1],
            ),
            now,
        )
        for i, a in enumerate(alerts)
    ]


class EffectRows(NamedTuple):
    """What a set of decisions writes, as rows ready to stream: built apart from writing, so a caller
    can build them while Postgres works on an earlier statement of the same transaction."""

    tasks: list[tuple[Any, ...]]
    history: list[tuple[Any, ...]]
    notifications: list[tuple[Any, ...]]
    alerts: list[AlertDecision]
    outbox: list[tuple[Any, ...]]


def effect_rows(
    tasks: Sequence[TaskDecision],
    history: Sequence[TaskEvent],
    notes: Sequence[NotificationDecision],
    alerts: Sequence[AlertDecision],
    destinations: Destinations,
) -> EffectRows:
    return EffectRows(
        task_rows(tasks),
        history_rows(history),
        notification_rows(notes),
        list(alerts),
        alert_rows(alerts, destinations),
    )


async def write_effect_rows(conn: asyncpg.Connection, rows: EffectRows) -> None:
    """As write_tasks, write_history, write_notifications and write_alerts in turn (one history COPY)."""
    await copy_rows(conn, queries.COPY_TASKS, rows.tasks)
    await _write_history_rows(conn, rows.history)
    await _write_notification_rows(conn, rows.notifications)
    await _queue_alerts(conn, rows.alerts, rows.outbox)
