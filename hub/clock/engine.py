"""One tick of the clock: find what is due, decide (hub/core/clock.py), apply, record.

Each chunk of due timers is one transaction: the subjects are locked and read again (a batch or
an operator may have changed them since the candidate query), decided, and the firings recorded
in `clock_firings` together with their effects: tasks and their history, alerts through the
outbox, notifications, the subjects' new moments. A crash loses nothing (the next tick finds the
same timers due) and doubles nothing (a recorded firing is never applied again).

The caller holds the clock lock (one evaluator per database; see scheduler.py and `hub tick`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import NamedTuple, TypeVar
from zoneinfo import ZoneInfo

import asyncpg
from asyncpg.transaction import Transaction

from hub.clock import queries
from hub.config import Settings
from hub.core.clock import (
    ClockDecision,
    Firing,
    ShipmentState,
    TaskState,
    Timer,
    decide_complaint_follow_up,
    decide_delivery_survey,
    decide_key_account_review,
    decide_monthly_statement,
    decide_overdue,
    decide_stale,
    decide_task,
    month_of,
)
from hub.core.rules import Rules
from hub.core.state import CustomerInfo
from hub.core.topics import Destinations
from hub.reports.figures import previous_month, statement
from hub.reports.models import AnyReport
from hub.store.queries import SELECT_CUSTOMERS, SELECT_SHIPMENTS
from hub.store.rows import customer_from_row, sheet_from_row
from hub.store.writes import EffectRows, effect_rows, write_effect_rows
from schemas.enums import Severity

log = logging.getLogger("hub.clock")
CHUNK = 500  # due timers per transaction
TASK_TIMERS = (Timer.SLA_WARNING.value, Timer.SLA_BREACH.value, Timer.COMPLAINT_FOLLOW_UP.value)
SLA_TIMERS = (Timer.SLA_WARNING.value, Timer.SLA_BREACH.value)
_SEVERITY = {severity.value: severity for severity in Severity}
T = TypeVar("T")
U = TypeVar("U")
STATEMENTS_PER_TICK = 200  # a long sweep goes on over several ticks, so other timers never wait for it


@dataclass
class TickReport:
    now: datetime
    fired: list[Firing] = field(default_factory=list)
    skipped: int = 0  # due timers whose subject had changed, or that had fired already
    alerts: int = 0
    tasks: int = 0
    notifications: int = 0
    lag_s: float = 0.0  # now minus the oldest moment that was due and unfired when the tick began
    duration_s: float = 0.0
    more: bool = False  # a sweep stopped at its per-tick share: tick again without waiting

    def then(self, later: TickReport) -> TickReport:
        """This tick and the one that continued its sweep, as one report."""
        return TickReport(
            self.now,
            self.fired + later.fired,
            self.skipped + later.skipped,
            self.alerts + later.alerts,
            self.tasks + later.tasks,
            self.notifications + later.notifications,
            self.lag_s,
            self.duration_s + later.duration_s,
            later.more,
        )

    def add(self, decision: ClockDecision) -> None:
        self.fired += decision.firings
        self.alerts += len(decision.alerts)
        self.tasks += len(decision.tasks)
        self.notifications += len(decision.notifications)


@dataclass(frozen=True)
class Clock:
    """What a tick needs besides the connection."""

    rules: Rules
    destinations: Destinations
    timezone: ZoneInfo
    survey_sample_rate: float = 0.1
    dsn: str | None = None  # a second connection through a backlog (None: chunk after chunk on one)

    @classmethod
    def of(cls, settings: Settings, rules: Rules) -> Clock:
        dsn = settings.database_url.get_secret_value() if settings.database_url else None
        return cls(rules, settings.destinations, settings.zone, settings.survey_sample_rate, dsn)


async def tick(conn: asyncpg.Connection, now: datetime, clock: Clock) -> TickReport:
    """Fire everything due by `now`, in due order, then the calendar timers of `now`'s month."""
    started = time.perf_counter()
    report = TickReport(now)
    chunk = await _prepare(conn, now, clock, report, NOTHING_EXCLUDED)
    if chunk is not None:
        report.lag_s = max(0.0, (now - chunk.due[0]["moment"]).total_seconds())
        spare = await _spare_connection(clock) if chunk.more else None
        if spare is None:
            await _fire_in_turn(chunk, conn, now, clock, report)
        else:
            try:
                await _fire_overlapped(chunk, (spare, conn), now, clock, report)
            finally:
                await spare.close(timeout=2)
    await _key_account_reviews(conn, now, clock, report)
    await _monthly_statements(conn, now, clock, report)
    report.duration_s = time.perf_counter() - started
    return report


