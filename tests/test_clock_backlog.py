"""A backlog larger than a chunk is fired on two connections, the next chunk decided while the one
before it commits (hub.clock.engine._fire_overlapped): every timer still fires once, the chunks
still commit in due order, and where two chunks share a shipment the later one waits for it."""

from __future__ import annotations

import itertools
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from pydantic import SecretStr

from hub.clock import engine
from hub.clock.engine import Clock, tick
from hub.config import Settings
from hub.core.rules import load_rules
from hub.migrate import apply_migrations
from tests.report_data import shipment, task

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 12, 1, tzinfo=UTC)
SHIPMENTS = 12
TASKS = 30


async def _arrange(conn: asyncpg.Connection) -> None:
    await conn.execute("INSERT INTO customers (customer_id, name, language) VALUES ('A', 'A', 'en')")
    for n in range(SHIPMENTS):  # in transit, quiet since a moment of its own: stale 48 h later
        await shipment(conn, f"S{n:02}", "A", "SF")
        moved = NOW - timedelta(days=10) + timedelta(hours=n)
        await conn.execute(
            "UPDATE shipments SET status = 'in_transit', last_event_at = $2, stale_at = $3 WHERE shipment_id = $1",
            f"S{n:02}",
            moved,
            moved + timedelta(hours=48),
        )
    for n in range(TASKS):  # long past due: both levels at once; the first ones on the stale shipments
        opened = (NOW - timedelta(days=20) + timedelta(hours=n)).isoformat()
        await task(conn, "damage", "claims", "A", f"S{n % SHIPMENTS:02}", opened)


async def test_a_backlog_fires_each_timer_once_chunk_after_chunk_in_due_order(database_url: str, monkeypatch):
    await apply_migrations(database_url)
    monkeypatch.setattr(engine, "CHUNK", 5)
    overlapped = Counter()
    original = engine._fire_overlapped

    async def counting(*args, **kwargs):
        overlapped["calls"] += 1
        await original(*args, **kwargs)

    monkeypatch.setattr(engine, "_fire_overlapped", counting)
    conn = await asyncpg.connect(database_url)
    try:
        await _arrange(conn)
        arranged = {r[0] for r in await conn.fetch("SELECT task_id::text FROM coordination_tasks")}
        arranged |= {f"S{n:02}" for n in range(SHIPMENTS)}
        clock = Clock.of(Settings(_env_file=None, database_url=SecretStr(database_url)), load_rules())
        report = await tick(conn, NOW, clock)
        assert overlapped["calls"] == 1  # more than a chunk due: two connections

        fired = await conn.fetch("SELECT timer, subject, key, due_at, recorded_at FROM clock_firings")
        # Each stale firing opens a carrier_liaison task, itself long past due: both its levels too.
        assert Counter(r["timer"] for r in fired) == {
            "sla_breach": 2 * (TASKS + SHIPMENTS),
            "stale_shipment": SHIPMENTS,
        }
        assert len({(r["timer"], r["subject"], r["key"]) for r in fired}) == len(fired) == len(report.fired)
        assert await conn.fetchval("SELECT count(*) FROM outbox") == len(fired)  # one alert per firing

        # Chunk by chunk (one transaction each), no timer of a later chunk was due before one of an
        # earlier chunk. A task's level 2 is decided with its level 1, so each task counts by its first.
        first: dict[tuple[str, object], datetime] = {}
        for r in fired:
            first[(r["subject"], r["recorded_at"])] = min(
                r["due_at"], first.get((r["subject"], r["recorded_at"]), r["due_at"])
            )
        chunks: dict[object, list[datetime]] = defaultdict(list)
        for (_subject, recorded_at), due_at in first.items():
            chunks[recorded_at].append(due_at)
        order = [chunks[k] for k in sorted(chunks)]
        assert len(order) >= (TASKS + SHIPMENTS) // 5
        for earlier, later in itertools.pairwise(order):
            assert max(earlier) <= min(later)

        assert (await tick(conn, NOW, clock)).fired == []  # nothing twice
    finally:
        await conn.close()


async def test_without_a_dsn_a_backlog_is_fired_on_one_connection(database_url: str, monkeypatch):
    await apply_migrations(database_url)
    monkeypatch.setattr(engine, "CHUNK", 5)
    conn = await asyncpg.connect(database_url)
    try:
        await _arrange(conn)
        clock = Clock.of(Settings(_env_file=None), load_rules())
        assert clock.dsn is None
        report = await tick(conn, NOW, clock)
        expected = {"sla_breach": 2 * (TASKS + SHIPMENTS), "stale_shipment": SHIPMENTS}
        assert Counter(f.timer.value for f in report.fired) == expected
        assert (await tick(conn, NOW, clock)).fired == []
    finally:
        await conn.close()
