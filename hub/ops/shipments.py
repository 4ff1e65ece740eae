"""A shipment's file: its tracking sheet, both streams' history, its tasks and notifications."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg

from hub.ops.db import NotFound
from hub.ops.tasks import SELECT_SHIPMENT_TASKS, Task, task_from_row

SELECT_SHIPMENT = """
SELECT s.shipment_id, s.customer_id, c.name AS customer_name, c.tier AS customer_tier, s.order_id, s.status,
       s.priority, s.promised_delivery_at, s.eta, s.carrier_id, s.last_event_at, s.updated_at
FROM shipments s LEFT JOIN customers c USING (customer_id)
WHERE s.shipment_id = $1
"""

# Both streams about the shipment, one timeline: movements (shipment.events, carrier.updates)
# and the customer's contacts about it (call.logs).
SELECT_SHIPMENT_HISTORY = """
SELECT occurred_at, topic AS stream, event_id, status AS what, payload FROM shipment_events WHERE shipment_id = $1
UNION ALL
SELECT occurred_at, $2::text AS stream, event_id, category AS what, payload FROM call_logs WHERE shipment_id = $1
ORDER BY occurred_at, event_id
"""

SELECT_SHIPMENT_NOTIFICATIONS = """
SELECT notification_id, customer_id, shipment_id, kind, channel, language, body, status, created_at, source_event_id
FROM customer_notifications WHERE shipment_id = $1 ORDER BY created_at, notification_id
"""

# Personal data stays out of screens and pasted notes (CONTRACT.md: caller_phone).
PERSONAL_FIELDS = ("caller_phone",)


@dataclass(frozen=True)
class TrackingSheet:
    shipment_id: str
    customer_id: str | None
    customer_name: str | None
    customer_tier: str | None
    order_id: str | None
    status: str | None
    priority: str | None
    promised_delivery_at: datetime | None
    eta: datetime | None
    carrier_id: str | None
    last_event_at: datetime | None
    updated_at: datetime


@dataclass(frozen=True)
class HistoryEntry:
    occurred_at: datetime
    stream: str  # the topic the event came from
    event_id: str
    what: str  # the event's type, carrier status or call category
    payload: dict[str, Any]


@dataclass(frozen=True)
class Notification:
    notification_id: str
    customer_id: str
    shipment_id: str | None
    kind: str
    channel: str
    language: str
    body: str
    status: str
    created_at: datetime
    source_event_id: str


@dataclass(frozen=True)
class ShipmentFile:
    shipment_id: str
    sheet: TrackingSheet | None  # None: only contacts mention it so far, no movement yet
    history: list[HistoryEntry]
    tasks: list[Task]
    notifications: list[Notification]


def _without_personal_data(payload: dict[str, Any]) -> dict[str, Any]:
    return {k: ("(hidden)" if k in PERSONAL_FIELDS else v) for k, v in payload.items()}


async def shipment_file(conn: asyncpg.Connection, shipment_id: str, call_logs_topic: str) -> ShipmentFile:
    """The sheet, both streams' history, tasks and notifications (call_logs rows do not store their topic)."""
    sheet_row = await conn.fetchrow(SELECT_SHIPMENT, shipment_id)
    history = [
        HistoryEntry(r["occurred_at"], r["stream"], r["event_id"], r["what"], _without_personal_data(r["payload"]))
        for r in await conn.fetch(SELECT_SHIPMENT_HISTORY, shipment_id, call_logs_topic)
    ]
    tasks = [task_from_row(r) for r in await conn.fetch(SELECT_SHIPMENT_TASKS, shipment_id)]
    notes = [
        Notification(**{**dict(r), "notification_id": str(r["notification_id"])})
        for r in await conn.fetch(SELECT_SHIPMENT_NOTIFICATIONS, shipment_id)
    ]
    if sheet_row is None and not history and not tasks:
        raise NotFound(
            f"no shipment {shipment_id!r} in the hub: no event, contact or task mentions it. "
            "Check the waybill number (ids are case-sensitive), or whether its feed is publishing"
        )
    return ShipmentFile(shipment_id, TrackingSheet(**dict(sheet_row)) if sheet_row else None, history, tasks, notes)