# --- chunks: read, lock and decide in a transaction; then apply and commit -------------------------

NOTHING_EXCLUDED: tuple[list[str], ...] = ([], [], [], [], [])  # DUE's $4-$8 for a read after a commit
_BRANCH = {  # the kinds of DUE by the branch that leaves their subjects out ($4-$8)
    Timer.SLA_WARNING.value: 0,
    Timer.SLA_BREACH.value: 0,
    Timer.STALE_SHIPMENT.value: 1,
    Timer.DELIVERY_OVERDUE.value: 2,
    Timer.DELIVERY_SURVEY.value: 3,
    Timer.COMPLAINT_FOLLOW_UP.value: 4,
}
YIELD_EVERY = 16  # decisions between two turns of the event loop (see _fire_overlapped)


class _Chunk(NamedTuple):
    """Due timers read, locked and decided in an open transaction on `conn`, not yet applied."""

    conn: asyncpg.Connection
    transaction: Transaction
    due: list[asyncpg.Record]
    decisions: list[ClockDecision]
    decided: int  # due rows decided (the others' subjects were gone or decided with another row)

    @property
    def full(self) -> bool:
        return len(self.due) == CHUNK

    @property
    def more(self) -> bool:
        """More may be due after it: it was full, and decided something (a full chunk of nothing
        to decide would only be read again)."""
        return self.full and self.decided > 0

    def subjects(self) -> tuple[list[str], ...]:
        """Its subjects by DUE's branches: a chunk read before this one commits leaves them out."""
        out: tuple[list[str], ...] = ([], [], [], [], [])
        for row in self.due:
            out[_BRANCH[row["kind"]]].append(row["subject"])
        return out


async def _spare_connection(clock: Clock) -> asyncpg.Connection | None:
    """A second connection for a backlog, or None (no DSN, or it cannot connect: one connection then)."""
    if clock.dsn is None:
        return None
    try:
        return await asyncpg.connect(clock.dsn)
    except (OSError, TimeoutError, asyncpg.PostgresError) as exc:
        log.warning("firing a backlog on one connection: a second one failed (%s: %s)", type(exc).__name__, exc)
        return None


async def _prepare(
    conn: asyncpg.Connection, now: datetime, clock: Clock, report: TickReport, leave_out: tuple[list[str], ...]
) -> _Chunk | None:
    """The next chunk of due timers (less the subjects `leave_out`), locked and decided in a new
    transaction; None when nothing is due."""
    due = await conn.fetch(queries.DUE, now, CHUNK, clock.rules.surveys.complaint_follow_up_hours, *leave_out)
    if not due:
        return None
    transaction = conn.transaction()
    await transaction.start()
    try:
        decisions, decided = await _decide_due(conn, due, now, clock, report)
    except BaseException:
        await transaction.rollback()
        raise
    return _Chunk(conn, transaction, due, decisions, decided)


async def _finish(chunk: _Chunk, clock: Clock, report: TickReport) -> None:
    try:
        await _apply(chunk.conn, chunk.decisions, clock, report)
    except BaseException:
        await chunk.transaction.rollback()
        raise
    await chunk.transaction.commit()


async def _fire_in_turn(
    chunk: _Chunk | None, conn: asyncpg.Connection, now: datetime, clock: Clock, report: TickReport
) -> None:
    """Chunk after chunk on one connection, each read after the one before committed."""
    while chunk is not None:
        await _finish(chunk, clock, report)
        if not chunk.more:
            return
        chunk = await _prepare(conn, now, clock, report, NOTHING_EXCLUDED)


async def _fire_overlapped(
    first: _Chunk, conns: tuple[asyncpg.Connection, asyncpg.Connection], now: datetime, clock: Clock, report: TickReport
) -> None:
    """A backlog on two connections: each chunk is read, locked and decided while the one before
    it is applied and committed, so Postgres writes while the client decides (each alone left the
    other waiting: about half of a large tick each).

    The next chunk leaves out the subjects of the one before, whose rows are about to change, and
    otherwise reads what it would after that commit: the timers after them in due order. Where the
    two share a shipment or a task, its locks wait for that commit and it reads what was committed.
    Chunks commit one at a time, in due order."""
    chunk: _Chunk | None = first
    turn = 0
    while chunk is not None:
        finishing = asyncio.ensure_future(_finish(chunk, clock, report))
        following: _Chunk | None = None
        try:
            if chunk.more:
                following = await _prepare(conns[turn % 2], now, clock, report, chunk.subjects())
        except BaseException:
            await asyncio.gather(finishing, return_exceptions=True)  # it commits (or not) on its own
            raise
        try:
            await finishing
        except BaseException:
            if following is not None:
                await following.transaction.rollback()
            raise
        chunk, turn = following, turn + 1


