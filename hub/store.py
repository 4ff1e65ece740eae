"""Apply one batch's decisions in one Postgres transaction (the unit of work).

inbox (dedup) and history -> lock the shipments -> load what is known -> route each new event
in occurred_at order -> write sheets, tasks, notifications and outbox rows. The caller commits
Kafka offsets only after this transaction has committed.
"""

from __future__ import annotations

import hashlib
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import asyncpg
import orjson

from hub import queries
from hub.decoding import Accepted, Record, Rejected, payload_hash
from hub.routing import Decision, SourceRef, route_event, stable_id
from hub.rules import Rules
from hub.state import CustomerInfo, Known, ShipmentSheet
from schemas.enums import (
    CustomerTier,
    DeadLetterReason,
    Direction,
    Language,
    NotificationChannel,
    ShipmentEventType,
)
from schemas.inbound import CallLog, CarrierUpdate, ShipmentEvent
from schemas.outbound import DeadLetterHeaders

log = logging.getLogger("hub.store")


@dataclass(frozen=True)
class Topics:
    """Where alerts and dead letters go (logical queue -> topic)."""

    alerts: dict[str, str]
    dead_letter: str


@dataclass
class BatchOutcome:
    records: int = 0
    processed: int = 0
    duplicates: int = 0
    dead_lettered: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    alerts: dict[tuple[str, str], int] = field(default_factory=lambda: defaultdict(int))  # (queue, severity)
    tasks: int = 0
    notifications: int = 0
    by_topic: dict[str, int] = field(default_factory=lambda: defaultdict(int))  # processed per topic
    duplicates_by_topic: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    dead_lettered_by_topic: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def merge(self, other: "BatchOutcome") -> None:
        self.records += other.records
        self.processed += other.processed
        self.duplicates += other.duplicates
        self.tasks += other.tasks
        self.notifications += other.notifications
        for mine, theirs in ((self.dead_lettered, other.dead_lettered), (self.alerts, other.alerts),
                             (self.by_topic, other.by_topic), (self.duplicates_by_topic, other.duplicates_by_topic),
                             (self.dead_lettered_by_topic, other.dead_lettered_by_topic)):
            for k, v in theirs.items():
                mine[k] += v


async def apply_batch(conn: asyncpg.Connection, accepted: list[Accepted], rejected: list[Rejected],
                      rules: Rules, topics: Topics, now: datetime | None = None) -> BatchOutcome:
    """Run inside a transaction. Idempotent: a redelivered batch changes nothing."""
    now = now or datetime.now(UTC)
    outcome = BatchOutcome()
    unique, conflicts, in_batch_dupes = _dedupe_within_batch(accepted)
    rejected = rejected + conflicts
    # Claiming and recording the events needs nothing known about their shipments, so it happens
    # before the shipment locks, while the previous batch may still hold them: about a third of a
    # batch's time in Postgres overlaps the previous batch instead of queueing behind it.
    fresh, stored_conflicts, stored_dupes = await _claim_inbox(conn, unique)
    rejected = rejected + stored_conflicts
    await _write_history(conn, fresh)
    await conn.execute(queries.LOCK_SHIPMENTS, list({s for a in fresh if (s := _shipment_of(a))}))
    for item in in_batch_dupes + stored_dupes:
        outcome.duplicates += 1
        outcome.duplicates_by_topic[item.record.topic] += 1
    known = await _load_known(conn, fresh, rules)
    decisions = _decide(fresh, known, rules, now)
    await _write(conn, decisions, known, topics, outcome)
    await _dead_letter(conn, rejected, topics, now, outcome)
    outcome.processed += len(fresh)
    for item in fresh:
        outcome.by_topic[item.record.topic] += 1
    return outcome


# --- dedup -----------------------------------------------------------------------------------


def _conflict(item: Accepted, why: str) -> Rejected:
    return Rejected(item.record, DeadLetterReason.CONFLICTING_DUPLICATE, "ConflictingDuplicate", why)


def _dedupe_within_batch(accepted: list[Accepted]) -> tuple[list[Accepted], list[Rejected], list[Accepted]]:
    first: dict[str, Accepted] = {}
    conflicts, dupes = [], []
    for item in accepted:
        seen = first.get(item.event.event_id)
        if seen is None:
            first[item.event.event_id] = item
        elif seen.record.topic == item.record.topic and (
                seen.raw_hash == item.raw_hash or seen.payload_hash == item.payload_hash):
            dupes.append(item)
        else:
            conflicts.append(_conflict(item, _conflict_text(item, seen.record.topic)))
    return list(first.values()), conflicts, dupes


