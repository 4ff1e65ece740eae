"""The clock's oracle: the timers the published events call for, against `clock_firings`, the tasks,
their history, the outbox and the handler queues.

The expected timers come from the ledger and the contract's numbers (oracle.py), not from the
hub's counters or its own moments:

- every task an event raises (oracle.event_task_window): `sla_breach` level 1 at due_at and level 2
  one window later are required once due by the end; `sla_warning` is allowed only if it fired
  inside its window (at or after the warning point, before due_at; none for a task that arrived
  past due), never required (whether a tick fell inside the window depends on timing);
- every shipment: `stale_shipment` keyed by the occurred_at of one of its events, due that plus
  the threshold of the event's status, is allowed (a tick between two arrivals fires the earlier
  state); the one keyed by its latest event is required once due by the end (never for a
  delivered, returned or cancelled shipment);
- every stale firing opens one stale_shipment task (P3 window from the stale moment), whose own
  SLA timers are expected like any task's.

Each firing once (the primary key makes that trivial) and its effects once: one alert per firing
identity in the outbox (under one alert_id) and on its queue, one history row per warning and
level, one task per stale firing. Nothing fires early (the database's recorded_at is not before
the moment). A required timer not fired is `unfired` (liveness) while the subject still has it
armed, and `lost` once the subject moved on without a firing. Within one tick (one `fired_at`),
the transactions (chunks, by recorded_at) go in due order: every timer of an earlier chunk was due
no later than every timer of a later one (subjects that appeared during the tick aside).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
import orjson

from tests.reliability.checker import Findings
from tests.reliability.generator import Ledger
from tests.reliability.oracle import (
    SLA_BREACH,
    SLA_WARNING,
    STALE_SHIPMENT,
    Window,
    event_task_window,
    stale_moment,
    stale_task_window,
)

SELECT_FIRINGS = "SELECT timer, subject, key, due_at, fired_at, recorded_at FROM clock_firings"
SELECT_TASKS = """
SELECT task_id::text AS task_id, source_event_id, rule, kind, status, opened_at, due_at, warn_at, escalate_at,
       warned_at, escalation_level, created_at
