"""Apply one batch in one Postgres transaction (the unit of work).

claim the inbox (dedupe) and record history -> lock the batch's shipments -> load what is known
-> fold the events (hub.core.fold, pure) -> write sheets, tasks, notifications and outbox rows,
and register the dead letters. The caller commits Kafka offsets only after this transaction
has committed.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import asyncpg
import orjson

from hub.core.decoding import Accepted, Rejected, payload_hash
from hub.core.fold import BatchDecisions, KnownState, fold, shipment_of
from hub.core.outcome import BatchOutcome
from hub.core.outputs import TaskEvent
from hub.core.routing import customer_of
from hub.core.rules import Rules
from hub.core.state import OrphanTask, ShipmentSheet
from hub.core.topics import Destinations
from hub.store import queries
from hub.store.dead_letters import register_dead_letters
from hub.store.rows import bytea, copy_rows, customer_from_row, json_rows, sheet_from_row
from hub.store.writes import created, effect_rows, write_effect_rows
from schemas.enums import DeadLetterReason, Severity
from schemas.inbound import CallLog, CarrierUpdate, ShipmentEvent


async def apply_batch(
    conn: asyncpg.Connection,
    accepted: list[Accepted],
    rejected: list[Rejected],
    rules: Rules,
    destinations: Destinations,
    now: datetime | None = None,
    after_claim: Callable[[], None] | None = None,
) -> BatchOutcome:
    """Run inside a transaction. Idempotent: a redelivered batch changes nothing.

    `after_claim` is called once the inbox rows are claimed (uncommitted, but holding their
    event_ids): a batch read later may claim its own from then on (hub.pipeline.InboxTurn).
    """
    now = now or datetime.now(UTC)
    outcome = BatchOutcome()
    unique, conflicts, in_batch_dupes = _dedupe_within_batch(accepted)
    # Claiming and recording the events needs nothing known about their shipments, so it happens
    # before the shipment locks, while the previous batch may still hold them: about a third of a
    # batch's time in Postgres overlaps the previous batch instead of queueing behind it.
    fresh, stored_conflicts, stored_dupes = await _claim_inbox(conn, unique)
    if after_claim is not None:
        after_claim()
    await _write_history(conn, fresh)
    await conn.execute(queries.LOCK_SHIPMENTS, list({s for a in fresh if (s := shipment_of(a.event))}))
    decided = fold(fresh, await _load_known(conn, fresh, rules), rules, now)
    await _write(conn, decided, destinations, now, outcome)
    await register_dead_letters(conn, rejected + conflicts + stored_conflicts, destinations.dead_letter, now, outcome)
    for item in in_batch_dupes + stored_dupes:
        outcome.duplicates += 1
        outcome.duplicates_by_topic[item.record.topic] += 1
    outcome.processed += len(fresh)
    outcome.by_topic.update(item.record.topic for item in fresh)
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
            seen.raw_hash == item.raw_hash or payload_hash(seen.event) == payload_hash(item.event)
        ):
            dupes.append(item)
        else:
            conflicts.append(_conflict(item, _conflict_text(item, seen.record.topic)))
    return list(first.values()), conflicts, dupes


def _conflict_text(item: Accepted, topic: str) -> str:
    if topic != item.record.topic:
        return f"event_id {item.event.event_id!r} was already processed from topic {topic!r}"
    return f"event_id {item.event.event_id!r} was already processed with a different payload"


async def _claim_inbox(
    conn: asyncpg.Connection, items: list[Accepted]
) -> tuple[list[Accepted], list[Rejected], list[Accepted]]:
    if not items:
        return [], [], []
    rows = await conn.fetch(
        queries.INSERT_INBOX,
        json_rows(
            [
                {
                    "event_id": a.event.event_id,
                    "topic": a.record.topic,
                    "payload_hash": bytea(a.raw_hash),
                    "partition": a.record.partition,
                    "offset": a.record.offset,
                }
                for a in items
            ]
        ),
    )
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
            bytes(row["payload_hash"]) == item.raw_hash or await _same_content(conn, item)
        ):
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
        return payload_hash(type(item.event).model_validate(orjson.loads(stored))) == payload_hash(item.event)
    except (ValueError, TypeError):  # the stored copy no longer validates or serialises: not provably equal
        return False


# --- what is known ---------------------------------------------------------------------------


async def _load_known(conn: asyncpg.Connection, items: list[Accepted], rules: Rules) -> KnownState:
    shipment_ids = sorted({s for a in items if (s := shipment_of(a.event))})
    sheets = (
        {r["shipment_id"]: sheet_from_row(r) for r in await conn.fetch(queries.SELECT_SHIPMENTS, shipment_ids)}
        if shipment_ids
        else {}
    )
    customer_ids = {c for a in items if (c := customer_of(a.event, None))}
    customer_ids |= {s.customer_id for s in sheets.values() if s.customer_id}
    customers = (
        {
            r["customer_id"]: customer_from_row(r)
            for r in await conn.fetch(queries.SELECT_CUSTOMERS, sorted(customer_ids))
        }
        if customer_ids
        else {}
    )
    return KnownState(
        sheets, customers, await _load_contacts(conn, items, rules), await _load_orphans(conn, items, sheets)
    )


async def _load_orphans(
    conn: asyncpg.Connection, items: list[Accepted], sheets: dict[str, ShipmentSheet]
) -> dict[str, list[OrphanTask]]:
    """Customerless tasks of the shipments whose customer this batch may bring (a shipment event
    for a sheet without one): they take the customer, and it gets their notices."""
    wanted = sorted(
        {
            e.shipment_id
            for a in items
            if isinstance(e := a.event, ShipmentEvent)
            and (sheet := sheets.get(e.shipment_id)) is not None
            and sheet.customer_id is None
        }
    )
    orphans: dict[str, list[OrphanTask]] = {}
    if not wanted:
        return orphans
    for r in await conn.fetch(queries.SELECT_ORPHAN_TASKS, wanted):
        orphans.setdefault(r["shipment_id"], []).append(
            OrphanTask(
                r["task_id"],
                r["rule"],
                Severity(r["severity"]),
                r["source_event_id"],
                r["occurred_at"],
                orjson.loads(r["details"]),
                r["active"],
            )
        )
    return orphans


async def _load_contacts(conn: asyncpg.Connection, items: list[Accepted], rules: Rules) -> dict[str, list[datetime]]:
    spec = rules.repeat_contact
    calls = [a.event for a in items if spec.counts(a.event)]
    contacts: dict[str, list[datetime]] = {}
    if not calls:
        return contacts
    times = [c.occurred_at for c in calls]
    rows = await conn.fetch(
        queries.SELECT_CONTACTS,
        sorted({s for c in calls if (s := shipment_of(c))}),
        [c.value for c in spec.categories],
        min(times) - spec.window,
        max(times) + spec.window,
    )
    # This batch's own calls are already in call_logs; the fold adds them one by one, in time order.
    own = {a.event.event_id for a in items}
    for row in rows:
        if row["event_id"] not in own:
            contacts.setdefault(row["shipment_id"], []).append(row["occurred_at"])
    return contacts


# --- writing ---------------------------------------------------------------------------------


async def _write(
    conn: asyncpg.Connection, decided: BatchDecisions, destinations: Destinations, now: datetime, outcome: BatchOutcome
) -> None:
    if decided.new_customers:
        await conn.execute(queries.INSERT_CUSTOMERS, sorted(decided.new_customers))
    if decided.sheets:
        # orjson writes the dataclasses itself; their field names are the columns' names.
        sheets = orjson.dumps([decided.sheets[s] for s in sorted(decided.sheets)], default=sorted).decode()
        await conn.execute(queries.UPSERT_SHIPMENTS, sheets)
    tasks = [t for d in decided.decisions for t in d.tasks]
    notes = [n for d in decided.decisions for n in d.notifications]
    alerts = [a for d in decided.decisions for a in d.alerts]
    updates = decided.task_updates
    escalated = [
        TaskEvent(
            u.task_id,
            now,
            "escalated",
            {"reason": "key_account", "severity": u.severity.value, "due_at": u.due_at.isoformat()},
        )
        for u in updates
    ]
    # As the clock writes its effects: the new tasks, all history in one COPY (one NOTIFY), notices, alerts.
    await write_effect_rows(conn, effect_rows(tasks, created(tasks, now) + escalated, notes, alerts, destinations))
    if decided.adoptions:  # after the new tasks: it covers every customerless task of the shipment
        await conn.execute(queries.ADOPT_TASKS, list(decided.adoptions), list(decided.adoptions.values()))
    if updates:
        await conn.execute(
            queries.UPDATE_TASK_SEVERITIES,
            [u.task_id for u in updates],
            [u.severity.value for u in updates],
            [u.due_at for u in updates],
            [u.warn_at for u in updates],
            [u.escalate_at for u in updates],
        )
    outcome.tasks += len(tasks)
    outcome.notifications += len(notes)
    outcome.alerts.update((a.queue.value, a.alert.severity.value) for a in alerts)


async def _write_history(conn: asyncpg.Connection, items: list[Accepted]) -> None:
    # The payload is stored as received (the text the decoder checked), unknown fields included.
    movements, calls = [], []
    for a in items:
        event = a.event
        if isinstance(event, CallLog):
            calls.append(
                (
                    event.event_id,
                    event.call_id,
                    event.customer_id,
                    event.shipment_id,
                    event.direction.value,
                    event.channel.value,
                    event.category.value,
                    event.occurred_at,
                    a.payload_text,
                    event.satisfaction_score,
                    event.reference,
                )
            )
        elif isinstance(event, ShipmentEvent | CarrierUpdate):
            status = event.type if isinstance(event, ShipmentEvent) else event.status
            movements.append(
                (event.event_id, event.shipment_id, a.record.topic, status.value, event.occurred_at, a.payload_text)
            )
    await copy_rows(conn, queries.COPY_SHIPMENT_EVENTS, movements)
    await copy_rows(conn, queries.COPY_CALL_LOGS, calls)
