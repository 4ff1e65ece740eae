"""The clock and the batch store lock in the same order: a shipment's advisory lock first, then
the rows. Taken the other way round (a task row, then its shipment) the two deadlocked under the
demo's load: the store holds a shipment and updates its tasks while the clock holds a task row and
waits for the shipment."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import asyncpg
import pytest
from pydantic import SecretStr

from hub.clock.engine import Clock, tick
from hub.clock.lock import locked_tick
from hub.clock.scheduler import Scheduler
from hub.config import Settings
from hub.core.rules import load_rules
from hub.migrate import apply_migrations
from hub.store.queries import LOCK_SHIPMENTS
from tests.report_data import shipment, task
from tests.support import wait_until

pytestmark = pytest.mark.postgres


async def test_a_tick_waits_for_the_shipment_before_taking_its_task_row(database_url: str):
    await apply_migrations(database_url)
    store, clock_conn = await asyncpg.connect(database_url), await asyncpg.connect(database_url)
    try:
        await store.execute("INSERT INTO customers (customer_id, name, language) VALUES ('A', 'A', 'en')")
        await shipment(store, "S1", "A", "SF")
        await task(store, "damage", "claims", "A", "S1", "2026-11-02T00:00")  # long past due
        await store.execute("UPDATE shipments SET stale_at = '2026-11-03T00:00Z'")  # one chunk: task and shipment
        settings = Settings(_env_file=None, database_url=SecretStr(database_url))
        clock = Clock.of(settings, load_rules())
        async with store.transaction():  # the batch store: the shipment's lock, then its task rows
            await store.execute(LOCK_SHIPMENTS, ["S1"])
            ticking = asyncio.create_task(tick(clock_conn, datetime(2026, 12, 1, tzinfo=UTC), clock))
            await asyncio.sleep(1.5)  # the tick is in: blocked on S1 (and, done wrong, holding the task row)
            assert not ticking.done()
            await store.execute("UPDATE coordination_tasks SET customer_id = 'A', updated_at = now()")
        report = await asyncio.wait_for(ticking, 30)
        assert {f.timer.value for f in report.fired} >= {"sla_breach"}
    finally:
        await store.close()
        await clock_conn.close()


async def test_hub_tick_gets_its_turn_while_a_running_hub_leads_the_clock(database_url: str):
    await apply_migrations(database_url)
    settings = Settings(_env_file=None, database_url=SecretStr(database_url))
    clock = Clock.of(settings, load_rules())
    scheduler = Scheduler(database_url, clock, interval_s=0.2)
    running = asyncio.create_task(scheduler.run())
    conn = await asyncpg.connect(database_url)
    try:
        await wait_until(lambda: _true(scheduler.leading), timeout=30, what="the scheduler leading")
        report = await locked_tick(conn, datetime(2026, 12, 1, tzinfo=UTC), clock, wait_s=10)
        assert report.fired == []
        assert scheduler.leading  # it kept the lead: a tick by hand does not take it over
    finally:
        scheduler.stop()
        await asyncio.wait_for(running, 10)
        await conn.close()


async def _true(value: bool) -> bool:
    return value