async def _decide_due(
    conn: asyncpg.Connection, due: list[asyncpg.Record], now: datetime, clock: Clock, report: TickReport
) -> tuple[list[ClockDecision], int]:
    """The decisions on `due`, read under their locks, and how many rows were decided."""
    task_ids = sorted({r["subject"] for r in due if r["kind"] in TASK_TIMERS})
    shipment_ids = sorted({r["subject"] for r in due if r["kind"] not in TASK_TIMERS})
    await _lock_shipments(conn, task_ids, shipment_ids)
    tasks = await _tasks(conn, task_ids)
    # The tasks' SLA decisions (pure, each task's alone) are made while Postgres reads the shipments.
    sla_subjects = {r["subject"] for r in due if r["kind"] in SLA_TIMERS} & tasks.keys()
    shipments, sla = await _meanwhile(
        _shipments(conn, shipment_ids, clock.rules), lambda: _decide_tasks(tasks, sla_subjects, now, clock.rules)
    )
    customers = await _customers(conn, {t.customer_id for t in tasks.values() if t.follow_up_at and t.customer_id})
    last_survey = await _last_surveys(conn, {s.customer.customer_id for s in shipments.values() if s.customer})
    decisions: list[ClockDecision] = []
    seen: set[tuple[str, str]] = set()
    decided = 0
    for n, row in enumerate(due, 1):
        if n % YIELD_EVERY == 0:
            await asyncio.sleep(0)
        kind, subject = row["kind"], row["subject"]
        # A task's SLA rows (warning, breach, level 2) are one decision: decide_task fires them all.
        identity = ("sla" if kind in SLA_TIMERS else kind, subject)
        if identity in seen or (kind in TASK_TIMERS and subject not in tasks):
            continue
        seen.add(identity)
        decided += 1
        decision = (
            sla[subject]
            if kind in SLA_TIMERS
            else _decide(kind, subject, tasks, shipments, customers, last_survey, now, clock)
        )
        if decision.shipment is not None:  # the next decision about this shipment sees this one's result
            state = shipments[subject]
            sheet = state.sheet.copy()
            sheet.stale_at, sheet.overdue_at, sheet.survey_at = decision.shipment[1:]
            shipments[subject] = state._replace(sheet=sheet)
        if decision.firings or decision.shipment or decision.follow_up_done:
            decisions.append(decision)
        if not decision.firings:
            report.skipped += 1
        for notice in decision.notifications:  # a second survey in this chunk must see the first
            if notice.kind.value == "satisfaction_survey":
                last_survey[notice.customer_id] = now
    return decisions, decided


async def _decide_tasks(
    tasks: dict[str, TaskState], subjects: set[str], now: datetime, rules: Rules
) -> dict[str, ClockDecision]:
    decided: dict[str, ClockDecision] = {}
    for n, subject in enumerate(subjects, 1):
        decided[subject] = decide_task(tasks[subject], now, rules)
        if n % YIELD_EVERY == 0:
            await asyncio.sleep(0)  # a chunk being applied meanwhile sends its next statement
    return decided


def _decide(
    kind: str,
    subject: str,
    tasks: dict[str, TaskState],
    shipments: dict[str, ShipmentState],
    customers: dict[str, CustomerInfo],
    last_survey: dict[str, datetime],
    now: datetime,
    clock: Clock,
) -> ClockDecision:
    rules = clock.rules
    if kind == Timer.COMPLAINT_FOLLOW_UP.value:
        task = tasks[subject]
        return decide_complaint_follow_up(task, customers.get(task.customer_id or ""), now, rules)
    if kind in TASK_TIMERS:
        return decide_task(tasks[subject], now, rules)
    state = shipments[subject]
    if kind == Timer.STALE_SHIPMENT.value:
        return decide_stale(state, now, rules)
    if kind == Timer.DELIVERY_OVERDUE.value:
        return decide_overdue(state, now, rules)
    last = last_survey.get(state.customer.customer_id) if state.customer else None
    return decide_delivery_survey(state, last, clock.survey_sample_rate, now, rules)


