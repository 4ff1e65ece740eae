"""Jepsen-style checker: compare what the hub left in Postgres and on its topics with the ledger.

Anomalies (names after jepsen.tests.kafka where one exists):
  lost              a ledger event without all its required effects (inbox row; history row in
                    shipment_events or call_logs; each expected task, outbox alert and notification)
  duplicate effect  more than one row for one (source_event_id, effect kind): history, tasks,
                    notifications, or an alert written twice to the outbox
  unexpected effect an effect the ledger does not call for (a task or alert for the wrong rule,
                    an inbox row for a hostile message, a notice of a kind the event cannot cause)
  duplicate alert   the same alert_id more than once on its queue (allowed, counted: the relay is
                    at-least-once and consumers de-duplicate by alert_id)
  missing alert     an expected alert_id not on its handler queue
  stale overwrite   a tracking sheet whose status or ETA differs from applying the shipment's
                    events in occurred_at order
  dead letters      each hostile message dead-lettered exactly once, with its reason and its bytes,
                    in `dead_letters` and on the dead-letter topic; nothing else dead-lettered
  altered text      free text (SQL-looking) not stored exactly as sent

All of these are correctness findings: a re-run never clears them (runner.py). Two more counts
are liveness, not loss (after jepsen's `unseen`): work the hub has not done *yet*, which the
scenario's own stall failures ("lag not zero", "outbox not drained") report as well:
  unseen            a ledger event (or hostile message) with nothing stored at all, none of whose
                    acknowledged copies the consumer group has committed past: still to be read.
                    Committed past with nothing stored is `lost`. Without the group's committed
                    offsets every missing event is `lost`.
  unsent            an expected alert or dead letter not on its topic whose outbox row is still
                    waiting to be sent (an outbox row marked sent but not on the topic is missing).
Events counted unseen are left out of the alert and sheet expectations (the sheet is expected from
the shipment's events the hub did read, in occurred_at order).

The handler queues are drained by a fresh consumer that assigns itself every partition (no
group join, so no committed offsets and no rebalance wait) and reads from the beginning to the
end offsets.
"""

from __future__ import annotations

import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from hub.config import Settings
from hub.core.ids import stable_id
from hub.kafka import aiokafka_kwargs
from tests.reliability.generator import PROCESSED, GoodEvent, Hostile, Ledger
from tests.reliability.oracle import CALL
from tests.reliability.publisher import stream_topics

SAMPLES = 8

SELECT_INBOX = 'SELECT event_id, topic, partition, "offset" FROM inbox'
SELECT_HISTORY = """
SELECT event_id, count(*) AS n FROM shipment_events GROUP BY event_id
UNION ALL
SELECT event_id, count(*) AS n FROM call_logs GROUP BY event_id
"""
SELECT_TASKS = "SELECT source_event_id, rule, kind, count(*) AS n FROM coordination_tasks GROUP BY 1, 2, 3"
SELECT_NOTICES = "SELECT source_event_id, kind, count(*) AS n FROM customer_notifications GROUP BY 1, 2"
SELECT_OUTBOX_ALERTS = "SELECT topic, message_id, count(*) AS n FROM outbox WHERE topic = ANY($1::text[]) GROUP BY 1, 2"
SELECT_UNSENT = "SELECT topic, message_id FROM outbox WHERE sent_at IS NULL"
SELECT_DEAD_LETTERS = """
SELECT id::text AS id, source_topic, source_partition, source_offset, reason, error_class, message, value
FROM dead_letters
"""
SELECT_SHEETS = "SELECT shipment_id, status, eta FROM shipments"
SELECT_PAYLOADS = """
SELECT event_id, payload::text AS payload FROM call_logs WHERE event_id = ANY($1::text[])
UNION ALL
SELECT event_id, payload::text AS payload FROM shipment_events WHERE event_id = ANY($1::text[])
"""


