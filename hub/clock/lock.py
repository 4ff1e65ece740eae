"""One tick under the tick lock, for every evaluator of the clock: the scheduler of `hub run`
(each of its ticks), `hub tick` and `hub demo`.

Ticks never overlap, so a timer fires once whoever evaluates it; between two ticks of a running
hub, `hub tick` gets its turn. (Which `hub run` ticks on schedule is a separate lock, the
scheduler's leader lock.)
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
    """Another evaluator's tick held the clock for longer than the caller would wait."""

    def __init__(self, waited_s: float) -> None:
        super().__init__(f"another evaluator's tick held the clock for {waited_s:.0f}s")
        self.waited_s = waited_s


async def locked_tick(
    conn: asyncpg.Connection,
    now: datetime,
    clock: Clock,
    *,
    wait_s: float = 60.0,
    on_wait: Callable[[], None] | None = None,
) -> TickReport:
    """`tick(conn, now, clock)` holding the tick lock; `on_wait` is called once if it has to wait."""
    deadline, told = time.monotonic() + wait_s, False
    while not await conn.fetchval(queries.TRY_LOCK, queries.TICK_LOCK):
        if time.monotonic() > deadline:
            raise ClockBusy(wait_s)
        if not told and on_wait is not None:
            on_wait()
            told = True
        await asyncio.sleep(0.2)
    try:
        return await tick(conn, now, clock)
    finally:
        await conn.execute(queries.UNLOCK, queries.TICK_LOCK)
