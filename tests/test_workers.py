"""`hub run --workers N`: a supervisor and N hub processes sharing one consumer group."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import time

import psutil
import pytest
from typer.testing import CliRunner

from hub.cli import app
from hub.config import Settings
from hub.workers import worker_environment
from tests.support import fetchval, migrated, publish, shipment_event, wait_for_count, wait_until

BATCH_LINE = re.compile(r"^\S+ \S+ (\d+) DEBUG\s+hub\.consumer: batch: (\d+) records", re.MULTILINE)


def test_each_worker_gets_its_own_port_and_client_id_and_runs_alone():
    s = Settings(_env_file=None, workers=3, http_port=9464, client_id="hub", kafka_bootstrap="k:9092")
    envs = [worker_environment(s, i, {"PATH": "/bin", "HUB_STALE": "x"}) for i in range(3)]
    assert [e["HUB_HTTP_PORT"] for e in envs] == ["9464", "9465", "9466"]
    assert [e["HUB_CLIENT_ID"] for e in envs] == ["hub-0", "hub-1", "hub-2"]
    assert {e["HUB_WORKERS"] for e in envs} == {"1"}, "a worker must not start workers of its own"
    assert all(e["PATH"] == "/bin" and "HUB_STALE" not in e and e["HUB_KAFKA_BOOTSTRAP"] == "k:9092" for e in envs)


def test_worker_ports_must_fit_below_65536():
    with pytest.raises(ValueError, match="HUB_HTTP_PORT 65535 \\+ HUB_WORKERS 2"):
        Settings(_env_file=None, workers=2, http_port=65535)
    assert Settings(_env_file=None, workers=2, http_port=0).workers == 2


def test_invalid_settings_name_the_variable_instead_of_a_traceback():
    result = CliRunner().invoke(app, ["run", "--workers", "2"], env={"HUB_HTTP_PORT": "65535"})
    assert result.exit_code == 1
    assert "invalid settings: HUB_HTTP_PORT 65535 + HUB_WORKERS 2 - 1 is above 65535" in result.output
    assert "Traceback" not in result.output
    result = CliRunner().invoke(app, ["run"], env={"HUB_BATCH_MAX_RECORDS": "0"})
    assert (
        result.exit_code == 1 and "HUB_BATCH_MAX_RECORDS: Input should be greater than or equal to 1" in result.output
    )


def test_metrics_stay_off_for_every_worker_when_turned_off():
    s = Settings(_env_file=None, workers=2, http_port=0)
    assert {worker_environment(s, i, {})["HUB_HTTP_PORT"] for i in range(2)} == {"0"}


def _start(settings: Settings, log_path) -> subprocess.Popen:
    # DEBUG: the line per batch (at INFO the hub logs a summary every 10 s, not which worker stored what)
    env = {**settings.child_environment(), "HUB_LOG_LEVEL": "DEBUG", "PYTHONUNBUFFERED": "1"}
    log = open(log_path, "ab")  # noqa: SIM115 - closed with the process
    return subprocess.Popen(
        [sys.executable, "-m", "hub", "run", "--workers", "2"], env=env, stdout=log, stderr=subprocess.STDOUT
    )


def _workers_of(proc: subprocess.Popen, timeout: float = 30) -> list[psutil.Process]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        children = psutil.Process(proc.pid).children()
        if len(children) == 2:
            return children
        time.sleep(0.2)
    raise AssertionError(f"expected 2 workers, found {len(psutil.Process(proc.pid).children())}")


def _batch_pids(log_path) -> set[int]:
    return {int(pid) for pid, _ in BATCH_LINE.findall(log_path.read_text())}


def _damage(i: int, tag: str) -> dict:
    return shipment_event(f"{tag}-{i:04d}", "exception", i / 100, exception={"code": "damaged"})


@pytest.mark.slow
async def test_two_workers_share_the_partitions_and_store_each_event_once(hub_settings, tmp_path):
    s = hub_settings.model_copy(update={"topic_partitions": 4, "batch_max_records": 50})
    dsn = await migrated(s)
    log_path = tmp_path / "hub.log"
    proc = _start(s, log_path)
    try:
        workers = _workers_of(proc)
        # Probe rounds (16 shipments, so every partition) until both workers have stored a batch: the
        # group has settled, and neither took every partition while the other was still joining.
        probes, deadline = 0, time.monotonic() + 120
        while len(_batch_pids(log_path)) < 2:
            assert time.monotonic() < deadline, "the two workers never both stored a batch"
            await publish(s, shipments=[_damage(probes + i, "P") for i in range(16)])
            probes += 16
            await wait_for_count(dsn, "SELECT count(*) FROM inbox", probes, timeout=90)
        n = 800
        await publish(s, shipments=[_damage(i, "W") for i in range(n)])
        await wait_for_count(dsn, "SELECT count(*) FROM inbox", probes + n, timeout=120)
        doubled = await fetchval(
            dsn,
            "SELECT count(*) FROM (SELECT source_event_id FROM coordination_tasks "
            "GROUP BY source_event_id HAVING count(*) > 1) d",
        )
        assert doubled == 0
        assert await fetchval(dsn, "SELECT count(DISTINCT source_event_id) FROM coordination_tasks") == probes + n
        assert _batch_pids(log_path) == {w.pid for w in workers}
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0, log_path.read_text()[-3000:]
        # Already gone, not merely dying: the supervisor waited for each (PDEATHSIG alone would leave
        # them finishing their batch after it exited).
        assert not [w for w in workers if _alive(w)], "the supervisor exited before its workers"
        assert all(f"{w.pid} INFO    hub: hub stopped" in log_path.read_text() for w in workers), (
            "every worker should have stopped gracefully"
        )
    finally:
        if proc.poll() is None:
            proc.kill()


@pytest.mark.slow
async def test_a_dead_worker_stops_the_others_and_fails_the_service(hub_settings, tmp_path):
    await migrated(hub_settings)
    log_path = tmp_path / "hub.log"
    proc = _start(hub_settings, log_path)
    try:
        workers = _workers_of(proc)
        await wait_until(lambda: _started(log_path, 2), timeout=90, what="both workers to start")
        workers[0].send_signal(signal.SIGKILL)
        assert proc.wait(60) != 0, "the supervisor must fail so the service manager restarts the hub"
        assert not [w for w in workers if _alive(w)], "the surviving worker was left running"
        text = log_path.read_text()
        assert f"worker pid {workers[0].pid} exited" in text
        assert f"{workers[1].pid} INFO    hub: hub stopped" in text, "the survivor should have stopped gracefully"
    finally:
        if proc.poll() is None:
            proc.kill()


def _alive(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


async def _started(log_path, workers: int) -> bool:
    return log_path.read_text().count("hub running") == workers
