"""What the ops team's commands read and change: tasks, a shipment's file, dead letters, alerts.

Named SQL and small async functions that return plain dataclasses; the commands in
`hub/commands/` do the printing. Errors an operator can act on are raised as `OpsError`
with a sentence that says what to do next.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, NoReturn

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from hub.config import Settings
from hub.kafka import aiokafka_kwargs, producer_kwargs
from schemas.enums import TaskStatus
from schemas.outbound import Alert


class OpsError(RuntimeError):
    """Something the operator can fix; the message says how."""


class NotFound(OpsError):
    pass


# --- connection ------------------------------------------------------------------------------


@asynccontextmanager
async def database(dsn: str) -> AsyncIterator[asyncpg.Connection]:
    """One connection with jsonb decoded; connection and schema problems become OpsError."""
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (OSError, asyncio.TimeoutError, asyncpg.PostgresError) as exc:
        raise OpsError(f"cannot reach Postgres ({type(exc).__name__}: {exc}); check HUB_DATABASE_URL") from exc
    try:
        await conn.set_type_codec("jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads,
                                  schema="pg_catalog")
        yield conn
    except asyncpg.UndefinedTableError as exc:
        raise OpsError(f"the database has no hub tables ({exc}); run `hub migrate` first") from exc
    finally:
        await conn.close(timeout=5)


# --- coordination tasks ----------------------------------------------------------------------

ACTIVE_STATUSES = (TaskStatus.OPEN, TaskStatus.IN_PROGRESS)

TASK_COLUMNS = """
task_id, department, kind, severity, status, shipment_id, customer_id, title, details, due_at,
created_at, updated_at, source_event_id, rule, alert_id, claimed_by, claimed_at, resolved_by, resolved_at
"""

SELECT_TASKS = f"""
SELECT {TASK_COLUMNS} FROM coordination_tasks
WHERE status = ANY($1::text[])
  AND ($2::text IS NULL OR department = $2)
  AND ($3::text IS NULL OR severity = $3)
  AND (NOT $4::bool OR due_at < $5)
ORDER BY severity, due_at, task_id
LIMIT $6
"""

SELECT_TASK = f"SELECT {TASK_COLUMNS} FROM coordination_tasks WHERE task_id = $1"

SELECT_SHIPMENT_TASKS = f"""
SELECT {TASK_COLUMNS} FROM coordination_tasks WHERE shipment_id = $1 ORDER BY created_at, severity, task_id
"""

# Conditional updates: a task closed by someone else in the meantime is not reopened.
CLAIM_TASK = f"""
WITH before AS (SELECT task_id AS id, claimed_by AS previous_claimer FROM coordination_tasks
                WHERE task_id = $1 FOR UPDATE)