# --- one timeline (the console's shipment page) ----------------------------------------------------

SELECT_ATTEMPTS = """
SELECT notification_id, attempt, at, outcome, status_code, error, duration_ms
FROM notification_attempts WHERE notification_id = ANY($1::uuid[])
ORDER BY at, notification_id, attempt
"""
SELECT_TASK_HISTORY = """
SELECT task_id, at, actor, action, detail FROM task_events WHERE task_id = ANY($1::uuid[]) ORDER BY at, id
"""


@dataclass(frozen=True)
class Attempt:
    notification_id: str
    attempt: int
    at: datetime
    outcome: str  # sent, retry, failed
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True)
class TimelineEntry:
    """One thing that happened to a shipment; `kind` says which of the other fields is set."""

    at: datetime
    kind: str  # event (shipment.events / carrier.updates), call, task (a history row), notification, attempt
    event: HistoryEntry | None = None
    task: Task | None = None
    task_action: str | None = None
    actor: str | None = None
    detail: dict[str, Any] | None = None
    notification: Notification | None = None
    attempt: Attempt | None = None


async def notification_attempts(conn: asyncpg.Connection, notification_ids: list[str]) -> list[Attempt]:
    if not notification_ids:
        return []
    return [
        Attempt(**{**dict(r), "notification_id": str(r["notification_id"])})
        for r in await conn.fetch(SELECT_ATTEMPTS, notification_ids)
    ]


async def shipment_timeline(conn: asyncpg.Connection, file: ShipmentFile, call_logs_topic: str) -> list[TimelineEntry]:
    """Everything about the shipment in one list, oldest first: its events from both streams (by
    occurred_at), the calls about it, every change of its tasks, its notifications and each try
    to deliver them."""
    entries = [
        TimelineEntry(e.occurred_at, "call" if e.stream == call_logs_topic else "event", event=e) for e in file.history
    ]
    tasks = {t.task_id: t for t in file.tasks}
    if tasks:
        for r in await conn.fetch(SELECT_TASK_HISTORY, list(tasks)):
            entries.append(
                TimelineEntry(
                    r["at"],
                    "task",
                    task=tasks[str(r["task_id"])],
                    task_action=r["action"],
                    actor=r["actor"],
                    detail=r["detail"],
                )
            )
    notes = {n.notification_id: n for n in file.notifications}
    entries += [TimelineEntry(n.created_at, "notification", notification=n) for n in file.notifications]
    for attempt in await notification_attempts(conn, list(notes)):
        entries.append(
            TimelineEntry(attempt.at, "attempt", notification=notes[attempt.notification_id], attempt=attempt)
        )
    order = {"event": 0, "call": 0, "task": 1, "notification": 2, "attempt": 3}
    return sorted(entries, key=lambda e: (e.at, order[e.kind]))


def gist(payload: dict[str, Any], notes_shown: int) -> str:
    """A one-line gist of an event or call, the facts an operator looks for first (the terminal's
    history table and the console's timeline); at most `notes_shown` characters of free-text notes."""
    parts = []
    exception = payload.get("exception")
    if isinstance(exception, dict):
        parts.append(
            f"exception {exception.get('code')}"
            + (f": {exception['description']}" if exception.get("description") else "")
        )
    for name, label in (
        ("exception_code", "exception"),
        ("raw_description", None),
        ("carrier_id", "carrier"),
        ("eta", "eta"),
        ("promised_delivery_at", "promised"),
        ("direction", None),
        ("channel", "via"),
        ("satisfaction_score", "score"),
    ):
        if payload.get(name) is not None:
            parts.append(f"{label} {payload[name]}" if label else str(payload[name]))
    if payload.get("priority") == "urgent":
        parts.append("URGENT")
    location = payload.get("location")
    if isinstance(location, dict) and (location.get("city") or location.get("code")):
        parts.append(f"at {location.get('city') or location.get('code')}")
    notes = payload.get("notes")
    if isinstance(notes, str) and notes:
        parts.append(f'"{notes[:notes_shown]}{"…" if len(notes) > notes_shown else ""}"')
    return "; ".join(parts)