def _conflict_text(item: Accepted, topic: str) -> str:
    if topic != item.record.topic:
        return f"event_id {item.event.event_id!r} was already processed from topic {topic!r}"
    return f"event_id {item.event.event_id!r} was already processed with a different payload"


async def _claim_inbox(conn: asyncpg.Connection, items: list[Accepted]
                       ) -> tuple[list[Accepted], list[Rejected], list[Accepted]]:
    if not items:
        return [], [], []
    rows = await conn.fetch(queries.INSERT_INBOX, _rows([
        {"event_id": a.event.event_id, "topic": a.record.topic, "payload_hash": _bytea(a.raw_hash),
         "partition": a.record.partition, "offset": a.record.offset} for a in items]))
    inserted = {r["event_id"] for r in rows}
    fresh = [a for a in items if a.event.event_id in inserted]
    seen = [a for a in items if a.event.event_id not in inserted]
    if not seen:
        return fresh, [], []
    stored = {r["event_id"]: r for r in await conn.fetch(queries.SELECT_INBOX, [a.event.event_id for a in seen])}
    conflicts, dupes = [], []
    for item in seen:
        row = stored[item.event.event_id]
        if row["topic"] == item.record.topic and (
                bytes(row["payload_hash"]) == item.raw_hash or await _same_content(conn, item)):
            dupes.append(item)
        else:
            conflicts.append(_conflict(item, _conflict_text(item, row["topic"])))
    return fresh, conflicts, dupes


async def _same_content(conn: asyncpg.Connection, item: Accepted) -> bool:
    """Other bytes, same content? (key order, spacing, nulls, offsets) Rare, so checked one by one."""
    stored = await conn.fetchval(queries.SELECT_STORED_PAYLOAD, item.event.event_id)
    if stored is None:
        return False
    try:
        return payload_hash(type(item.event).model_validate(orjson.loads(stored))) == item.payload_hash
    except (ValueError, TypeError):  # the stored copy no longer validates or serialises: not provably equal
        return False


# --- what is known ---------------------------------------------------------------------------


@dataclass
class _KnownState:
    sheets: dict[str, ShipmentSheet]
    customers: dict[str, CustomerInfo]
    contacts: dict[str, list[datetime]]
    touched: set[str] = field(default_factory=set)
    new_customers: dict[str, CustomerInfo] = field(default_factory=dict)
    adoptions: dict[str, str] = field(default_factory=dict)


def _shipment_of(item: Accepted) -> str | None:
    return item.event.__dict__.get("shipment_id")  # declared on every inbound model; skips pydantic's __getattr__


async def _load_known(conn: asyncpg.Connection, items: list[Accepted], rules: Rules) -> _KnownState:
    shipment_ids = sorted({s for a in items if (s := _shipment_of(a))})
    sheets = {r["shipment_id"]: _sheet(r) for r in await conn.fetch(queries.SELECT_SHIPMENTS, shipment_ids)} \
        if shipment_ids else {}
    customer_ids = {a.event.customer_id for a in items if not isinstance(a.event, CarrierUpdate)}
    customer_ids |= {s.customer_id for s in sheets.values() if s.customer_id}
    customers = {r["customer_id"]: _customer(r) for r in
                 await conn.fetch(queries.SELECT_CUSTOMERS, sorted(customer_ids))} if customer_ids else {}
    return _KnownState(sheets, customers, await _load_contacts(conn, items, rules))


async def _load_contacts(conn: asyncpg.Connection, items: list[Accepted], rules: Rules) -> dict[str, list[datetime]]:
    spec = rules.repeat_contact
    calls = [a.event for a in items if isinstance(a.event, CallLog) and a.event.shipment_id
             and a.event.direction is Direction.INBOUND and a.event.category in spec.categories]
    contacts: dict[str, list[datetime]] = defaultdict(list)
    if not calls:
        return contacts
    times = [c.occurred_at for c in calls]
    rows = await conn.fetch(queries.SELECT_CONTACTS, sorted({c.shipment_id for c in calls}),
                            [c.value for c in spec.categories], min(times) - spec.window, max(times) + spec.window)
    # This batch's own calls are already in call_logs; routing adds them one by one, in time order.
    own = {a.event.event_id for a in items}
    for row in rows:
        if row["event_id"] not in own:
            contacts[row["shipment_id"]].append(row["occurred_at"])
    return contacts


_STATUS_BY_VALUE = {status.value: status for status in ShipmentEventType}  # a dict lookup; Enum(value) is slower


