"""Retention: delete what is past its horizon, in small batches that never hold up the hot path.

What goes, and when (HUB_RETAIN_*_DAYS; 0 keeps a table's rows forever):

  inbox            processed_at older than the inbox horizon. The inbox is what turns a redelivered
                   event into a duplicate: an event redelivered or re-published after its id left
                   the inbox is processed again. Keep the horizon above the inbound topics'
                   retention and any window in which a producer might re-send.
  outbox           rows published (sent_at) before the outbox horizon; unpublished rows never.
  dead_letters     replayed ones that long after their replay, the others that long after they came.
  shipment_events, call_logs   the event history, by occurred_at (HUB_RETAIN_EVENTS_DAYS, 0 by default).

Never purged: task_events (append-only by design: a task's history is its audit trail), erasures,
the register, tasks, notifications, tracking sheets.

Each batch is one DELETE statement in its own transaction of at most HUB_PURGE_BATCH rows, found
through an index on the age it is judged by (migration 0009) and continuing where the previous batch
stopped, so no batch re-reads what earlier ones deleted. Row locks are held for the few
milliseconds a batch takes, and `lock_timeout` makes a batch give way rather than queue behind the
batch store (which takes per-shipment advisory locks and inserts inbox, history and outbox rows: a
purge never touches those advisory locks, and only deletes rows the hot path no longer reads).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, NamedTuple

import asyncpg

log = logging.getLogger("hub.purge")

PURGE_LOCK = 0x6875625F7072676E  # "hub_prgn": one purger per database, like the clock's and the relay's locks
TRY_LOCK = "SELECT pg_try_advisory_lock($1)"
UNLOCK = "SELECT pg_advisory_unlock($1)"
# A batch that would wait on a row lock gives way; the next round picks it up.
SESSION_SETTINGS = "SET lock_timeout = '2s'; SET statement_timeout = '60s'"
LOCK_RETRIES = 5
RETRY_MAX_S = 60.0
FIRST_RUN_AFTER_S = 60.0  # inside `hub run`: let the hub catch up after a start before the first purge


# One keyset walk per table: $1 where the previous batch stopped, $2 the horizon, $3 the batch size.
# Each returns how many rows it deleted and how far it got.
def _walk_by_age(table: str, key: str, age: str) -> str:
    return f"""
WITH doomed AS (
    SELECT {key} AS k, {age} AS at FROM {table}
    WHERE {age} >= $1 AND {age} < $2 ORDER BY {age} LIMIT $3
), gone AS (
    DELETE FROM {table} AS t USING doomed AS d WHERE t.{key} = d.k RETURNING d.at
)
SELECT count(*) AS deleted, max(at) AS reached FROM gone
"""


PURGE_INBOX = _walk_by_age("inbox", "event_id", "processed_at")
PURGE_SHIPMENT_EVENTS = _walk_by_age("shipment_events", "event_id", "occurred_at")
PURGE_CALL_LOGS = _walk_by_age("call_logs", "event_id", "occurred_at")
PURGE_DEAD_LETTERS = _walk_by_age("dead_letters", "id", "coalesce(replayed_at, created_at)")
# The outbox by id, which follows created_at; it stops at the first batch that reaches rows created
# after the horizon (none of those can have been sent before it). Unsent rows are stepped over.
PURGE_OUTBOX = """
WITH batch AS (
    SELECT id, created_at, sent_at FROM outbox WHERE id > $1 ORDER BY id LIMIT $3
), gone AS (
    DELETE FROM outbox AS o USING batch AS b WHERE o.id = b.id AND b.sent_at < $2 RETURNING o.id
)
SELECT (SELECT count(*) FROM gone) AS deleted, (SELECT max(id) FROM batch) AS reached,
       (SELECT count(*) FROM batch) AS seen, coalesce((SELECT bool_or(created_at >= $2) FROM batch), false) AS past
"""

COUNT_PAST = {
    "inbox": "SELECT count(*) FROM inbox WHERE processed_at < $1",
    "outbox": "SELECT count(*) FROM outbox WHERE sent_at < $1",
    "dead_letters": "SELECT count(*) FROM dead_letters WHERE coalesce(replayed_at, created_at) < $1",
    "shipment_events": "SELECT count(*) FROM shipment_events WHERE occurred_at < $1",
    "call_logs": "SELECT count(*) FROM call_logs WHERE occurred_at < $1",
}
PURGED_TABLES = tuple(COUNT_PAST)


@dataclass(frozen=True)
class Retention:
    """Days each kind of row is kept; 0: forever."""

    inbox_days: float
    outbox_days: float
    dead_letters_days: float
    events_days: float

    @classmethod
    def of(cls, settings) -> Retention:
        return cls(
            settings.retain_inbox_days,
            settings.retain_outbox_days,
            settings.retain_dead_letters_days,
            settings.retain_events_days,
        )

    def horizons(self, now: datetime) -> dict[str, datetime]:
        """Table -> the moment before which its rows go; tables kept forever are absent."""
        days = {
            "inbox": self.inbox_days,
            "outbox": self.outbox_days,
            "dead_letters": self.dead_letters_days,
            "shipment_events": self.events_days,
            "call_logs": self.events_days,
        }
        return {table: now - timedelta(days=d) for table, d in days.items() if d > 0}


@dataclass
class PurgeReport:
    horizons: dict[str, datetime]
    deleted: dict[str, int] = field(default_factory=dict)
    batches: int = 0
    duration_s: float = 0.0
    complete: bool = True  # False: stopped early (a stop request, or lock waits); the rest goes next round

    @property
    def total(self) -> int:
        return sum(self.deleted.values())


class PurgeBusy(RuntimeError):
    """Another process holds the purge lock."""


async def count_past(conn: asyncpg.Connection, retention: Retention, now: datetime) -> dict[str, int]:
    """What a purge would delete now (for `hub purge --dry-run`)."""
    return {table: await conn.fetchval(COUNT_PAST[table], at) for table, at in retention.horizons(now).items()}


async def purge(
    conn: asyncpg.Connection,
    retention: Retention,
    batch: int,
    now: datetime | None = None,
    *,
    stopping: Callable[[], bool] = lambda: False,
    pause_s: float = 0.0,
) -> PurgeReport:
    """Delete every row past its horizon, table by table, `batch` rows per transaction.

    `conn` must not be inside a transaction: each batch commits on its own. The caller holds the
    purge lock (purge_locked does).
    """
    began = time.perf_counter()
    report = PurgeReport(retention.horizons(now or datetime.now(UTC)))
    await conn.execute(SESSION_SETTINGS)
    for table, horizon in report.horizons.items():
        deleted, complete = await _purge_table(conn, _WALKS[table], horizon, batch, report, stopping, pause_s)
        report.deleted[table] = deleted
        if not complete:
            report.complete = False
            break
    report.duration_s = time.perf_counter() - began
    return report


class _Walk(NamedTuple):
    """How one table is purged: its keyset batch, the cursor's first value, and when it is done."""

    sql: str
    start: Any
    done: Callable[[asyncpg.Record, int], bool]