async def _meanwhile(query: Awaitable[T], work: Callable[[], Awaitable[U]]) -> tuple[T, U]:
    """`work()` done while Postgres runs `query` (statements on the connection: `query`'s alone).

    The tick's Python and Postgres share the machine: each would otherwise wait for the other."""
    pending = asyncio.ensure_future(query)
    await asyncio.sleep(0)  # the query goes out before the work starts
    try:
        done = await work()
    except BaseException:
        with contextlib.suppress(Exception):
            await pending  # the connection is free again before the transaction rolls back
        raise
    return await pending, done


async def _customers(conn: asyncpg.Connection, ids: set[str]) -> dict[str, CustomerInfo]:
    if not ids:
        return {}
    return {r["customer_id"]: customer_from_row(r) for r in await conn.fetch(SELECT_CUSTOMERS, sorted(ids))}


async def _last_surveys(conn: asyncpg.Connection, ids: set[str]) -> dict[str, datetime]:
    if not ids:
        return {}
    return {r["customer_id"]: r["at"] for r in await conn.fetch(queries.LAST_SURVEYS, sorted(ids))}


async def _lock_shipments(conn: asyncpg.Connection, task_ids: list[str], shipment_ids: list[str]) -> None:
    """The per-shipment locks of every shipment this chunk touches, its tasks' included, in one call
    and before any row lock: the batch store takes them in that order (shipments, then the task rows
    it updates), so taking a task row first could deadlock with it."""
    if task_ids or shipment_ids:
        await conn.execute(queries.LOCK_CHUNK_SHIPMENTS, shipment_ids, task_ids)


async def _tasks(conn: asyncpg.Connection, task_ids: list[str]) -> dict[str, TaskState]:
    if not task_ids:
        return {}
    rows = await conn.fetch(queries.SELECT_TASKS_FOR_UPDATE, task_ids)
    # The statement's columns are TaskState's fields, in order (severity as its enum).
    return {r[0]: TaskState(r[0], r[1], r[2], _SEVERITY[r[3]], *r[4:]) for r in rows}


async def _shipments(conn: asyncpg.Connection, shipment_ids: list[str], rules: Rules) -> dict[str, ShipmentState]:
    """The shipments, read under the per-shipment locks `_lock_shipments` took (so no batch writes
    a sheet between this read and the firing's write)."""
    if not shipment_ids:
        return {}
    sheets = {r["shipment_id"]: sheet_from_row(r) for r in await conn.fetch(SELECT_SHIPMENTS, shipment_ids)}
    customer_ids = sorted({s.customer_id for s in sheets.values() if s.customer_id})
    customers = {r["customer_id"]: customer_from_row(r) for r in await conn.fetch(SELECT_CUSTOMERS, customer_ids)}
    notify = rules.clock.delivery_overdue_notify
    told = (
        {r["shipment_id"] for r in await conn.fetch(queries.DELAY_NOTIFIED, shipment_ids, notify.value)}
        if notify
        else set()
    )
    return {
        sid: ShipmentState(sheet, customers.get(sheet.customer_id or ""), sid in told) for sid, sheet in sheets.items()
    }


async def _apply(conn: asyncpg.Connection, decisions: list[ClockDecision], clock: Clock, report: TickReport) -> None:
    """Record the firings; write the effects of those not recorded before; move the subjects on."""
    firings = [f for d in decisions for f in d.firings]
    new = (
        set()
        if not firings
        else {
            (r["timer"], r["subject"], r["key"])
            for r in await conn.fetch(
                queries.RECORD_FIRINGS,
                [f.timer.value for f in firings],
                [f.subject for f in firings],
                [f.key for f in firings],
                [f.due_at for f in firings],
                [f.now for f in firings],
            )
        }
    )
    effective, again = [], []
    for decision in decisions:
        identities = {(f.timer.value, f.subject, f.key) for f in decision.firings}
        if identities <= new:
            new -= identities  # each recorded firing has its effects written once
            effective.append(decision)
        else:  # fired before: its effects exist; the subject still moves on below
            report.skipped += len(decision.firings)
            again.append(decision.firings[0][:3])
    if again:
        # Expected now and then (a late event re-arms a timer at the moment it already fired, a
        # tick after a crash): one line a chunk, not one a timer; each is named at DEBUG.
        log.info("%d timer(s) had fired already; their effects are not written again", len(again))
        log.debug("fired already: %s", again)
    # The subjects move on whether or not their firings were new; the effects' rows are built while
    # Postgres runs the first of those updates.
    updates: list[tuple[str, list]] = []
    changes = [d.task_change for d in decisions if d.task_change is not None]
    if changes:
        updates.append(
            (
                queries.UPDATE_TASKS,
                [
                    [c.task_id for c in changes],
                    [c.severity.value for c in changes],
                    [c.escalation_level for c in changes],
                    [c.warned_at for c in changes],
                    [c.breached_at for c in changes],
                ],
            )
        )
    timers = [d.shipment for d in decisions if d.shipment is not None]
    if timers:
        updates.append((queries.UPDATE_SHIPMENT_TIMERS, [list(column) for column in zip(*timers, strict=True)]))
    follow_ups = [d.follow_up_done for d in decisions if d.follow_up_done]
    if follow_ups:
        updates.append((queries.FOLLOW_UPS_DONE, [follow_ups]))

    async def build() -> EffectRows:
        return _effect_rows(effective, clock)

    if updates:
        (sql, args), rest = updates[0], updates[1:]
        _, rows = await _meanwhile(conn.execute(sql, *args), build)
        for sql, args in rest:
            await conn.execute(sql, *args)
    else:
        rows = await build()
    await write_effect_rows(conn, rows)
    for decision in effective:
        report.add(decision)