UPDATE coordination_tasks
SET status = 'in_progress', claimed_by = $2, claimed_at = now(), updated_at = now()
FROM before
WHERE task_id = before.id AND status IN ('open', 'in_progress')
RETURNING {TASK_COLUMNS}, before.previous_claimer
"""

RESOLVE_TASK = f"""
UPDATE coordination_tasks
SET status = $3, resolved_by = $2, resolved_at = now(), updated_at = now()
WHERE task_id = $1 AND status IN ('open', 'in_progress')
RETURNING {TASK_COLUMNS}
"""

OVERDUE_BY_DEPARTMENT = """
SELECT department, count(*) AS tasks, min(due_at) AS oldest_due_at
FROM coordination_tasks
WHERE status IN ('open', 'in_progress') AND due_at < $1
GROUP BY department
ORDER BY count(*) DESC, department
"""


@dataclass(frozen=True)
class Task:
    task_id: str
    department: str
    kind: str
    severity: str
    status: str
    shipment_id: str | None
    customer_id: str | None
    title: str
    details: dict[str, Any]
    due_at: datetime
    created_at: datetime
    updated_at: datetime
    source_event_id: str
    rule: str
    alert_id: str | None
    claimed_by: str | None
    claimed_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def overdue(self, now: datetime) -> bool:
        return self.active and self.due_at < now


@dataclass(frozen=True)
class TaskFilter:
    statuses: tuple[str, ...] = tuple(s.value for s in ACTIVE_STATUSES)
    department: str | None = None
    severity: str | None = None
    overdue: bool = False
    limit: int = 50


@dataclass(frozen=True)
class TaskPage:
    tasks: list[Task]
    more: bool  # more tasks match than the limit let through


@dataclass(frozen=True)
class OverdueCount:
    department: str
    tasks: int
    oldest_due_at: datetime


def _task(row: asyncpg.Record | dict[str, Any]) -> Task:
    values = dict(row)
    values["task_id"] = str(values["task_id"])
    values["alert_id"] = str(values["alert_id"]) if values["alert_id"] is not None else None
    return Task(**values)


def _task_uuid(task_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(task_id)
    except ValueError:
        raise NotFound(f"{task_id!r} is not a task id (task ids are UUIDs); "
                       "find it with `hub tasks list`") from None


async def list_tasks(conn: asyncpg.Connection, wanted: TaskFilter, now: datetime) -> TaskPage:
    rows = await conn.fetch(SELECT_TASKS, list(wanted.statuses), wanted.department, wanted.severity,
                            wanted.overdue, now, wanted.limit + 1)
    return TaskPage([_task(r) for r in rows[:wanted.limit]], more=len(rows) > wanted.limit)


async def get_task(conn: asyncpg.Connection, task_id: str) -> Task:
    row = await conn.fetchrow(SELECT_TASK, _task_uuid(task_id))
    if row is None:
        raise NotFound(f"no task {task_id}; find the id with `hub tasks list` (add --status done for closed ones)")
    return _task(row)


@dataclass(frozen=True)
class Claimed:
    task: Task
    previous_claimer: str | None  # someone else had it: the claim handed it over


async def claim_task(conn: asyncpg.Connection, task_id: str, by: str) -> Claimed:
    """Mark the task in progress by `by`; claiming a claimed task hands it over to `by`."""
    row = await conn.fetchrow(CLAIM_TASK, _task_uuid(task_id), by)
    if row is None:
        await _explain_not_active(conn, task_id, "claimed")
    values = dict(row)
    previous = values.pop("previous_claimer")
    return Claimed(_task(values), previous if previous != by else None)


async def resolve_task(conn: asyncpg.Connection, task_id: str, by: str, cancel: bool = False) -> Task:
    status = TaskStatus.CANCELLED if cancel else TaskStatus.DONE
    row = await conn.fetchrow(RESOLVE_TASK, _task_uuid(task_id), by, status.value)
    if row is None:
        await _explain_not_active(conn, task_id, "cancelled" if cancel else "resolved")
    return _task(row)


async def _explain_not_active(conn: asyncpg.Connection, task_id: str, verb: str) -> NoReturn:
    task = await get_task(conn, task_id)  # raises NotFound for an unknown id
    who = f" by {task.resolved_by}" if task.resolved_by else ""
    when = f" at {task.resolved_at:%Y-%m-%d %H:%M %Z}" if task.resolved_at else ""
    raise OpsError(f"task {task_id} is already {task.status}{who}{when} and cannot be {verb}; "
                   "if the problem came back, it needs a new event (or ask the lead to reopen it in Postgres)")


async def overdue_by_department(conn: asyncpg.Connection, now: datetime) -> list[OverdueCount]:
    return [OverdueCount(r["department"], r["tasks"], r["oldest_due_at"])
            for r in await conn.fetch(OVERDUE_BY_DEPARTMENT, now)]


# --- a shipment's file -----------------------------------------------------------------------

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
    history = [HistoryEntry(r["occurred_at"], r["stream"], r["event_id"], r["what"],
                            _without_personal_data(r["payload"]))
               for r in await conn.fetch(SELECT_SHIPMENT_HISTORY, shipment_id, call_logs_topic)]
    tasks = [_task(r) for r in await conn.fetch(SELECT_SHIPMENT_TASKS, shipment_id)]
    notes = [Notification(**{**dict(r), "notification_id": str(r["notification_id"])})
             for r in await conn.fetch(SELECT_SHIPMENT_NOTIFICATIONS, shipment_id)]
    if sheet_row is None and not history and not tasks:
        raise NotFound(f"no shipment {shipment_id!r} in the hub: no event, contact or task mentions it. "
                       "Check the waybill number (ids are case-sensitive), or whether its feed is publishing")
    return ShipmentFile(shipment_id, TrackingSheet(**dict(sheet_row)) if sheet_row else None, history, tasks, notes)


# --- dead letters ----------------------------------------------------------------------------

DEAD_LETTER_COLUMNS = """
id, reason, error_class, message, source_topic, source_partition, source_offset, key,
octet_length(value) AS value_size, created_at, replayed_at
"""

SELECT_DEAD_LETTERS = f"""
SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters
WHERE ($1::text IS NULL OR reason = $1) AND ($2::text IS NULL OR source_topic = $2)
ORDER BY created_at DESC, id
LIMIT $3
"""

SELECT_DEAD_LETTER = f"SELECT {DEAD_LETTER_COLUMNS}, value, headers FROM dead_letters WHERE id = $1"

MARK_REPLAYED = "UPDATE dead_letters SET replayed_at = now() WHERE id = $1 RETURNING replayed_at"


@dataclass(frozen=True)
class DeadLetter:
    id: str
    reason: str
    error_class: str
    message: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    value_size: int | None  # None: the record had no value (a tombstone)
    created_at: datetime
    replayed_at: datetime | None
    value: bytes | None = None  # loaded by get_dead_letter only
    headers: tuple[tuple[str, bytes], ...] = ()  # the original record's headers, likewise


@dataclass(frozen=True)
class ReadableBytes:
    text: str
    encoding: str  # 'utf-8' or 'hex'
    shown_bytes: int
    total_bytes: int

    @property
    def truncated(self) -> bool:
        return self.shown_bytes < self.total_bytes


def readable(value: bytes | None, limit: int = 4096) -> ReadableBytes | None:
    """UTF-8 text if it is, else hex; at most `limit` bytes of it."""
    if value is None:
        return None
    head = value[:limit]
    try:
        text = head.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3 and len(value) > limit:  # a character cut by the limit
            text, encoding = head[:exc.start].decode("utf-8"), "utf-8"
            head = head[:exc.start]
        else:
            text, encoding = head.hex(), "hex"
    return ReadableBytes(text, encoding, len(head), len(value))


def _dead_letter(row: asyncpg.Record) -> DeadLetter:
    values = dict(row)
    values["id"] = str(values["id"])
    if "headers" in values:
        raw = values["headers"]
        pairs = orjson.loads(raw) if isinstance(raw, (str, bytes)) else raw  # with or without a jsonb codec
        values["headers"] = tuple((k, bytes.fromhex(v)) for k, v in pairs)
    return DeadLetter(**values)


def _dead_letter_uuid(dead_letter_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(dead_letter_id)
    except ValueError:
        raise NotFound(f"{dead_letter_id!r} is not a dead-letter id (a UUID); "
                       "find it with `hub dlq list`") from None


async def list_dead_letters(conn: asyncpg.Connection, reason: str | None = None, topic: str | None = None,
                            limit: int = 50) -> list[DeadLetter]:
    return [_dead_letter(r) for r in await conn.fetch(SELECT_DEAD_LETTERS, reason, topic, limit)]


async def get_dead_letter(conn: asyncpg.Connection, dead_letter_id: str) -> DeadLetter:
    row = await conn.fetchrow(SELECT_DEAD_LETTER, _dead_letter_uuid(dead_letter_id))
    if row is None:
        raise NotFound(f"no dead letter {dead_letter_id}; find the id with `hub dlq list`")
    return _dead_letter(row)


@dataclass(frozen=True)
class Replayed:
    dead_letter_id: str
    topic: str
    partition: int
    offset: int
    replayed_at: datetime


async def replay_dead_letter(conn: asyncpg.Connection, settings: Settings, letter: DeadLetter,
                             value: bytes, key: bytes | None) -> Replayed:
    """Publish `value` to the letter's source topic, then stamp the letter (it is never deleted).

    Published first: if stamping fails the message is out anyway, and publishing it again is
    harmless (the hub drops a re-published event_id).
    """
    producer = AIOKafkaProducer(**producer_kwargs(settings))
    try:
        await producer.start()
        meta = await producer.send_and_wait(letter.source_topic, value=value, key=key,
                                            headers=list(letter.headers) or None)
    except KafkaError as exc:
        raise OpsError(f"could not publish to {letter.source_topic} ({type(exc).__name__}: {exc}); "
                       "check HUB_KAFKA_BOOTSTRAP and that the topic exists; the dead letter is unchanged") from exc
    finally:
        await producer.stop()
    replayed_at = await conn.fetchval(MARK_REPLAYED, uuid.UUID(letter.id))
    return Replayed(letter.id, meta.topic, meta.partition, meta.offset, replayed_at)


# --- alerts on the handler queues ------------------------------------------------------------


@dataclass(frozen=True)
class SeenAlert:
    queue: str  # 'exceptions', 'urgent-orders' or 'complaints'
    alert: Alert


@dataclass
class AlertBoard:
    """What the watch screen shows: distinct alerts (by alert_id), counted, the newest kept.

    Filters apply before counting, so the counts describe what is on screen.
    """

    keep: int = 20
    queue: str | None = None
    severity: str | None = None
    newest: list[SeenAlert] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)  # (queue, severity) -> distinct alerts
    _seen: set[str] = field(default_factory=set)

    def wants(self, seen: SeenAlert) -> bool:
        return (self.queue is None or seen.queue == self.queue) and \
            (self.severity is None or seen.alert.severity.value == self.severity)

    def add(self, batch: Iterable[SeenAlert]) -> int:
        """Take new alerts; returns how many were new. A re-sent alert (same alert_id) counts once."""
        added = 0
        for seen in batch:
            if not self.wants(seen) or seen.alert.alert_id in self._seen:
                continue
            self._seen.add(seen.alert.alert_id)
            self.counts[(seen.queue, seen.alert.severity.value)] += 1
            self.newest.append(seen)
            added += 1
        if added:
            self.newest.sort(key=lambda s: (s.alert.created_at, s.alert.alert_id), reverse=True)
            del self.newest[self.keep:]
        return added

    @property
    def total(self) -> int:
        return sum(self.counts.values())


def alert_queues(settings: Settings) -> dict[str, str]:
    """Topic -> the queue name operators use."""
    return {settings.topic_alerts_exceptions: "exceptions", settings.topic_alerts_urgent: "urgent-orders",
            settings.topic_alerts_complaints: "complaints"}


SKIP_TO_NOW_TIMEOUT_S = 10.0


class AlertStream:
    """Reads the three alert topics on every partition, without a consumer group.

    A watcher needs every partition anyway, so it assigns them itself: no group join to wait
    for (about 5 s on some brokers), no rebalancing, and no abandoned groups left on the
    cluster after each run. It commits nothing; each run starts from the beginning or the end.
    """

    def __init__(self, settings: Settings, from_beginning: bool) -> None:
        self.settings = settings
        self.queues = alert_queues(settings)
        self.from_beginning = from_beginning
        self.missing_topics: list[str] = []
        self.unreadable = 0
        self._consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(settings), group_id=None, enable_auto_commit=False,
            client_id=f"{settings.client_id}-alerts-watch",
            auto_offset_reset="earliest" if from_beginning else "latest",
        )
        self._partitions: list[TopicPartition] = []

    async def __aenter__(self) -> "AlertStream":
        try:
            await self._consumer.start()
            existing = await self._consumer.topics()
            self.missing_topics = [t for t in self.queues if t not in existing]
            self._partitions = [TopicPartition(t, p) for t in self.queues if t in existing
                                for p in sorted(self._consumer.partitions_for_topic(t) or ())]
            self._consumer.assign(self._partitions)
            if self._partitions and self.from_beginning:
                await self._consumer.seek_to_beginning(*self._partitions)
            elif self._partitions:
                await self._skip_to_now()
        except KafkaError as exc:
            await self._consumer.stop()
            raise OpsError(f"cannot read the alert topics ({type(exc).__name__}: {exc}); "
                           "check HUB_KAFKA_BOOTSTRAP") from exc
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._consumer.stop()

    async def _skip_to_now(self) -> None:
        """Start after the last alert already on each partition.

        seek_to_end() asks ListOffsets, which Tansu 0.6 answers too low once a partition holds
        a multi-record batch (older alerts would show as new). So the end comes from the high
        watermark of fetch responses, as in `_caught_up`; what the fetches return is skipped.
        """
        await self._consumer.seek_to_end(*self._partitions)
        deadline = time.monotonic() + SKIP_TO_NOW_TIMEOUT_S
        while any(self._consumer.highwater(tp) is None for tp in self._partitions) and time.monotonic() < deadline:
            await self._consumer.getmany(timeout_ms=200)
        for tp in self._partitions:
            high = self._consumer.highwater(tp)
            if high is not None and high > await self._consumer.position(tp):
                self._consumer.seek(tp, high)

    def _decode(self, topic: str, value: bytes | None) -> SeenAlert | None:
        # A tolerant reader: fields a later contract version adds are ignored, not fatal.
        try:
            document = orjson.loads(value or b"")
            known = {k: v for k, v in document.items() if k in Alert.model_fields}
            return SeenAlert(self.queues[topic], Alert.model_validate(known))
        except (orjson.JSONDecodeError, AttributeError, ValidationError):
            self.unreadable += 1
            return None

    async def poll(self, timeout_s: float) -> list[SeenAlert]:
        if not self._partitions:
            await asyncio.sleep(timeout_s)
            return []
        batches = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000))
        return [seen for records in batches.values() for r in records
                if (seen := self._decode(r.topic, r.value)) is not None]

    async def drain(self, timeout_s: float = 30.0) -> list[SeenAlert]:
        """Everything up to the end of each partition as of now (for a one-off snapshot)."""
        if not self._partitions:
            return []
        found: list[SeenAlert] = []
        deadline = time.monotonic() + timeout_s
        while True:
            found += await self.poll(0.5)
            if await self._caught_up():
                return found
            if time.monotonic() > deadline:
                raise OpsError(f"the alert topics did not finish reading within {timeout_s:.0f}s; "
                               "the broker may be overloaded, try again")

    async def _caught_up(self) -> bool:
        # The high watermark from fetch responses, not end_offsets(): Tansu 0.6 answers
        # ListOffsets wrongly once a partition holds a multi-record batch.
        for tp in self._partitions:
            high = self._consumer.highwater(tp)
            if high is None or await self._consumer.position(tp) < high:
                return False
        return True