def _short(row: asyncpg.Record, batch: int) -> bool:
    return row["deleted"] < batch  # a short batch: nothing older than the horizon is left


_BY_AGE_START = datetime.min.replace(tzinfo=UTC)
_WALKS = {
    "inbox": _Walk(PURGE_INBOX, _BY_AGE_START, _short),
    "shipment_events": _Walk(PURGE_SHIPMENT_EVENTS, _BY_AGE_START, _short),
    "call_logs": _Walk(PURGE_CALL_LOGS, _BY_AGE_START, _short),
    "dead_letters": _Walk(PURGE_DEAD_LETTERS, _BY_AGE_START, _short),
    # by id: done when a batch saw fewer rows than asked, or reached rows inside the horizon
    "outbox": _Walk(PURGE_OUTBOX, 0, lambda row, batch: row["seen"] < batch or row["past"]),
}


async def _purge_table(
    conn: asyncpg.Connection,
    walk: _Walk,
    horizon: datetime,
    batch: int,
    report: PurgeReport,
    stopping: Callable[[], bool],
    pause_s: float,
) -> tuple[int, bool]:
    reached, deleted = walk.start, 0
    while not stopping():
        row = await _batch(conn, walk.sql, reached, horizon, batch)
        if row is None:
            return deleted, False
        report.batches += 1
        deleted += row["deleted"]
        if walk.done(row, batch):
            return deleted, True
        reached = row["reached"]  # by age: rows of that very moment not yet deleted are taken next
        await asyncio.sleep(pause_s)
    return deleted, False


async def _batch(conn: asyncpg.Connection, sql: str, reached, horizon: datetime, batch: int) -> asyncpg.Record | None:
    """One batch; None if it kept finding rows locked (it gave way each time)."""
    for attempt in range(LOCK_RETRIES):
        try:
            return await conn.fetchrow(sql, reached, horizon, batch)
        except asyncpg.LockNotAvailableError:
            await asyncio.sleep(0.5 * (attempt + 1))
    log.warning("purge: rows kept locked by other work for %d tries; the rest waits for the next round", LOCK_RETRIES)
    return None


async def purge_locked(conn: asyncpg.Connection, retention: Retention, batch: int, **kwargs) -> PurgeReport:
    """`purge` holding the purge lock; PurgeBusy if another process holds it."""
    if not await conn.fetchval(TRY_LOCK, PURGE_LOCK):
        raise PurgeBusy("another hub is purging this database right now")
    try:
        return await purge(conn, retention, batch, **kwargs)
    finally:
        await conn.execute(UNLOCK, PURGE_LOCK)


def describe(report: PurgeReport) -> str:
    if not report.horizons:
        return "purge: every HUB_RETAIN_*_DAYS is 0, nothing is ever purged"
    parts = ", ".join(f"{report.deleted.get(t, 0):,} {t}" for t in report.horizons)
    more = "" if report.complete else " (stopped early; the rest goes next time)"
    return f"purge: deleted {parts} in {report.batches} batches, {report.duration_s:.1f}s{more}"


@dataclass
class Purger:
    """The purge inside `hub run`: every `interval_s` (the first time shortly after start) it purges
    under the purge lock, taken for the round only, so one hub at a time purges and `hub purge` can
    run between rounds; a hub that finds the lock taken skips its round."""

    dsn: str
    retention: Retention
    batch: int
    interval_s: float
    first_after_s: float = FIRST_RUN_AFTER_S
    on_purge: Callable[[PurgeReport], None] = lambda report: None
    purging: bool = False
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        await self._sleep(min(self.first_after_s, self.interval_s))
        delay = 1.0
        while not self._stop.is_set():
            try:
                await self._round()
                delay = 1.0
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("purge interrupted (%s: %s); retrying in %.0fs", type(exc).__name__, exc, delay)
                await self._sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)
                continue
            await self._sleep(self.interval_s)

    async def _round(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            self.purging = True
            report = await purge_locked(conn, self.retention, self.batch, stopping=self._stop.is_set)
        except PurgeBusy:
            return  # another hub (or `hub purge`) is at it
        finally:
            self.purging = False
            with suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError):
                await conn.close(timeout=2)
        if report.total or not report.complete:
            log.info("%s", describe(report))
        self.on_purge(report)

    async def _sleep(self, seconds: float) -> None:
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
