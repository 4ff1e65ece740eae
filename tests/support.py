"""Helpers for end-to-end tests: run the hub, publish events, wait for effects, read queues."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from hub.config import Settings
from hub.dev import databases
from hub.kafka import aiokafka_kwargs
from hub.migrate import apply_migrations
from hub.runtime import HubRuntime
from producers.feeds import CallCentreFeed, CarrierFeed, WarehouseFeed

T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)


class FakeConsumer:
    """What hub.inbound.InboundBatches needs of a Kafka consumer: commits and seeks, recorded."""

    def __init__(self) -> None:
        self.commits: list[int] = []
        self.seeks: list[int] = []

    async def commit(self, offsets: dict[TopicPartition, int]) -> None:
        self.commits.extend(offsets.values())

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.seeks.append(offset)


def at(minutes: float) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def new_id() -> str:
    return str(uuid.uuid4())


def shipment_event(shipment_id: str, type_: str, minutes: float = 0, **extra: Any) -> dict:
    return {
        "event_id": new_id(),
        "occurred_at": at(minutes),
        "source": "wms-sh-01",
        "shipment_id": shipment_id,
        "customer_id": extra.pop("customer_id", "C-STD"),
        "type": type_,
        **extra,
    }


def carrier_update(shipment_id: str, status: str, minutes: float = 0, **extra: Any) -> dict:
    return {
        "event_id": new_id(),
        "occurred_at": at(minutes),
        "source": "carrier:SF",
        "carrier_id": "SF",
        "carrier_tracking_no": f"SF{shipment_id}",
        "shipment_id": shipment_id,
        "status": status,
        **extra,
    }


def call_log(customer_id: str, category: str, minutes: float = 0, **extra: Any) -> dict:
    return {
        "event_id": new_id(),
        "occurred_at": at(minutes),
        "source": "callcentre",
        "call_id": new_id()[:12],
        "customer_id": customer_id,
        "direction": extra.pop("direction", "inbound"),
        "channel": extra.pop("channel", "phone"),
        "category": category,
        **extra,
    }


def isolated_settings(kafka_bootstrap: str, kafka_is_embedded: bool, dsn: str, **overrides: Any) -> Settings:
    """Settings with their own topics and consumer group, as the `hub_settings` fixture builds them."""
    from pydantic import SecretStr

    tag = uuid.uuid4().hex[:6]
    topics = {
        name: f"{info.default}.t{tag}"
        for name, info in Settings.model_fields.items()
        if name.startswith("topic_") and isinstance(info.default, str)
    }
    values = dict(
        kafka_bootstrap=kafka_bootstrap,
        database_url=SecretStr(dsn),
        migrate_database_url=None,
        consumer_group=f"hub-test-{tag}",
        client_id=f"hub-test-{tag}",
        kafka_idempotence=not kafka_is_embedded,
        topic_partitions=3,
        http_port=0,
        scheduler_interval_s=0,  # the clock only where a test drives it
        batch_timeout_ms=20,
        **topics,
    )
    return Settings(_env_file=None, **{**values, **overrides})


def scratch_database(admin_dsn: str):
    """A database for a module-scoped scenario, dropped afterwards."""
    return databases.scratch_database(admin_dsn, "hub_test")


def start_hub_process(settings: Settings, log_path, *args: str) -> subprocess.Popen:
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the process by the caller's cleanup
    return subprocess.Popen(
        [sys.executable, "-m", "hub", "run", *args],
        env=settings.child_environment(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )


async def migrated(settings: Settings) -> str:
    dsn = settings.database_url.get_secret_value()
    await apply_migrations(dsn)
    return dsn


@asynccontextmanager
async def running_hub(settings: Settings, **kwargs: Any):
    """The hub in-process, started after migrations, stopped gracefully afterwards."""
    await migrated(settings)
    runtime = HubRuntime(settings, **kwargs)
    await runtime.start()
    try:
        yield runtime
    finally:
        await runtime.stop()


async def publish(settings: Settings, shipments=(), carriers=(), calls=()) -> None:
    for feed_class, events in ((WarehouseFeed, shipments), (CarrierFeed, carriers), (CallCentreFeed, calls)):
        if events:
            async with feed_class(settings=settings) as feed:
                await feed.publish_many(list(events))


async def publish_raw(settings: Settings, topic: str, items: list[tuple[bytes | None, bytes]]) -> None:
    async with WarehouseFeed(settings=settings, topic=topic) as feed:
        await feed.publish_raw_many([(None, key, value) for key, value in items])


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await check():
            return
        await asyncio.sleep(0.2)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


async def fetchval(dsn: str, sql: str, *args: Any) -> Any:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def fetch(dsn: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def wait_for_count(dsn: str, sql: str, expected: int, timeout: float = 60, *args: Any) -> None:
    async def enough() -> bool:
        return (await fetchval(dsn, sql, *args)) >= expected

    await wait_until(enough, timeout, f"{expected} from: {sql}")


async def read_topics(
    settings: Settings, topics: list[str], *, expected: int | None = None, timeout: float = 30, idle: float = 3.0
) -> list:
    """Every record on the topics, read by a fresh consumer group from the beginning.

    Stops at `expected` records, or after `idle` seconds without a new record.
    """
    consumer = AIOKafkaConsumer(
        *topics,
        group_id=f"reader-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
        **aiokafka_kwargs(settings),
    )
    await consumer.start()
    records, deadline, last_new = [], time.monotonic() + timeout, time.monotonic()
    try:
        while time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for recs in batch.values():
                records.extend(recs)
                last_new = time.monotonic()
            if expected is not None and len(records) >= expected:
                break
            if expected is None and records and time.monotonic() - last_new > idle:
                break
    finally:
        await consumer.stop()
    return records


def alerts_of(records: list) -> list[dict]:
    return [orjson.loads(r.value) for r in records]
