"""One tick under the clock lock, for whoever evaluates the clock now and then (`hub tick`, `hub demo`).

The lock is the session advisory lock the scheduler of `hub run` holds while it evaluates: one
evaluator per database, so a timer fires once whoever evaluates it. This takes it for one tick
and gives it back, waiting a while if another evaluator has it.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

import asyncpg

from hub.clock import queries
from hub.clock.engine import Clock, TickReport, tick


class ClockBusy(RuntimeError):
    """Another evaluator held the clock lock for longer than the caller would wait."""

    def __init__(self, waited_s: float) -> None:
        super().__init__(f"another evaluator held the clock for {waited_s:.0f}s")
        self.waited_s = waited_s


async def locked_tick(
    conn: asyncpg.Connection,
    now: datetime,
    clock: Clock,
    *,
    wait_s: float = 60.0,
    on_wait: Callable[[], None] | None = None,
) -> TickReport:
    """`tick(conn, now, clock)` holding the clock lock; `on_wait` is called once if it has to wait."""
    deadline, told = time.monotonic() + wait_s, False
    while not await conn.fetchval(queries.TRY_LOCK, queries.CLOCK_LOCK):
        if time.monotonic() > deadline:
            raise ClockBusy(wait_s)
        if not told and on_wait is not None:
            on_wait()
            told = True
        await asyncio.sleep(0.2)
    try:
        return await tick(conn, now, clock)
    finally:
        await conn.execute(queries.UNLOCK, queries.CLOCK_LOCK)