FROM coordination_tasks
"""
SELECT_HISTORY = """
SELECT task_id::text AS task_id, action, coalesce(detail->>'level', '') AS level, count(*) AS n FROM task_events
WHERE action IN ('created', 'warned', 'escalated') GROUP BY 1, 2, 3
"""
SELECT_STALE_AT = "SELECT shipment_id, stale_at FROM shipments"
SELECT_OUTBOX = "SELECT message_id, value, sent_at IS NOT NULL AS sent FROM outbox WHERE topic = ANY($1::text[])"
SELECT_PROCESSED = "SELECT event_id, processed_at FROM inbox"
RECENT = timedelta(seconds=10)  # a subject this new may have appeared during the tick that fired it


@dataclass(frozen=True)
class Fired:
    timer: str
    subject: str
    key: str
    due_at: datetime
    fired_at: datetime  # the tick's now (the hub's claim)
    recorded_at: datetime  # Postgres' now() of the transaction that recorded it

    @property
    def identity(self) -> tuple[str, str, str]:
        return self.timer, self.subject, self.key


@dataclass
class ClockState:
    firings: dict[tuple[str, str, str], Fired]
    tasks: dict[str, dict]
    history: Counter  # (task_id, action, level) -> rows
    stale_at: dict[str, datetime | None]
    outbox: list[tuple[str, dict, bool]]  # (message_id, alert, sent) of every alert a timer raised
    processed: dict[str, datetime]  # inbox: event_id -> when the hub stored it

    def task_by_source(self, source: str, rule: str) -> dict | None:
        return self._by_source.get((source, rule))

    def __post_init__(self) -> None:
        self._by_source = {(t["source_event_id"], t["rule"]): t for t in self.tasks.values() if t["kind"] == t["rule"]}


async def read_clock_state(dsn: str, alert_topics: list[str]) -> ClockState:
    conn = await asyncpg.connect(dsn, timeout=30)
    # One snapshot: a hub still ticking while this reads would otherwise show a later firing's
    # alert in the outbox without its firing row (read earlier), an "unexpected firing".
    snapshot = conn.transaction(isolation="repeatable_read", readonly=True)
    await snapshot.start()
    try:
        firings = {(r["timer"], r["subject"], r["key"]): Fired(*r.values()) for r in await conn.fetch(SELECT_FIRINGS)}
        tasks = {r["task_id"]: dict(r) for r in await conn.fetch(SELECT_TASKS)}
        history = Counter()
        for r in await conn.fetch(SELECT_HISTORY):
            history[(r["task_id"], r["action"], r["level"])] += r["n"]
        stale_at = {r["shipment_id"]: r["stale_at"] for r in await conn.fetch(SELECT_STALE_AT)}
        outbox = []
        for r in await conn.fetch(SELECT_OUTBOX, alert_topics):
            doc = orjson.loads(r["value"])
            if "timer" in (doc.get("source") or {}):
                outbox.append((r["message_id"], doc, r["sent"]))
        processed = {r["event_id"]: r["processed_at"] for r in await conn.fetch(SELECT_PROCESSED)}
    finally:
        await snapshot.rollback()
        await conn.close()
    return ClockState(firings, tasks, history, stale_at, outbox, processed)


# --- what the events call for ----------------------------------------------------------------------


@dataclass(frozen=True)
class StaleCandidate:
    due: datetime
    event_id: str


@dataclass
class Expected:
    """The timers the events call for, given the stale firings that happened (each opens a task)."""

    windows: dict[str, Window] = field(default_factory=dict)  # task_id -> its window (by the contract)
    stale: dict[tuple[str, datetime], StaleCandidate] = field(default_factory=dict)  # (shipment, key) -> ...
    latest: dict[str, tuple[datetime, datetime | None]] = field(default_factory=dict)  # shipment -> (key, due)


def _stale_candidates(ledger: Ledger, expected: Expected) -> None:
    by_shipment: dict[str, list] = defaultdict(list)
    for event in ledger.events.values():
        if event.shipment_id and event.status is not None:
            by_shipment[event.shipment_id].append(event)
    for shipment_id, events in by_shipment.items():
        for event in events:
            due = stale_moment(event.occurred_at, event.status)
            if due is not None:
                expected.stale[(shipment_id, event.occurred_at)] = StaleCandidate(due, event.event_id)
        last = max(events, key=lambda e: e.occurred_at)
        expected.latest[shipment_id] = (last.occurred_at, stale_moment(last.occurred_at, last.status))


def _parse_key(key: str) -> datetime | None:
    try:
        return datetime.fromisoformat(key)
    except ValueError:
        return None


def stale_source(shipment_id: str, key: str) -> str:
    """The source_event_id of the task a stale firing opens (the timer's identity)."""
    return f"clock:{STALE_SHIPMENT}:{shipment_id}:{key}"


def _same(a: datetime | None, b: datetime | None) -> bool:
    return a is not None and b is not None and a == b


def _check_window(f: Findings, task: dict, window: Window, what: str) -> None:
    got = (task["opened_at"], task["due_at"], task["warn_at"], task["escalate_at"])
    want = (window.opened, window.due, window.warn, window.level_2)
    if not all(_same(g, w) for g, w in zip(got, want, strict=True)):
        f.wrong_task_windows += 1
        f.sample("wrong task window", f"{what} task {task['task_id']}: {[str(g) for g in got]}, want {want}")


# --- the verdict -------------------------------------------------------------------------------------------


@dataclass
class ClockReport:
    """What the oracle saw, for the scenario's notes."""

    fired: Counter = field(default_factory=Counter)  # timer -> firings
    required: int = 0
    ticks: int = 0
    multi_chunk_ticks: int = 0
    largest_tick: int = 0
    warnings_possible: int = 0

    def summary(self) -> str:
        kinds = ", ".join(f"{n} {t}" for t, n in sorted(self.fired.items()))
        return (
            f"{sum(self.fired.values())} firings ({kinds}); {self.required} required by the end; "
            f"{self.ticks} ticks, largest {self.largest_tick}, {self.multi_chunk_ticks} in several chunks "
            "(checked for due order)"
        )


def judge_clock(
    f: Findings,
    ledger: Ledger,
    state: ClockState,
    end: datetime,
    topic_alerts: list[dict],
    wall_clock: bool = True,
) -> ClockReport:
    """Add the clock's anomalies to `f`; `end`: every timer due by then must have fired.
    `wall_clock`: every tick ran at the real time (no `hub tick --now`), so the database's
    recorded_at must not be before a timer's moment either."""
    report = ClockReport()
    expected = Expected()
    _stale_candidates(ledger, expected)
    # Tasks raised by events: the window follows from the event and its rule.
    for event in ledger.events.values():
        for _queue, rule in event.expect.rules:
            task = state.task_by_source(event.event_id, rule)
            if task is None:
                continue  # the task itself is missing: the event checker reports it as lost
            window = event_task_window(event.occurred_at, rule)
            _check_window(f, task, window, rule)
            expected.windows[task["task_id"]] = window
    # Firings: each one a timer the events call for, on time. Stale firings first: each opens a task
    # whose own timers are then expected.
    valid: dict[tuple[str, str, str], Fired] = {}
    for fired in sorted(state.firings.values(), key=lambda x: (x.timer != STALE_SHIPMENT, x.fired_at, x.key)):
        problem = _firing_problem(fired, expected, state, wall_clock)
        if problem:
            f.unexpected_firings += 1
            f.sample("unexpected firing", f"{fired.timer} {fired.subject} {fired.key}: {problem}")
            continue
        valid[fired.identity] = fired
        report.fired[fired.timer] += 1
        if fired.timer == STALE_SHIPMENT:
            task = state.task_by_source(stale_source(fired.subject, fired.key), STALE_SHIPMENT)
            if task is not None:
                window = stale_task_window(fired.due_at)
                _check_window(f, task, window, STALE_SHIPMENT)
                expected.windows[task["task_id"]] = window
    f.firings = len(state.firings)
    _check_required(f, expected, state, valid, end, report)
    _check_effects(f, expected, state, valid, topic_alerts)
    _check_due_order(f, expected, state, valid, report)
    return report


def _firing_problem(fired: Fired, expected: Expected, state: ClockState, wall_clock: bool) -> str | None:
    """Why this firing is not one the events call for (None: it is)."""
    if fired.timer == STALE_SHIPMENT:
        key = _parse_key(fired.key)
        candidate = expected.stale.get((fired.subject, key)) if key else None
        if candidate is None:
            return "no event of the shipment has this occurred_at, or its status is never stale"
        if fired.due_at != candidate.due:
            return f"due_at {fired.due_at}, expected {candidate.due} (threshold of the status)"
        if fired.fired_at < candidate.due or (wall_clock and fired.recorded_at < candidate.due):
            return f"fired early: tick {fired.fired_at}, recorded {fired.recorded_at}, due {candidate.due}"
        return None
    if fired.timer not in (SLA_WARNING, SLA_BREACH):
        return "a timer the workload cannot arm (no promises, no key accounts)"
    window = expected.windows.get(fired.subject)
    if window is None:
        return "not a task the events (or a stale firing) opened"
    if fired.key not in ("0", "1", "2") or (fired.timer == SLA_WARNING) != (fired.key == "0"):
        return "key is not the warning's 0 or a breach level"
    moment = window.moment(fired.timer, fired.key)
    if fired.due_at != moment:
        return f"due_at {fired.due_at}, expected {moment}"
    if fired.fired_at < moment or (wall_clock and fired.recorded_at < moment):
        return f"fired early: tick {fired.fired_at}, recorded {fired.recorded_at}, due {moment}"
    if fired.timer == SLA_WARNING and fired.fired_at >= window.due:
        return f"a warning from a tick at {fired.fired_at}, at or after due_at {window.due}"
    if fired.key == "2":
        first = state.firings.get((SLA_BREACH, fired.subject, "1"))
        if first is None or first.fired_at > fired.fired_at:
            return "level 2 without level 1 before it"
    return None


def _check_required(
    f: Findings,
    expected: Expected,
    state: ClockState,
    valid: dict[tuple[str, str, str], Fired],
    end: datetime,
    report: ClockReport,
) -> None:
    for task_id, window in expected.windows.items():
        task = state.tasks[task_id]
        for key, moment in (("1", window.due), ("2", window.level_2)):
            if moment > end:
                continue
            report.required += 1
            if (SLA_BREACH, task_id, key) in valid:
                continue
            level = task["escalation_level"]
            armed = task["status"] in ("open", "in_progress") and level < int(key)
            _missing(f, armed, f"sla_breach level {key} of task {task_id} (due {moment}, level now {level})")
    stale_fired = {(s, _parse_key(k)) for (timer, s, k) in valid if timer == STALE_SHIPMENT}
    for shipment_id, (key, due) in expected.latest.items():
        if due is None or due > end:
            continue
        report.required += 1
        if (shipment_id, key) in stale_fired:
            continue
        stale_at = state.stale_at.get(shipment_id)
        _missing(f, _same(stale_at, due), f"stale_shipment {shipment_id} for {key} (due {due}, stale_at {stale_at})")


def _missing(f: Findings, armed: bool, what: str) -> None:
    if armed:
        f.unfired += 1
        f.sample("unfired", f"{what}: still armed")
    else:
        f.lost_firings += 1
        f.sample("lost firing", f"{what}: disarmed without a firing")


def _alert_identity(doc: dict) -> tuple[str, str, str]:
    timer = doc["source"]["timer"]
    if timer in (SLA_WARNING, SLA_BREACH):
        return timer, doc["task_id"], str(doc.get("level") or 0)
    return timer, doc["task_id"], ""


def _check_effects(
    f: Findings,
    expected: Expected,
    state: ClockState,
    valid: dict[tuple[str, str, str], Fired],
    topic_alerts: list[dict],
) -> None:
    # The alerts in the outbox, by the firing they stand for.
    ids_by_identity: dict[tuple[str, str, str], set[str]] = defaultdict(set)
    for message_id, doc, _sent in state.outbox:
        ids_by_identity[_alert_identity(doc)].add(message_id)
    wanted: set[tuple[str, str, str]] = set()
    levels: dict[str, int] = defaultdict(int)
    warned: set[str] = set()
    for timer, subject, key in valid:
        if timer == STALE_SHIPMENT:
            task = state.task_by_source(stale_source(subject, key), STALE_SHIPMENT)
            if task is None:
                f.firing_effects_missing += 1
                f.sample("firing effect missing", f"stale {subject} {key}: no stale_shipment task")
                continue
            identity = (STALE_SHIPMENT, task["task_id"], "")
            _once(
                f, state.history[(task["task_id"], "created", "")], f"'created' history of stale task {task['task_id']}"
            )
        else:
            identity = (timer, subject, key)
            if timer == SLA_WARNING:
                warned.add(subject)
                _once(f, state.history[(subject, "warned", "")], f"'warned' history of task {subject}")
                if not _same(state.tasks[subject]["warned_at"], expected.windows[subject].warn):
                    f.firing_effects_missing += 1
                    f.sample(
                        "firing effect missing", f"task {subject} warned, warned_at {state.tasks[subject]['warned_at']}"
                    )
            else:
                levels[subject] = max(levels[subject], int(key))
                _once(
                    f, state.history[(subject, "escalated", key)], f"'escalated' level {key} history of task {subject}"
                )
        wanted.add(identity)
        _once(f, len(ids_by_identity.get(identity, ())), f"alert of {timer} {subject} {key}", ids=True)
    for identity, ids in ids_by_identity.items():
        if identity not in wanted:
            f.unexpected_firings += 1
            f.sample(
                "unexpected firing", f"alert {sorted(ids)[0]} ({identity[0]} of task {identity[1]}) without a firing"
            )
    # The tasks' levels and history only move with a firing.
    for task_id in expected.windows:
        task = state.tasks[task_id]
        if task["escalation_level"] > levels.get(task_id, 0):
            f.lost_firings += 1
            f.sample(
                "lost firing", f"task {task_id} at level {task['escalation_level']}, fired {levels.get(task_id, 0)}"
            )
        elif task["escalation_level"] < levels.get(task_id, 0):
            f.firing_effects_missing += 1
            f.sample(
                "firing effect missing",
                f"task {task_id} at level {task['escalation_level']} after level {levels[task_id]} fired",
            )
    for (task_id, action, level), n in state.history.items():
        if not n:
            continue
        stray_warning = action == "warned" and task_id not in warned
        stray_level = action == "escalated" and (SLA_BREACH, task_id, level) not in valid
        if stray_warning or stray_level:
            f.unexpected_firings += 1
            f.sample("unexpected firing", f"{n} '{action}' {level} history rows of task {task_id} without a firing")
    clock_tasks = {t["task_id"] for t in state.tasks.values() if t["source_event_id"].startswith("clock:")}
    for task_id in clock_tasks - set(expected.windows):
        f.unexpected_firings += 1
        f.sample("unexpected firing", f"task {task_id} ({state.tasks[task_id]['source_event_id']}) without a firing")
    _check_topic(f, state, topic_alerts)


def _once(f: Findings, n: int, what: str, ids: bool = False) -> None:
    if n == 0:
        f.firing_effects_missing += 1
        f.sample("firing effect missing", f"no {what}")
    elif n > 1:
        f.firing_effects_doubled += n - 1
        f.sample("firing effect doubled", f"{what}: {n}" + (" alert ids" if ids else " rows"))


def _check_topic(f: Findings, state: ClockState, topic_alerts: list[dict]) -> None:
    """Every timer alert the outbox sent is on its queue (copies counted); none the outbox lacks."""
    on_topic = Counter(doc["alert_id"] for doc in topic_alerts)
    in_outbox = {message_id: sent for message_id, _doc, sent in state.outbox}
    for message_id, sent in in_outbox.items():
        if on_topic[message_id]:
            f.duplicate_alerts += on_topic[message_id] - 1
        elif sent:
            f.missing_alerts += 1
            f.sample("missing alert", f"timer alert {message_id} marked sent, not on its queue")
        else:
            f.unsent += 1
            f.sample("unsent", f"timer alert {message_id} still in the outbox")
    for alert_id in on_topic.keys() - in_outbox.keys():
        f.unexpected_effects += 1
        f.sample("unexpected effect", f"timer alert {alert_id} on a queue, not in the outbox")


def _check_due_order(
    f: Findings, expected: Expected, state: ClockState, valid: dict[tuple[str, str, str], Fired], report: ClockReport
) -> None:
    """Within a tick, chunk by chunk: no timer of a later chunk was due before one of an earlier chunk."""
    by_subject: dict[str, list[Fired]] = defaultdict(list)
    for fired in valid.values():
        by_subject[fired.subject].append(fired)
    ticks: dict[datetime, dict[datetime, list[datetime]]] = defaultdict(lambda: defaultdict(list))
    sizes: Counter = Counter()
    for (_subject, fired_at, recorded_at), firings in _decisions(valid).items():
        sizes[fired_at] += len(firings)
        primary = _primary(firings, by_subject, expected, state)
        if primary is not None:
            ticks[fired_at][recorded_at].append(primary)
    report.ticks = len(sizes)
    report.largest_tick = max(sizes.values(), default=0)
    for fired_at, chunks in sorted(ticks.items()):
        order = sorted(chunks)
        if len(order) > 1:
            report.multi_chunk_ticks += 1
        for earlier, later in itertools.pairwise(order):
            last, first = max(chunks[earlier]), min(chunks[later])
            if last > first:
                f.out_of_due_order += 1
                f.sample(
                    "out of due order",
                    f"tick {fired_at}: chunk at {earlier} fired a timer due {last}, the next chunk one due {first}",
                )


def _decisions(valid: dict[tuple[str, str, str], Fired]) -> dict[tuple[str, datetime, datetime], list[Fired]]:
    """Firings grouped by what one decision of the engine fired: one subject in one transaction."""
    out: dict[tuple[str, datetime, datetime], list[Fired]] = defaultdict(list)
    for fired in valid.values():
        out[(fired.subject, fired.fired_at, fired.recorded_at)].append(fired)
    return out


def _primary(
    firings: list[Fired], by_subject: dict[str, list[Fired]], expected: Expected, state: ClockState
) -> datetime | None:
    """The moment that made the decision due (its earliest armed timer when the tick began), or None for
    a subject that may have appeared during the tick (then the chunks' order says nothing about it)."""
    first = firings[0]
    tick = first.fired_at
    if first.timer == STALE_SHIPMENT:
        key = _parse_key(first.key)
        candidate = expected.stale.get((first.subject, key))
        stored = state.processed.get(candidate.event_id) if candidate else None
        if stored is None or stored > tick - RECENT:
            return None
        return first.due_at
    task = state.tasks[first.subject]
    if task["created_at"] > tick - RECENT:
        return None
    window = expected.windows[first.subject]
    before = {x.key for x in by_subject[first.subject] if x.fired_at < tick}
    if "1" in before:
        return window.level_2
    if "0" in before:
        return window.due
    return window.warn


# --- waiting for the clock -------------------------------------------------------------------------------


async def wait_fired(
    ledger: Ledger, dsn: str, alert_topics: list[str], end: datetime, timeout: float, wall_clock: bool = True
) -> int:
    """Wait until every timer due by `end` has fired (or `timeout`); returns how many are still unfired."""
    deadline = time.monotonic() + timeout
    while True:
        f = Findings()
        try:
            state = await read_clock_state(dsn, alert_topics)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError):
            state = None
        if state is not None:
            judge_clock(f, ledger, state, end, [], wall_clock)
            if f.unfired == 0 or time.monotonic() > deadline:
                return f.unfired
        elif time.monotonic() > deadline:
            return -1
        await asyncio.sleep(1.0)


__all__ = ["ClockReport", "ClockState", "judge_clock", "read_clock_state", "wait_fired"]