def _effect_rows(decisions: list[ClockDecision], clock: Clock) -> EffectRows:
    """The rows of what the decisions write: new tasks with their `created` history first, then
    the history of existing tasks (one COPY, in that order), notifications, alerts."""
    tasks = [t for d in decisions for t in d.tasks]
    history = [e for d in decisions for e in d.history]
    created = {t.task_id for t in tasks}
    return effect_rows(
        tasks,
        [e for e in history if e.task_id in created] + [e for e in history if e.task_id not in created],
        [n for d in decisions for n in d.notifications],
        [a for d in decisions for a in d.alerts],
        clock.destinations,
    )


# --- calendar timers -------------------------------------------------------------------------------


async def _key_account_reviews(conn: asyncpg.Connection, now: datetime, clock: Clock, report: TickReport) -> None:
    """On the first tick of a month (HUB_TIMEZONE), one review task per key account."""
    timer, period = Timer.KEY_ACCOUNT_REVIEW.value, month_of(now.astimezone(clock.timezone))
    if await conn.fetchval(queries.PERIOD_SWEPT, timer, period):
        return
    tier = clock.rules.key_account.tier.value
    while rows := await conn.fetch(queries.KEY_ACCOUNTS_TO_REVIEW, tier, timer, period, CHUNK):
        customers: list[CustomerInfo] = [customer_from_row(r) for r in rows]
        async with conn.transaction():
            decisions = [d for c in customers if (d := decide_key_account_review(c, period, now, clock.rules)).firings]
            await _apply(conn, decisions, clock, report)
        if len(rows) < CHUNK:
            break
    await conn.execute(queries.MARK_PERIOD_SWEPT, timer, period, now)


async def _monthly_statements(conn: asyncpg.Connection, now: datetime, clock: Clock, report: TickReport) -> None:
    """From the first tick of a month (HUB_TIMEZONE), each customer with a shipment last month gets
    its statement built and stored (reports) and a monthly_statement notice; STATEMENTS_PER_TICK a tick."""
    timer, period = Timer.MONTHLY_STATEMENT.value, previous_month(now, clock.timezone)
    if await conn.fetchval(queries.PERIOD_SWEPT, timer, period.label):
        return
    rows = await conn.fetch(queries.STATEMENTS_TO_BUILD, period.start, period.end, period.label, STATEMENTS_PER_TICK)
    for row in rows:
        customer = customer_from_row(row)
        async with conn.transaction():
            figures = await statement(conn, period, now, customer.customer_id)
            await store_report(conn, figures, period.label, customer.customer_id, now)
            await _apply(conn, [decide_monthly_statement(customer, period.label, now, clock.rules)], clock, report)
    if len(rows) < STATEMENTS_PER_TICK:
        await conn.execute(queries.MARK_PERIOD_SWEPT, timer, period.label, now)
    else:
        report.more = True


async def store_report(
    conn: asyncpg.Connection, report: AnyReport, period: str, customer: str | None, as_of: datetime
) -> None:
    """Keep a report's figures (JSON; renderings are made from them when asked)."""
    await conn.execute(
        queries.STORE_REPORT, report.kind, period, customer, "json", report.model_dump_json().encode(), as_of
    )
