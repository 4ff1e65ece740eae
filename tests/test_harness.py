"""The test harness itself: real broker, real Postgres, and hub.dev.embedded's process handling."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import asyncpg
import psutil
import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from hub.config import Settings
from hub.core.topics import QUEUES, STREAMS
from hub.dev.embedded import PG_SYSTEM_USER, EmbeddedStartError, PortInUseError, start_broker, start_postgres

RECEIVE_TIMEOUT_S = 30  # Tansu's consumer-group join alone takes ~5 s


def _alive(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _wait_gone(pid: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while _alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


# ------------------------------------------------------------------------------------------- kafka


async def test_smoke_publish_with_aiokafka_receive_with_faststream(kafka_bootstrap: str, kafka_is_embedded: bool):
    topic = f"harness.smoke.{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])
    finally:
        await admin.close()

    broker = KafkaBroker(kafka_bootstrap)
    received: list[tuple[dict, bytes | None]] = []
    arrived = asyncio.Event()

    @broker.subscriber(topic, group_id=f"harness-{uuid.uuid4().hex[:8]}", auto_offset_reset="earliest")
    async def on_message(body: dict, msg: KafkaMessage) -> None:
        received.append((body, msg.raw_message.key))
        arrived.set()

    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=not kafka_is_embedded)
    try:
        await broker.start()
        await producer.start()
        assert len(await producer.partitions_for(topic)) == 3
        await producer.send_and_wait(topic, b'{"hello": "hub"}', key=b"k1")
        await asyncio.wait_for(arrived.wait(), RECEIVE_TIMEOUT_S)
    finally:
        await producer.stop()
        await broker.stop()
    assert received == [({"hello": "hub"}, b"k1")]


# ---------------------------------------------------------------------------------------- postgres

_seen_databases: list[str] = []


@pytest.mark.postgres
@pytest.mark.parametrize("round_", [1, 2])
async def test_database_url_is_fresh_empty_and_writable(database_url: str, round_: int) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        name = await conn.fetchval("SELECT current_database()")
        tables = await conn.fetchval("SELECT count(*) FROM information_schema.tables WHERE table_schema = 'public'")
        await conn.execute("CREATE TABLE probe (id int PRIMARY KEY)")
        await conn.execute("INSERT INTO probe VALUES (1)")
        assert await conn.fetchval("SELECT count(*) FROM probe") == 1
    finally:
        await conn.close()
    assert name.startswith("hub_test_") and tables == 0
    assert name not in _seen_databases
    _seen_databases.append(name)


def test_hub_settings_are_isolated(hub_settings: Settings, kafka_is_embedded: bool) -> None:
    topics = [*hub_settings.inbound_topics, *hub_settings.alert_topics, hub_settings.topic_dead_letter]
    assert len(set(topics)) == len(STREAMS) + len(QUEUES) + 1  # and the dead-letter topic
    assert len({t.rsplit(".", 1)[1] for t in topics}) == 1  # one shared per-test suffix
    assert topics[0].startswith("shipment.events.t")
    assert hub_settings.kafka_idempotence is not kafka_is_embedded
    assert hub_settings.http_port == 0 and hub_settings.topic_partitions == 3
    assert hub_settings.database_url is not None and "/hub_test_" in hub_settings.database_url.get_secret_value()


# ----------------------------------------------------------------------------------- hub.dev.embedded


def test_broker_on_a_busy_port_raises_port_in_use() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PortInUseError, match=str(port)) as info:
            start_broker(port=port)
        assert "HUB_EMBEDDED_KAFKA_PORT" in str(info.value)
        with pytest.raises(PortInUseError, match=str(port)):
            start_postgres(Path("/nonexistent/never-created"), port=port)


async def test_postgres_restart_keeps_data(tmp_path: Path) -> None:
    data = tmp_path / "pg"
    with start_postgres(data, fast=True) as pg:
        conn = await asyncpg.connect(pg.dsn)
        await conn.execute("CREATE TABLE survivor (id int); INSERT INTO survivor VALUES (42)")
        await conn.close()
        first_pid = pg.pid
    pg.stop()  # idempotent
    assert not _alive(first_pid)

    with start_postgres(data, fast=True) as pg:
        conn = await asyncpg.connect(pg.dsn)
        assert await conn.fetchval("SELECT id FROM survivor") == 42
        await conn.close()
        with pytest.raises(EmbeddedStartError, match=f"pid {pg.pid}"):
            start_postgres(data, fast=True)  # the live server still holds DATA
    assert not _alive(pg.pid)


@pytest.mark.parametrize("stale_pid", ["dead", "reused"])
async def test_postgres_starts_after_a_crash_left_postmaster_pid(tmp_path: Path, stale_pid: str) -> None:
    data = tmp_path / "pg"
    pg = start_postgres(data, fast=True)
    os.kill(pg.pid, signal.SIGKILL)
    assert _wait_gone(pg.pid, 5)
    pg.stop()
    pid_file = data / "postmaster.pid"
    assert pid_file.exists()
    # After a reboot or container restart the old pid may belong to an unrelated process. Postgres alone would
    # refuse ("lock file "postmaster.pid" already exists") if that process runs as the server's user.
    sleeper = subprocess.Popen(["sleep", "60"], user=PG_SYSTEM_USER if os.geteuid() == 0 else None)
    try:
        if stale_pid == "reused":
            lines = pid_file.read_text().splitlines()
            pid_file.write_text("\n".join([str(sleeper.pid), *lines[1:]]) + "\n")
        with start_postgres(data, fast=True) as again:
            conn = await asyncpg.connect(again.dsn)
            assert await conn.fetchval("SELECT 1") == 1
            await conn.close()
    finally:
        sleeper.kill()
        sleeper.wait()


def test_children_die_with_their_parent(tmp_path: Path) -> None:
    script = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from hub.dev.embedded import start_broker, start_postgres
        broker = start_broker()
        pg = start_postgres(Path({str(tmp_path / "pg")!r}), fast=True)
        print(broker.pid, pg.pid, flush=True)
        time.sleep(120)
        """
    )
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        tansu_pid, pg_pid = map(int, parent.stdout.readline().split())
        assert _alive(tansu_pid) and _alive(pg_pid)
    finally:
        parent.kill()
        parent.wait()
    survivors = [pid for pid in (tansu_pid, pg_pid) if not _wait_gone(pid, 5)]
    for pid in survivors:  # don't leak them into the rest of the run
        os.kill(pid, signal.SIGKILL)
    assert not survivors, f"children {survivors} outlived their parent (tansu {tansu_pid}, postgres {pg_pid})"