def _sheet(row: asyncpg.Record) -> ShipmentSheet:
    return ShipmentSheet(
        shipment_id=row["shipment_id"], customer_id=row["customer_id"], order_id=row["order_id"],
        status=_STATUS_BY_VALUE.get(row["status"]), last_event_at=row["last_event_at"],
        promised_delivery_at=row["promised_delivery_at"], eta=row["eta"], eta_reported_at=row["eta_reported_at"],
        eta_alerted=row["eta_alerted"], carrier_id=row["carrier_id"], priority=row["priority"],
        notified_milestones=frozenset(row["notified_milestones"]),
        repeat_contact_fired=tuple(row["repeat_contact_fired"]),
    )


def _customer(row: asyncpg.Record) -> CustomerInfo:
    return CustomerInfo(row["customer_id"], CustomerTier(row["tier"]), Language(row["language"]),
                        NotificationChannel(row["preferred_channel"]))


# --- deciding --------------------------------------------------------------------------------


def _decide(items: list[Accepted], state: _KnownState, rules: Rules, now: datetime) -> list[Decision]:
    """Route each event against the state left by the events before it (occurred_at order)."""
    decisions = []
    for item in sorted(items, key=lambda a: a.event.occurred_at):
        event = item.event
        shipment_id = _shipment_of(item)
        sheet = state.sheets.get(shipment_id) if shipment_id else None
        customer_id = sheet.customer_id if isinstance(event, CarrierUpdate) and sheet else \
            event.__dict__.get("customer_id")
        customer = state.customers.get(customer_id) if customer_id else None
        known = Known(sheet, customer, tuple(state.contacts.get(shipment_id, ())) if shipment_id else ())
        source = SourceRef(item.record.topic, item.record.partition, item.record.offset, event.event_id)
        decision = route_event(event, known, source, rules, now)
        _remember(state, item, decision, rules)
        decisions.append(decision)
    return decisions


def _remember(state: _KnownState, item: Accepted, decision: Decision, rules: Rules) -> None:
    event = item.event
    if decision.sheet is not None:
        state.sheets[decision.sheet.shipment_id] = decision.sheet
        state.touched.add(decision.sheet.shipment_id)
    if decision.new_customer is not None:
        state.customers[decision.new_customer.customer_id] = decision.new_customer
        state.new_customers[decision.new_customer.customer_id] = decision.new_customer
    if decision.adopt_customer is not None and decision.sheet is not None:
        state.adoptions[decision.sheet.shipment_id] = decision.adopt_customer
    if isinstance(event, CallLog) and event.shipment_id and event.direction is Direction.INBOUND \
            and event.category in rules.repeat_contact.categories:
        state.contacts.setdefault(event.shipment_id, []).append(event.occurred_at)


# --- writing ---------------------------------------------------------------------------------


def _rows(rows: list[dict[str, Any]]) -> str:
    """One JSON array for json_populate_recordset (see hub/queries.py)."""
    return orjson.dumps(rows).decode()


def _bytea(value: bytes | None) -> str | None:
    return None if value is None else "\\x" + value.hex()


def _hex_headers(headers) -> list[list[str]]:
    return [[name, value.hex()] for name, value in headers]


async def _write(conn: asyncpg.Connection, decisions: list[Decision], state: _KnownState, topics: Topics,
                 outcome: BatchOutcome) -> None:
    if state.new_customers:
        await conn.execute(queries.INSERT_CUSTOMERS, sorted(state.new_customers))
    if state.touched:
        # orjson writes the dataclasses itself; their field names are the columns' names.
        sheets = orjson.dumps([state.sheets[s] for s in sorted(state.touched)], default=sorted).decode()
        await conn.execute(queries.UPSERT_SHIPMENTS, sheets)
    tasks = [t for d in decisions for t in d.tasks]
    await _copy(conn, queries.COPY_TASKS, [(
        t.task_id, t.department, t.kind, t.severity.value, t.shipment_id, t.customer_id, t.title,
        _json(t.details), t.due_at, t.source_event_id, t.rule, t.alert_id) for t in tasks])
    notes = [n for d in decisions for n in d.notifications]
    await _copy(conn, queries.COPY_NOTIFICATIONS, [(
        n.notification_id, n.customer_id, n.shipment_id, n.kind.value, n.channel, n.language, n.body,
        n.source_event_id) for n in notes])
    if state.adoptions:
        await conn.execute(queries.ADOPT_TASKS, list(state.adoptions), list(state.adoptions.values()))
    alerts = [a for d in decisions for a in d.alerts]
    if alerts:
        await _copy(conn, queries.COPY_OUTBOX, [(
            topics.alerts[a.queue], (a.alert.key or "").encode(), a.alert.model_dump_json().encode(),
            _json([["hub.alert_id", a.alert.alert_id.encode().hex()]]), a.alert.alert_id) for a in alerts])
        await conn.execute(queries.NOTIFY_OUTBOX)
    outcome.tasks += len(tasks)
    outcome.notifications += len(notes)
    for a in alerts:
        outcome.alerts[(a.queue, a.alert.severity.value)] += 1


