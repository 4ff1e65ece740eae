"""Real-service test harness: a Kafka-protocol broker and a PostgreSQL for the whole session.

Each service comes from the first of these that applies (HUB_TEST_BACKEND=external|containers|local forces one):
  external    HUB_TEST_KAFKA (bootstrap servers) / HUB_TEST_DATABASE_URL (a DSN allowed to CREATE DATABASE)
  containers  testcontainers, when a Docker engine answers a ping
  local       child processes from hub.dev.embedded: Tansu (memory storage) and PostgreSQL 18
Services start on first use, so tests that need neither start nothing.

Fixtures: kafka_bootstrap, kafka_is_embedded, pg_admin_dsn (session); database_url, hub_settings (per test).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest
from pydantic import SecretStr

from hub.config import Settings
from hub.dev.databases import scratch_database

pytest_plugins = ("tests.watchdog",)

BACKENDS = ("external", "containers", "local")
ENV_VARS = {"kafka": "HUB_TEST_KAFKA", "postgres": "HUB_TEST_DATABASE_URL"}
KAFKA_IMAGE = "confluentinc/cp-kafka:7.6.0"
POSTGRES_IMAGE = "postgres:18-alpine"

_backends = pytest.StashKey[dict[str, str]]()


@dataclass(frozen=True)
class Service:
    address: str  # bootstrap servers or admin DSN
    backend: str
    description: str


# ------------------------------------------------------------------------------------- backend choice


def pytest_configure(config: pytest.Config) -> None:
    # rich fixes a console's width at creation when COLUMNS is set (pytest-xdist workers get one):
    # without it, CLI tests' own COLUMNS is read at print time.
    os.environ.pop("COLUMNS", None)
    os.environ.pop("LINES", None)


def pytest_sessionstart(session: pytest.Session) -> None:
    _chosen(session.config)  # a bad HUB_TEST_BACKEND setup stops the run here, before any test


def pytest_report_header(config: pytest.Config) -> str:
    chosen = _chosen(config)
    return "hub tests: " + ", ".join(f"{svc}={backend}" for svc, backend in chosen.items()) + " (started on first use)"


def _chosen(config: pytest.Config) -> dict[str, str]:
    if _backends not in config.stash:
        config.stash[_backends] = _choose_backends()
    return config.stash[_backends]


def _choose_backends() -> dict[str, str]:
    forced = os.environ.get("HUB_TEST_BACKEND", "").strip().lower()
    if forced and forced not in BACKENDS:
        raise pytest.UsageError(f"HUB_TEST_BACKEND={forced!r}: expected one of {', '.join(BACKENDS)}")
    if forced == "external":
        missing = [var for var in ENV_VARS.values() if not os.environ.get(var)]
        if missing:
            raise pytest.UsageError(
                f"HUB_TEST_BACKEND=external needs {' and '.join(missing)} "
                f"({ENV_VARS['kafka']}=host:9092, {ENV_VARS['postgres']}=postgresql://user:pw@host:5432/postgres)"
            )
    if forced == "containers" and not _docker_answers():
        raise pytest.UsageError("HUB_TEST_BACKEND=containers but no Docker engine answered; use HUB_TEST_BACKEND=local")
    if forced:
        return dict.fromkeys(ENV_VARS, forced)
    docker = None  # pinged at most once, and only when an env var is missing
    chosen = {}
    for svc, var in ENV_VARS.items():
        if os.environ.get(var):
            chosen[svc] = "external"
        else:
            docker = _docker_answers() if docker is None else docker
            chosen[svc] = "containers" if docker else "local"
    return chosen


def _docker_answers() -> bool:
    try:
        import docker

        return bool(docker.from_env(timeout=2).ping())
    except Exception:  # noqa: BLE001 - whatever fails, there is no Docker engine to use
        return False


def _announce(config: pytest.Config, line: str) -> None:
    """Print past pytest's output capture: a fixture's stdout would be hidden."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        if getattr(getattr(reporter, "_tw", None), "width_of_current_line", 0):
            reporter.write("\n")  # we are mid-line, after progress dots or a verbose test name
        reporter.write_line(line)


# ---------------------------------------------------------------------------------- session services
# Local children are started from these sync fixtures, i.e. in the main thread: hub.dev.embedded ties their
# lifetime to the creating thread (PDEATHSIG), so an interrupted or killed pytest cannot leave them running.