@dataclass
class Findings:
    events: int = 0
    hostile: int = 0
    lost: int = 0
    lost_missing_on_broker: int = 0  # lost events whose records the broker no longer serves
    unseen: int = 0  # liveness: nothing stored and not committed past (see the module docstring)
    unsent: int = 0  # liveness: alerts and dead letters still waiting in the outbox
    duplicate_effects: int = 0
    unexpected_effects: int = 0
    missing_alerts: int = 0
    duplicate_alerts: int = 0
    alerts_on_queues: int = 0
    stale_overwrites: int = 0
    dead_letters: int = 0
    dead_letter_reasons: dict[str, int] = field(default_factory=dict)
    dead_letter_mismatches: int = 0
    dlq_topic_missing: int = 0
    dlq_topic_duplicates: int = 0
    dlq_tombstones_as_empty: int = 0
    altered_text: int = 0
    # the clock (clockcheck.py): firings against the timers the events call for
    firings: int = 0
    lost_firings: int = 0  # due by the end, yet disarmed without a firing
    unfired: int = 0  # liveness: due by the end, still armed, not fired yet
    unexpected_firings: int = 0  # a timer no event calls for, one fired early, a warning at or after due
    firing_effects_missing: int = 0  # a firing without its alert, task or history row
    firing_effects_doubled: int = 0  # a firing's alert, task or history row more than once
    wrong_task_windows: int = 0  # a task whose opened/due/warn/escalate moments are not the contract's
    out_of_due_order: int = 0  # a tick that fired a later timer in an earlier transaction
    # dispatch (dispatchcheck.py): notifications against what the receivers got
    notices: int = 0
    notices_lost: int = 0  # sent, yet never received (or no row status accounts for it)
    notices_failed: int = 0  # failed where the scenario allows no failure
    notices_unsent: int = 0  # liveness: still pending
    notice_id_mismatches: int = 0  # a copy under another id, a receipt of no notification, a bad signature
    notice_copies: int = 0  # counted: a notification received more than once, always under its own id
    failure_effects_wrong: int = 0  # a failed notice without one task and one alert, or given up early
    wrongly_suppressed: int = 0  # suppressed without a later milestone notice of its shipment
    samples: dict[str, list[str]] = field(default_factory=dict)

    def sample(self, kind: str, text: str) -> None:
        found = self.samples.setdefault(kind, [])
        if len(found) < SAMPLES:
            found.append(text)

    def violations(self) -> list[str]:
        """Correctness: the invariants that do not hold (duplicate alerts are allowed and only counted)."""
        checks = {
            "lost": self.lost,
            "duplicate effects": self.duplicate_effects,
            "unexpected effects": self.unexpected_effects,
            "missing alerts": self.missing_alerts,
            "stale overwrites": self.stale_overwrites,
            "dead-letter mismatches": self.dead_letter_mismatches,
            "dead letters missing from the topic": self.dlq_topic_missing,
            "altered text": self.altered_text,
            "lost firings": self.lost_firings,
            "unexpected firings": self.unexpected_firings,
            "firing effects missing": self.firing_effects_missing,
            "firing effects doubled": self.firing_effects_doubled,
            "wrong task windows": self.wrong_task_windows,
            "firings out of due order": self.out_of_due_order,
            "notices lost": self.notices_lost,
            "notices failed": self.notices_failed,
            "notice id mismatches": self.notice_id_mismatches,
            "failure effects wrong": self.failure_effects_wrong,
            "wrongly suppressed": self.wrongly_suppressed,
        }
        return [f"{name}: {count}" for name, count in checks.items() if count]

    @property
    def lost_total(self) -> int:
        """Events, firings and notices lost (the table's `lost`)."""
        return self.lost + self.lost_firings + self.notices_lost

    @property
    def doubled_total(self) -> int:
        """Effects written twice (the table's `duplicate effects`)."""
        return self.duplicate_effects + self.firing_effects_doubled

    def backlog(self) -> list[str]:
        """Liveness: work not done yet when the checker looked (nothing lost or doubled by it)."""
        checks = {
            "unseen (not yet read by the group, nothing stored)": self.unseen,
            "unsent (still in the outbox)": self.unsent,
            "unfired (due, still armed)": self.unfired,
            "notices unsent (still pending)": self.notices_unsent,
        }
        return [f"{name}: {count}" for name, count in checks.items() if count]

    def to_json(self) -> dict:
        doc = asdict(self)
        doc["samples"] = {k: v for k, v in self.samples.items() if v}
        return doc


