"""The clock inside `hub run`: a tick every HUB_SCHEDULER_INTERVAL_S, by one hub per database.

Like the outbox relay, it holds a session advisory lock (the leader lock) on its own connection:
the hub that has it ticks on schedule, the others wait to take over. Each tick also takes the tick
lock, as `hub tick` does, so a tick asked for by hand runs between two scheduled ones. It survives
Postgres outages by reconnecting; the first tick afterwards catches up on everything that came due
meanwhile, in due order.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime

import asyncpg

from hub.clock import queries
from hub.clock.engine import Clock, TickReport
from hub.clock.lock import ClockBusy, locked_tick

log = logging.getLogger("hub.clock")
RETRY_MAX_S = 10.0
TICK_WAIT_S = 300.0  # a `hub tick` running a long sweep (the month's statements) by hand


@dataclass
class Scheduler:
    dsn: str
    clock: Clock
    interval_s: float
    on_tick: Callable[[TickReport], None] = lambda report: None
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    leading: bool = False  # holds the clock lock (for /metrics and tests)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self) -> None:
        self._stop.set()

    async def run(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            try:
                await self._lead()
                delay = 0.5
            except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                self.leading = False
                log.warning("clock interrupted (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay)
                await self._sleep(delay)
                delay = min(delay * 2, RETRY_MAX_S)

    async def _lead(self) -> None:
        conn = await asyncpg.connect(self.dsn)
        try:
            while not await conn.fetchval(queries.TRY_LOCK, queries.LEADER_LOCK):
                await self._sleep(self.interval_s * 2)  # another hub evaluates; take over if it dies
                if self._stop.is_set():
                    return
            self.leading = True
            log.info("this hub evaluates the clock every %gs", self.interval_s)
            while not self._stop.is_set():
                try:
                    report = await locked_tick(conn, self.now(), self.clock, wait_s=TICK_WAIT_S)
                except ClockBusy as exc:
                    log.warning("clock: %s; ticking again in %gs", exc, self.interval_s)
                    await self._sleep(self.interval_s)
                    continue
                if report.fired:
                    log.info(
                        "clock: %d timer(s) fired (%s) in %.0f ms",
                        len(report.fired),
                        _kinds(report),
                        report.duration_s * 1000,
                    )
                self.on_tick(report)
                if not report.more:
                    await self._sleep(self.interval_s)
        finally:
            self.leading = False
            with suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError):
                await conn.close(timeout=2)

    async def _sleep(self, seconds: float) -> None:
        with suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)


def _kinds(report: TickReport) -> str:
    counts: dict[str, int] = {}
    for firing in report.fired:
        counts[firing.timer.value] = counts.get(firing.timer.value, 0) + 1
    return ", ".join(f"{n} {kind}" for kind, n in sorted(counts.items()))
