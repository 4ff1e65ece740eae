"""hub.observability.Periodic: the metrics refresh and the activity log's loop.

A stop must end the loop even when the work swallows the cancellation, as Python 3.11's
asyncio.wait_for can when its inner call completes as the cancellation arrives: the metrics
refresh's loop, stopped by cancellation alone, once ran on and `stop()` never returned.
"""

from __future__ import annotations

import asyncio

from hub.observability import Periodic


async def test_work_runs_every_interval_until_stopped() -> None:
    runs: list[float] = []

    async def work() -> None:
        runs.append(asyncio.get_running_loop().time())

    periodic = Periodic("t", 0.01, work, wait_first=False)
    periodic.start()
    await asyncio.sleep(0.1)
    await asyncio.wait_for(periodic.stop(), 1)
    count = len(runs)
    await asyncio.sleep(0.05)
    assert 3 <= count == len(runs)  # ran several times, and not after the stop


async def test_wait_first_waits_an_interval_before_the_first_work() -> None:
    runs: list[int] = []

    async def work() -> None:
        runs.append(1)

    periodic = Periodic("t", 10, work, wait_first=True)
    periodic.start()
    await asyncio.sleep(0.05)
    await asyncio.wait_for(periodic.stop(), 1)
    assert runs == []


async def test_a_stop_ends_the_loop_even_when_the_work_swallows_the_cancellation() -> None:
    started = asyncio.Event()
    swallowed: list[int] = []

    async def work() -> None:
        started.set()
        try:
            await asyncio.sleep(10)
        except asyncio.CancelledError:
            swallowed.append(1)  # returns as if the call had completed

    periodic = Periodic("t", 0.01, work, wait_first=False)
    periodic.start()
    await asyncio.wait_for(started.wait(), 1)
    await asyncio.wait_for(periodic.stop(), 1)  # without the flag: the loop runs on, this times out
    assert swallowed == [1]