# --- reading -----------------------------------------------------------------------------------------


async def read_topics(settings: Settings, topics: list[str], timeout: float = 60) -> list:
    """Every record on `topics`, from the beginning to the end offsets seen at the start."""
    consumer = AIOKafkaConsumer(
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        **aiokafka_kwargs(settings),
    )
    await consumer.start()
    try:
        tps = [TopicPartition(t, p) for t in topics for p in range(settings.topic_partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        records: list = []
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            behind = [tp for tp in tps if ends[tp] > 0 and await consumer.position(tp) < ends[tp]]
            if not behind:
                break
            batch = await consumer.getmany(*behind, timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
        return records
    finally:
        await consumer.stop()


@dataclass
class HubState:
    inbox: dict[str, tuple]
    history: Counter
    tasks: dict[tuple[str, str, str], int]
    notices: dict[tuple[str, str], int]
    outbox_alerts: dict[tuple[str, str], int]
    dead_letters: list[asyncpg.Record]
    sheets: dict[str, asyncpg.Record]
    unsent: frozenset[tuple[str, str]] = frozenset()  # (topic, message_id) of outbox rows not sent yet


async def read_state(dsn: str, settings: Settings) -> HubState:
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        inbox = {r["event_id"]: (r["topic"], r["partition"], r["offset"]) for r in await conn.fetch(SELECT_INBOX)}
        history = Counter()
        for r in await conn.fetch(SELECT_HISTORY):
            history[r["event_id"]] += r["n"]
        tasks = {(r["source_event_id"], r["rule"], r["kind"]): r["n"] for r in await conn.fetch(SELECT_TASKS)}
        notices = {(r["source_event_id"], r["kind"]): r["n"] for r in await conn.fetch(SELECT_NOTICES)}
        outbox = {
            (r["topic"], r["message_id"]): r["n"]
            for r in await conn.fetch(SELECT_OUTBOX_ALERTS, list(settings.alert_topics))
        }
        dead = await conn.fetch(SELECT_DEAD_LETTERS)
        sheets = {r["shipment_id"]: r for r in await conn.fetch(SELECT_SHEETS)}
        unsent = frozenset((r["topic"], r["message_id"]) for r in await conn.fetch(SELECT_UNSENT))
    finally:
        await conn.close()
    return HubState(inbox, history, tasks, notices, outbox, dead, sheets, unsent)


async def read_payloads(dsn: str, event_ids: list[str]) -> dict[str, dict]:
    if not event_ids:
        return {}
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        return {r["event_id"]: orjson.loads(r["payload"]) for r in await conn.fetch(SELECT_PAYLOADS, event_ids)}
    finally:
        await conn.close()


# --- checking -----------------------------------------------------------------------------------------


def alert_id(event_id: str, rule: str) -> str:
    return stable_id("alert", event_id, rule)  # the contract: deterministic from the source event and the rule


def queue_topics(settings: Settings) -> dict[str, str]:
    return {
        "exceptions": settings.topic_alerts_exceptions,
        "urgent_orders": settings.topic_alerts_urgent,
        "complaints": settings.topic_alerts_complaints,
    }


# The consumer group's committed offset per (topic, partition): the next offset it will read.
Committed = dict[tuple[str, int], int]


TIMER_SOURCE = "clock:"  # source_event_id of what a timer (the clock, dispatch giving up) writes


def is_timer_alert(record) -> bool:
    """An alert a timer raised (its source names the timer, not an inbound record)."""
    return "timer" in (orjson.loads(record.value).get("source") or {})


async def check(
    ledger: Ledger, settings: Settings, dsn: str, committed: Committed | None = None, timers: bool = False
) -> Findings:
    """`committed`: the group's offsets, read *before* this call (a commit follows its Postgres
    transaction, so whatever was committed past then is in the state read now). `timers`: the
    scenario runs the clock or dispatch, whose tasks and alerts its own oracle judges
    (clockcheck.py, dispatchcheck.py); they are left out here."""
    events = ledger.events
    findings = Findings(events=len(events), hostile=len(ledger.hostile))
    state = await read_state(dsn, settings)
    alerts = await read_topics(settings, list(settings.alert_topics))
    if timers:
        state.tasks = {k: n for k, n in state.tasks.items() if not k[0].startswith(TIMER_SOURCE)}
        alerts = [r for r in alerts if not is_timer_alert(r)]
    dlq = await read_topics(settings, [settings.topic_dead_letter])
    behind = unread(ledger, settings, committed)
    unseen = check_effects(findings, events, state, settings, may_be_stored(ledger), behind.events)
    check_alerts(findings, events, alerts, settings, state.unsent, unseen)
    check_sheets(findings, ledger, state, unseen)
    check_dead_letters(findings, ledger, state, dlq, settings, behind.positions)
    await check_verbatim(findings, {k: e for k, e in events.items() if k not in unseen}, dsn)
    if findings.lost:
        await check_broker_kept(findings, ledger, state, settings, unseen)
    return findings


@dataclass(frozen=True)
class Unread:
    """What the consumer group has not committed past: event ids none of whose acknowledged copies
    it has passed (an event the broker never acknowledged included), and (topic, partition, offset)
    positions."""

    events: frozenset[str] = frozenset()
    positions: frozenset[tuple[str, int, int]] = frozenset()


def unread(ledger: Ledger, settings: Settings, committed: Committed | None) -> Unread:
    """Nothing is unread without the committed offsets: every missing effect is then a loss."""
    if committed is None:
        return Unread()
    topics = stream_topics(settings)
    passed: dict[str, bool] = {}
    positions: set[tuple[str, int, int]] = set()
    for pub in ledger.publications:
        item = pub.item
        past = False
        if pub.position is not None:
            where = (topics[item.stream], *pub.position)
            past = committed.get(where[:2], 0) > where[2]
            if not past:
                positions.add(where)
        if isinstance(item, GoodEvent):
            passed[item.event_id] = passed.get(item.event_id, False) or past
    return Unread(frozenset(e for e, past in passed.items() if not past), frozenset(positions))


def may_be_stored(ledger: Ledger) -> frozenset[str]:
    return frozenset(p.item.event_id for p in ledger.hostile if PROCESSED in p.item.alternatives and p.item.event_id)


def _history_missing(event: GoodEvent, state: HubState) -> bool:
    return state.history.get(event.event_id, 0) == 0


def _nothing_stored(event: GoodEvent, state: HubState, topics: dict[str, str]) -> bool:
    return (
        event.event_id not in state.inbox
        and _history_missing(event, state)
        and not any(event.event_id == e for e, _, _ in state.tasks)
        and not any(event.event_id == e for e, _ in state.notices)
        and not any((topics[q], alert_id(event.event_id, r)) in state.outbox_alerts for q, r in event.expect.rules)
    )


def check_effects(
    f: Findings,
    events: dict[str, GoodEvent],
    state: HubState,
    settings: Settings,
    may_be_stored: frozenset[str] = frozenset(),
    unread: frozenset[str] = frozenset(),
) -> frozenset[str]:
    """`may_be_stored`: event ids of hostile messages the contract also allows to be processed;
    `unread`: event ids the group has not committed past (`Unread.events`). Returns the unseen
    event ids: unread, with nothing stored."""
    topics = queue_topics(settings)
    unseen: set[str] = set()
    task_rules: dict[str, set[str]] = defaultdict(set)
    for event_id, rule, _ in state.tasks:
        task_rules[event_id].add(rule)
    for event in events.values():
        missing = []
        if event.event_id not in state.inbox:
            missing.append("inbox")
        if _history_missing(event, state):
            missing.append("call_logs" if event.stream == CALL else "shipment_events")
        for queue, rule in event.expect.rules:
            if rule not in task_rules.get(event.event_id, ()):
                missing.append(f"task {rule}")
            if (topics[queue], alert_id(event.event_id, rule)) not in state.outbox_alerts:
                missing.append(f"outbox alert {rule}")
        for kind in event.expect.notifications:
            if (event.event_id, kind) not in state.notices:
                missing.append(f"notification {kind}")
        if not missing:
            continue
        if event.event_id in unread and _nothing_stored(event, state, topics):
            unseen.add(event.event_id)
            f.unseen += 1
            f.sample("unseen", f"{event.stream} {event.event_id}: not committed past, nothing stored")
        else:
            f.lost += 1
            f.sample("lost", f"{event.stream} {event.event_id} ({event.status or ''}): no {', '.join(missing)}")
    _check_duplicates_and_strays(f, events, state, may_be_stored)
    return frozenset(unseen)


def _check_duplicates_and_strays(
    f: Findings, events: dict[str, GoodEvent], state: HubState, may_be_stored: frozenset[str]
) -> None:
    for event_id, n in state.history.items():
        if n > 1:
            f.duplicate_effects += n - 1
            f.sample("duplicate effect", f"history of {event_id}: {n} rows")
    for (event_id, rule, kind), n in state.tasks.items():
        if n > 1:
            f.duplicate_effects += n - 1
            f.sample("duplicate effect", f"task {rule}/{kind} of {event_id}: {n} rows")
        event = events.get(event_id)
        if event is None or rule not in {r for _, r in event.expect.rules}:
            f.unexpected_effects += 1
            f.sample("unexpected effect", f"task {rule}/{kind} for {event_id}")
    for (event_id, kind), n in state.notices.items():
        if n > 1:
            f.duplicate_effects += n - 1
            f.sample("duplicate effect", f"notification {kind} of {event_id}: {n} rows")
        event = events.get(event_id)
        if event is None or kind not in event.expect.allowed_notifications:
            f.unexpected_effects += 1
            f.sample("unexpected effect", f"notification {kind} for {event_id}")
    for (topic, message_id), n in state.outbox_alerts.items():
        if n > 1:
            f.duplicate_effects += n - 1
            f.sample("duplicate effect", f"alert {message_id} written {n} times to the outbox ({topic})")
    for event_id in state.inbox.keys() - events.keys() - may_be_stored:
        f.unexpected_effects += 1
        f.sample("unexpected effect", f"inbox row for {event_id!r}, which is not a good event of the ledger")


def check_alerts(
    f: Findings,
    events: dict[str, GoodEvent],
    records: list,
    settings: Settings,
    unsent: frozenset[tuple[str, str]] = frozenset(),
    unseen: frozenset[str] = frozenset(),
) -> None:
    """`unsent`: outbox rows not sent yet; `unseen`: events not read yet (no alert expected so far)."""
    topics = queue_topics(settings)
    seen: Counter = Counter()
    expected = {
        (topics[q], alert_id(e.event_id, r))
        for e in events.values()
        if e.event_id not in unseen
        for q, r in e.expect.rules
    }
    for record in records:
        doc = orjson.loads(record.value)
        seen[(record.topic, doc["alert_id"])] += 1
    f.alerts_on_queues = sum(seen.values())
    f.duplicate_alerts = sum(n - 1 for n in seen.values() if n > 1)
    for key in sorted(expected - seen.keys()):
        if key in unsent:
            f.unsent += 1
            f.sample("unsent", f"alert {key[1]} still in the outbox for {key[0]}")
        else:
            f.missing_alerts += 1
            f.sample("missing alert", f"{key[1]} not on {key[0]}")
    for key in sorted(seen.keys() - expected):
        f.unexpected_effects += 1
        f.sample("unexpected effect", f"alert {key[1]} on {key[0]}")


def _same_instant(a: datetime | None, b: datetime | None) -> bool:
    return (a is None and b is None) or (a is not None and b is not None and a == b)


def check_sheets(f: Findings, ledger: Ledger, state: HubState, unseen: frozenset[str] = frozenset()) -> None:
    """Each sheet against the shipment's events the hub has read (all of them unless some are unseen)."""
    for shipment_id, want in ledger.expected_sheets(without=unseen).items():
        row = state.sheets.get(shipment_id)
        if row is None:
            f.stale_overwrites += 1
            f.sample("stale overwrite", f"{shipment_id}: no tracking sheet (expected {want.status})")
        elif row["status"] != want.status or not _same_instant(row["eta"], want.eta):
            f.stale_overwrites += 1
            f.sample(
                "stale overwrite",
                f"{shipment_id}: status {row['status']} eta {row['eta']} "
                f"(by occurred_at: {want.status}, eta {want.eta})",
            )


def check_dead_letters(
    f: Findings,
    ledger: Ledger,
    state: HubState,
    dlq: list,
    settings: Settings,
    unread: frozenset[tuple[str, int, int]] = frozenset(),
) -> None:
    """`unread`: positions the group has not committed past (`Unread.positions`): a hostile message
    there, not dead-lettered yet, is unseen."""
    topics = stream_topics(settings)
    wanted: dict[tuple[str, int, int], Hostile] = {}
    for pub in ledger.hostile:
        wanted[(topics[pub.item.stream], *pub.position)] = pub.item  # hostile values are never reserialized
    f.dead_letters = len(state.dead_letters)
    f.dead_letter_reasons = dict(Counter(r["reason"] for r in state.dead_letters))
    rows: dict[tuple[str, int, int], list] = defaultdict(list)
    for row in state.dead_letters:
        rows[(row["source_topic"], row["source_partition"], row["source_offset"])].append(row)
    processed = set()
    for where, hostile in wanted.items():
        found = rows.get(where, [])
        if not found and PROCESSED in hostile.alternatives and hostile.event_id in state.inbox:
            processed.add(where)  # stored as an event, which the contract also allows
            continue
        if not found and where in unread:
            processed.add(where)  # not read yet: nothing to look for on the topic either
            f.unseen += 1
            f.sample("unseen", f"{hostile.name} at {where[0]}[{where[1]}]@{where[2]}: not committed past")
            continue
        problem = _dead_letter_problem(hostile, found)
        if problem:
            f.dead_letter_mismatches += 1
            f.sample("dead letter", f"{hostile.name} at {where[0]}[{where[1]}]@{where[2]}: {problem}")
    for where in rows.keys() - wanted.keys():
        f.dead_letter_mismatches += 1
        row = rows[where][0]
        f.sample(
            "dead letter",
            f"good record at {where[0]}[{where[1]}]@{where[2]} dead-lettered: {row['reason']} ({row['message'][:160]})",
        )
    unsent = {
        w
        for w, found in rows.items()
        if state.unsent and any((settings.topic_dead_letter, r["id"]) in state.unsent for r in found)
    }
    _check_dlq_topic(f, {w: h for w, h in wanted.items() if w not in processed}, dlq, unsent)


def _dead_letter_problem(hostile: Hostile, rows: list) -> str | None:
    if not rows:
        return "not in dead_letters"
    if len(rows) > 1:
        return f"{len(rows)} rows"
    row = rows[0]
    if row["reason"] != hostile.reason and row["reason"] not in hostile.alternatives:
        return f"reason {row['reason']} (expected {hostile.reason}): {row['message'][:160]}"
    if (bytes(row["value"]) if row["value"] is not None else None) != hostile.value:
        return "stored bytes differ from the original"
    return None


def _check_dlq_topic(
    f: Findings, wanted: dict[tuple[str, int, int], Hostile], records: list, unsent: set[tuple[str, int, int]]
) -> None:
    """`unsent`: positions whose dead letter is still waiting in the outbox."""
    found: dict[tuple[str, int, int], list] = defaultdict(list)
    for record in records:
        headers = {k: v.decode(errors="replace") for k, v in record.headers or ()}
        try:
            where = (
                headers["hub.errors.topic"],
                int(headers["hub.errors.partition"]),
                int(headers["hub.errors.offset"]),
            )
        except (KeyError, ValueError):
            f.dlq_topic_missing += 1
            f.sample("dead-letter topic", f"record at offset {record.offset} without hub.errors.* headers")
            continue
        found[where].append((record, headers))
    for where, hostile in wanted.items():
        copies = found.get(where, [])
        if not copies and where in unsent:
            f.unsent += 1
            f.sample(
                "unsent", f"dead letter of {hostile.name} at {where[0]}[{where[1]}]@{where[2]} still in the outbox"
            )
            continue
        if not copies:
            f.dlq_topic_missing += 1
            f.sample("dead-letter topic", f"{hostile.name} at {where[0]}[{where[1]}]@{where[2]} not on the topic")
            continue
        f.dlq_topic_duplicates += len(copies) - 1
        record, headers = copies[0]
        if hostile.value is None and record.value == b"":
            f.dlq_tombstones_as_empty += 1
        elif record.value != hostile.value:
            f.dlq_topic_missing += 1
            f.sample("dead-letter topic", f"{hostile.name}: value differs from the original bytes")
        if headers.get("hub.errors.reason") not in {hostile.reason} | hostile.alternatives:
            f.dlq_topic_missing += 1
            f.sample("dead-letter topic", f"{hostile.name}: reason header {headers.get('hub.errors.reason')}")


def _at_path(doc, path: tuple[str, ...]):
    for part in path:
        doc = doc.get(part) if isinstance(doc, dict) else None
    return doc


async def check_verbatim(f: Findings, events: dict[str, GoodEvent], dsn: str) -> None:
    wanted = {e.event_id: e.verbatim for e in events.values() if e.verbatim}
    payloads = await read_payloads(dsn, list(wanted))
    for event_id, fields in wanted.items():
        for path, text in fields:
            stored = _at_path(payloads.get(event_id), path)
            if stored != text:
                f.altered_text += 1
                f.sample("altered text", f"{event_id} {'.'.join(path)}: stored {stored!r}, sent {text!r}")


async def check_broker_kept(
    f: Findings, ledger: Ledger, state: HubState, settings: Settings, unseen: frozenset[str] = frozenset()
) -> None:
    """For lost events without an inbox row: does the broker still serve any copy at its acknowledged
    position? (Evidence for the report; a loss stays a loss.)"""
    topics = stream_topics(settings)
    records = await read_topics(settings, list(settings.inbound_topics), timeout=120)
    served = {(r.topic, r.partition, r.offset): r.value for r in records}
    copies: dict[str, list] = defaultdict(list)
    for pub in ledger.publications:
        if isinstance(pub.item, GoodEvent) and pub.position is not None:
            copies[pub.item.event_id].append(((topics[pub.item.stream], *pub.position), pub.value))
    for event_id in ledger.events:
        if event_id in state.inbox or event_id in unseen:
            continue
        if not any(served.get(where) == value for where, value in copies[event_id]):
            f.lost_missing_on_broker += 1
            f.sample("missing on broker", f"{event_id} at {[where for where, _ in copies[event_id]]}")


__all__ = ["Committed", "Findings", "Unread", "check", "read_topics", "unread"]
