"""The hub under faults: SIGKILL mid-stream, and Postgres unreachable for 15 s.

Each event of the workload has effects that do not depend on arrival order (one shipment
per event), so the expected books are exact: one inbox row, one history row, one task and
one alert per event, every expected alert_id on its queue."""

from __future__ import annotations

import asyncio
import signal
from urllib.parse import urlsplit, urlunsplit

import orjson
import pytest
from pydantic import SecretStr

from hub.core.ids import stable_id
from tests.reliability.faultproxy import FaultProxy
from tests.support import (
    carrier_update,
    fetchval,
    migrated,
    publish,
    read_topics,
    running_hub,
    shipment_event,
    start_hub_process,
    wait_for_count,
)

pytestmark = pytest.mark.slow


def workload(n: int, tag: str) -> tuple[list[dict], list[dict], dict[str, str]]:
    """n events: damages from the warehouse and losses from carriers, one shipment each."""
    shipments, carriers, expected_alerts = [], [], {}
    for i in range(n):
        sid = f"{tag}-{i:05d}"
        if i % 2:
            event = carrier_update(sid, "exception", i / 100, exception_code="lost")
            carriers.append(event)
            expected_alerts[stable_id("alert", event["event_id"], "loss")] = event["event_id"]
        else:
            event = shipment_event(sid, "exception", i / 100, exception={"code": "damaged"})
            shipments.append(event)
            expected_alerts[stable_id("alert", event["event_id"], "damage")] = event["event_id"]
    return shipments, carriers, expected_alerts


async def check_books(settings, n: int, expected_alerts: dict[str, str]) -> dict[str, int]:
    dsn = settings.database_url.get_secret_value()
    assert await fetchval(dsn, "SELECT count(*) FROM inbox") == n, "lost or extra events"
    assert await fetchval(dsn, "SELECT count(*) FROM dead_letters") == 0, "a transient fault was dead-lettered"
    # Carrier updates of unknown shipments notify nobody (no customer yet): half the events notify.
    for table, column, rows in (
        ("shipment_events", "event_id", n),
        ("coordination_tasks", "source_event_id", n),
        ("customer_notifications", "source_event_id", (n + 1) // 2),
    ):
        doubled = await fetchval(
            dsn, f"SELECT count(*) FROM (SELECT {column} FROM {table} GROUP BY {column} HAVING count(*) > 1) d"
        )
        assert doubled == 0, f"duplicate effects in {table}"
        assert await fetchval(dsn, f"SELECT count(DISTINCT {column}) FROM {table}") == rows, f"missing rows in {table}"
    await wait_for_count(dsn, "SELECT count(*) FROM outbox WHERE sent_at IS NOT NULL", n, timeout=90)
    records = await read_topics(settings, [settings.topic_alerts_exceptions], expected=n, idle=5)
    seen = [orjson.loads(r.value)["alert_id"] for r in records]
    missing = set(expected_alerts) - set(seen)
    assert not missing, f"{len(missing)} expected alerts not on the queue"
    return {"alerts_on_queue": len(seen), "duplicate_alerts": len(seen) - len(set(seen))}


async def test_sigkill_mid_stream_loses_and_doubles_nothing(hub_settings, tmp_path):
    s = hub_settings.model_copy(update={"batch_max_records": 200})
    dsn = await migrated(s)
    n = 5000
    shipments, carriers, expected = workload(n, "K")
    publisher = asyncio.create_task(publish(s, shipments=shipments, carriers=carriers))
    first = start_hub_process(s, tmp_path / "hub-1.log")
    try:
        await wait_for_count(dsn, "SELECT count(*) FROM inbox", n // 5, timeout=120)
        first.send_signal(signal.SIGKILL)
        first.wait(10)
        killed_at = await fetchval(dsn, "SELECT count(*) FROM inbox")
        assert killed_at < n, "the kill came too late to test anything"
        second = start_hub_process(s, tmp_path / "hub-2.log")
        try:
            await publisher
            await wait_for_count(dsn, "SELECT count(*) FROM inbox", n, timeout=180)
            books = await check_books(s, n, expected)
        finally:
            second.send_signal(signal.SIGTERM)
            assert second.wait(30) == 0, (tmp_path / "hub-2.log").read_text()[-3000:]
    finally:
        if first.poll() is None:
            first.kill()
    print(f"killed after {killed_at} of {n} events; {books}")


async def test_postgres_unreachable_for_15s_then_back(hub_settings):
    dsn = await migrated(hub_settings)
    target = urlsplit(dsn)
    proxy = await FaultProxy(target.hostname, target.port).start()
    via_proxy = urlunsplit(target._replace(netloc=f"{target.username}@127.0.0.1:{proxy.port}"))
    s = hub_settings.model_copy(
        update={"database_url": SecretStr(via_proxy), "batch_max_records": 200, "retry_backoff_max_s": 2.0}
    )
    n = 3000
    shipments, carriers, expected = workload(n, "O")
    try:
        async with running_hub(s) as runtime:
            publisher = asyncio.create_task(publish(s, shipments=shipments, carriers=carriers))
            await wait_for_count(dsn, "SELECT count(*) FROM inbox", n // 5, timeout=120)
            proxy.cut()
            during = await fetchval(dsn, "SELECT count(*) FROM inbox")
            await asyncio.sleep(15)
            assert await fetchval(dsn, "SELECT count(*) FROM inbox") == during, "writes went through the outage"
            proxy.restore()
            await publisher
            await wait_for_count(dsn, "SELECT count(*) FROM inbox", n, timeout=120)
            books = await check_books(s.model_copy(update={"database_url": SecretStr(dsn)}), n, expected)
            assert runtime.totals.processed + runtime.totals.duplicates >= n
    finally:
        await proxy.stop()
    print(f"outage after {during} of {n} events; {books}")