@pytest.fixture(scope="session")
def _kafka(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Service:
    backend = _chosen(request.config)["kafka"]
    if backend == "external":
        service = Service(os.environ[ENV_VARS["kafka"]], backend, "external")
    elif backend == "containers":
        service = _kafka_container(request.addfinalizer)
    else:
        from hub.dev.embedded import start_broker

        broker = start_broker(log_dir=_private_dir(request, "tansu"))
        request.addfinalizer(broker.stop)
        service = Service(broker.bootstrap, backend, f"tansu pid {broker.pid}, log {broker.log_file}")
    _announce(request.config, f"hub tests: kafka={backend} {service.address} ({service.description})")
    return service


@pytest.fixture(scope="session")
def _postgres(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Service:
    backend = _chosen(request.config)["postgres"]
    if backend == "external":
        service = Service(os.environ[ENV_VARS["postgres"]], backend, "external")
    elif backend == "containers":
        service = _postgres_container(request.addfinalizer)
    else:
        from hub.dev.embedded import start_postgres

        pg = start_postgres(_private_dir(request, "postgres") / "data", fast=True)
        request.addfinalizer(pg.stop)
        service = Service(pg.admin_dsn, backend, f"PostgreSQL 18 pid {pg.pid}, log {pg.log_file}")
    _announce(request.config, f"hub tests: postgres={backend} {_redact(service.address)} ({service.description})")
    return service


def _private_dir(request: pytest.FixtureRequest, what: str) -> Path:
    """A folder outside pytest's basetemp: pytest prunes old basetemps (another pytest run on the
    machine would delete a live server's data) and makes its root 0700 (Postgres runs as another user)."""
    folder = Path(tempfile.mkdtemp(prefix=f"hub-test-{what}-"))
    folder.chmod(0o755)
    request.addfinalizer(lambda: shutil.rmtree(folder, ignore_errors=True))
    return folder


def _kafka_container(addfinalizer: Callable[[Callable[[], object]], None]) -> Service:
    try:
        from testcontainers.community.kafka import KafkaContainer
    except ImportError:  # testcontainers < 4.14
        from testcontainers.kafka import KafkaContainer

    container = KafkaContainer(KAFKA_IMAGE).with_kraft()
    addfinalizer(container.stop)  # before start(): a failed start can leave a created container behind
    container.start()
    return Service(container.get_bootstrap_server(), "containers", KAFKA_IMAGE)


def _postgres_container(addfinalizer: Callable[[Callable[[], object]], None]) -> Service:
    try:
        from testcontainers.community.postgres import PostgresContainer
    except ImportError:  # testcontainers < 4.14
        from testcontainers.postgres import PostgresContainer

    container = PostgresContainer(
        POSTGRES_IMAGE, username="postgres", password="postgres", dbname="postgres", driver=None
    )
    addfinalizer(container.stop)
    container.start()
    return Service(container.get_connection_url(), "containers", POSTGRES_IMAGE)


def _redact(dsn: str) -> str:
    parts = urlsplit(dsn)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return dsn


@pytest.fixture(scope="session")
def kafka_bootstrap(_kafka: Service) -> str:
    return _kafka.address


@pytest.fixture(scope="session")
def kafka_is_embedded(_kafka: Service) -> bool:
    """True for Tansu, which rejects the idempotent producer (InitProducerId fails with UnknownError)."""
    return _kafka.backend == "local"


@pytest.fixture(scope="session")
def pg_admin_dsn(_postgres: Service) -> str:
    return _postgres.address


# -------------------------------------------------------------------------------------- per-test state


@pytest.fixture
async def database_url(pg_admin_dsn: str) -> AsyncIterator[str]:
    """A fresh, empty database for this test, dropped afterwards (even with connections still open)."""
    async with scratch_database(pg_admin_dsn, "hub_test") as dsn:
        yield dsn


@pytest.fixture
def hub_settings(kafka_bootstrap: str, kafka_is_embedded: bool, database_url: str, tmp_path) -> Settings:
    """Settings isolated per test: own database, topics, consumer group; no .env, no HTTP port."""
    tag = uuid.uuid4().hex[:6]
    topics = {
        name: f"{info.default}.t{tag}"
        for name, info in Settings.model_fields.items()
        if name.startswith("topic_") and isinstance(info.default, str)
    }
    return Settings(
        _env_file=None,
        kafka_bootstrap=kafka_bootstrap,
        database_url=SecretStr(database_url),
        migrate_database_url=None,  # a developer's HUB_MIGRATE_DATABASE_URL must not aim migrations elsewhere
        data_dir=tmp_path / "hub-data",
        consumer_group=f"hub-test-{tag}",
        client_id=f"hub-test-{tag}",
        kafka_idempotence=not kafka_is_embedded,
        topic_partitions=3,
        http_port=0,
        scheduler_interval_s=0,  # the clock only where a test drives it (hub tick --now): events are dated 2026-11-27
        batch_timeout_ms=20,
        **topics,
    )