async def _copy(conn: asyncpg.Connection, target: tuple[str, tuple[str, ...]], records: list[tuple]) -> None:
    if records:
        table, columns = target
        await conn.copy_records_to_table(table, records=records, columns=columns)


def _json(value: Any) -> str:
    return orjson.dumps(value).decode()


async def _write_history(conn: asyncpg.Connection, items: list[Accepted]) -> None:
    # The payload is stored as received (the text the decoder checked), unknown fields included.
    await _copy(conn, queries.COPY_SHIPMENT_EVENTS, [(
        a.event.event_id, a.event.shipment_id, a.record.topic,
        (a.event.type if isinstance(a.event, ShipmentEvent) else a.event.status).value,
        a.event.occurred_at, a.payload_text) for a in items if not isinstance(a.event, CallLog)])
    await _copy(conn, queries.COPY_CALL_LOGS, [(
        a.event.event_id, a.event.call_id, a.event.customer_id, a.event.shipment_id, a.event.direction.value,
        a.event.channel.value, a.event.category.value, a.event.occurred_at, a.payload_text)
        for a in items if isinstance(a.event, CallLog)])


# --- dead letters ----------------------------------------------------------------------------


def dead_letter_id(record: Record) -> tuple[str, bytes]:
    """Deterministic from the record's position and bytes: a redelivered bad record is registered once."""
    digest = hashlib.sha256(record.value or b"").digest()
    return stable_id("dead-letter", record.topic, str(record.partition), str(record.offset), digest.hex()), digest


async def _dead_letter(conn: asyncpg.Connection, rejected: list[Rejected], topics: Topics, now: datetime,
                       outcome: BatchOutcome) -> None:
    """Register each rejected record once (by source position and bytes) and queue it for the DLQ topic."""
    if not rejected:
        return
    ids = [dead_letter_id(r.record) for r in rejected]
    rows = await conn.fetch(queries.INSERT_DEAD_LETTERS, _rows([{
        "id": dead_id, "source_topic": r.record.topic, "source_partition": r.record.partition,
        "source_offset": r.record.offset, "value_hash": _bytea(digest), "reason": r.reason, "error_class": r.error_class,
        "message": r.message, "key": _bytea(r.record.key), "value": _bytea(r.record.value),
        "headers": _hex_headers(r.record.headers)} for (dead_id, digest), r in zip(ids, rejected)]))
    new = {str(r["id"]) for r in rows}
    fresh = [(i, r) for (i, _), r in zip(ids, rejected) if i in new]
    for _, r in fresh:
        outcome.dead_lettered[r.reason.value] += 1
        outcome.dead_lettered_by_topic[r.record.topic] += 1
        log.info("dead letter (%s) from %s[%d]@%d: %s", r.reason.value, r.record.topic, r.record.partition,
                    r.record.offset, r.message, extra=_ids_of(r.record))
    if not fresh:
        return
    await conn.execute(queries.INSERT_OUTBOX, _rows([{
        "topic": topics.dead_letter, "key": _bytea(r.record.key), "value": _bytea(r.record.value),
        "headers": _hex_headers((*r.record.headers, *_headers(r, now))), "message_id": dead_id}
        for dead_id, r in fresh]))
    await conn.execute(queries.NOTIFY_OUTBOX)


def _ids_of(record: Record) -> dict[str, str]:
    """event_id and shipment_id of a rejected record, when its JSON still names them (for JSON logs)."""
    try:
        document = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(document, dict):
        return {}
    return {k: v for k in ("event_id", "shipment_id") if isinstance(v := document.get(k), str) and len(v) <= 128}


def _headers(rejected: Rejected, now: datetime) -> list[tuple[str, bytes]]:
    return DeadLetterHeaders(
        reason=rejected.reason, error_class=rejected.error_class, message=rejected.message,
        topic=rejected.record.topic, partition=rejected.record.partition, offset=rejected.record.offset,
        timestamp=now,
    ).to_kafka()


