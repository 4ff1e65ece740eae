"""`hub customers import`, `hub publish`, and `hub run` start-up and shutdown behaviour."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time

import orjson
import pytest
from typer.testing import CliRunner

from hub.cli import app
from hub.core.rules import DEFAULT_RULES_FILE
from tests.support import (
    fetch,
    fetchval,
    migrated,
    publish,
    read_topics,
    shipment_event,
    start_hub_process,
    wait_for_count,
)

runner = CliRunner()


def invoke(settings, *args: str):
    return runner.invoke(app, list(args), env=settings.child_environment())


def hub_subprocess(settings, *args: str) -> subprocess.CompletedProcess:
    """Commands that install signal handlers (run) need a process of their own."""
    return subprocess.run(
        [sys.executable, "-m", "hub", *args],
        env=settings.child_environment(),
        capture_output=True,
        text=True,
        timeout=60,
    )


@pytest.mark.postgres
async def test_customers_import_upserts_and_reports_bad_rows_without_importing_any(hub_settings, tmp_path):
    dsn = await migrated(hub_settings)
    good = tmp_path / "customers.csv"
    good.write_text(
        "customer_id,name,tier,language,preferred_channel,email,phone\n"
        "C1,Acme,key,en,email,ops@acme.test,+86 138 0013 8000\nC2,Beta,,,,,\n"
    )
    result = await asyncio.to_thread(invoke, hub_settings, "customers", "import", str(good))
    assert result.exit_code == 0, result.output
    rows = await fetch(dsn, "SELECT customer_id, tier, language, preferred_channel FROM customers ORDER BY 1")
    assert [tuple(r) for r in rows] == [("C1", "key", "en", "email"), ("C2", "standard", "zh", "sms")]
    bad = tmp_path / "bad.csv"
    bad.write_text("customer_id,name,tier\nC3,Gamma,standard\nC4,Delta,gold\nC1,Acme again,standard\n")
    result = await asyncio.to_thread(invoke, hub_settings, "customers", "import", str(bad))
    assert result.exit_code == 1
    assert "bad.csv:3: tier" in result.output and "nothing was imported" in result.output
    assert await fetchval(dsn, "SELECT count(*) FROM customers") == 2


async def test_publish_validates_every_line_then_publishes_them_keyed(hub_settings, tmp_path):
    events = [shipment_event(f"S{i}", "created", i) for i in range(3)]
    feed = tmp_path / "feed.jsonl"
    feed.write_bytes(b"\n".join(orjson.dumps(e) for e in events) + b"\n")
    result = await asyncio.to_thread(
        invoke, hub_settings, "publish", "--topic", hub_settings.topic_shipment_events, str(feed)
    )
    assert result.exit_code == 0, result.output
    records = await read_topics(hub_settings, [hub_settings.topic_shipment_events], expected=3)
    assert sorted((r.key, r.value) for r in records) == sorted(
        (e["shipment_id"].encode(), orjson.dumps(e)) for e in events
    )
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(orjson.dumps(events[0]) + b'\n{"event_id": "x", "type": "created"}\nnot json\n')
    result = await asyncio.to_thread(
        invoke, hub_settings, "publish", "--topic", hub_settings.topic_shipment_events, str(bad)
    )
    assert result.exit_code == 1
    assert "bad.jsonl:2: validation_error:" in result.output
    assert "bad.jsonl:3: invalid_json: value is not JSON" in result.output
    assert "nothing was published" in result.output


async def test_run_refuses_a_bad_rules_file_naming_the_line(hub_settings, tmp_path):
    rules = tmp_path / "rules.yaml"
    text = DEFAULT_RULES_FILE.read_text().replace("severity: P3", "severity: P7")
    rules.write_text(text)
    line = next(i for i, row in enumerate(text.splitlines(), 1) if "P7" in row)
    settings = hub_settings.model_copy(update={"rules_file": rules})
    result = await asyncio.to_thread(hub_subprocess, settings, "run")
    assert result.returncode == 1
    assert f"line {line}: rules.4.task.severity" in result.stderr, result.stderr


async def test_run_refuses_an_unmigrated_database(hub_settings):
    result = await asyncio.to_thread(hub_subprocess, hub_settings, "run")
    assert result.returncode == 1 and "run `hub migrate` first" in result.stderr, result.stderr


async def test_run_stops_on_sigterm_within_the_graceful_timeout_and_commits(hub_settings, tmp_path):
    dsn = await migrated(hub_settings)
    log = tmp_path / "hub.log"
    proc = start_hub_process(hub_settings, log)
    try:
        await publish(hub_settings, shipments=[shipment_event("S1", "created", 0)])
        await wait_for_count(dsn, "SELECT count(*) FROM inbox", 1)
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(proc.wait, hub_settings.graceful_timeout_s + 5)
        assert code == 0, log.read_text()[-2000:]
        assert time.monotonic() - started < hub_settings.graceful_timeout_s
    finally:
        if proc.poll() is None:
            proc.kill()
    assert "events in" in log.read_text() and "(1 processed, 0 duplicates" in log.read_text()  # the last summary


async def test_sigterm_during_start_up_stops_at_once(hub_settings, tmp_path):
    """A broker that accepts connections but never answers keeps start-up waiting; a stop
    request must still end the process promptly (cancelling the start)."""
    import socket

    await migrated(hub_settings)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        settings = hub_settings.model_copy(update={"kafka_bootstrap": f"127.0.0.1:{silent.getsockname()[1]}"})
        log = tmp_path / "hub.log"
        proc = start_hub_process(settings, log)
        try:
            deadline = time.monotonic() + 60  # start-up, not import time, is what this test is about
            while "hub starting" not in log.read_text() and proc.poll() is None and time.monotonic() < deadline:
                await asyncio.sleep(0.1)
            await asyncio.sleep(1)
            assert proc.poll() is None, log.read_text()
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 15)
            assert time.monotonic() - started < 10
        finally:
            if proc.poll() is None:
                proc.kill()
    assert "stop requested during start-up" in log.read_text()
