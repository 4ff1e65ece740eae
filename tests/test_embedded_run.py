"""`hub run` with no servers configured brings its own, and takes them down with it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

import psutil


def _servers(output: str, data_dir) -> list[psutil.Process]:
    """The embedded Postgres (by its data dir) and Tansu (by the address `hub run` printed)."""
    broker = re.search(r"\(Tansu\): (\S+)", output)
    marks = [str(data_dir)] + ([f"tcp://{broker.group(1)}"] if broker else [])
    found = []
    for proc in psutil.process_iter(["cmdline"]):
        cmdline = " ".join(proc.info["cmdline"] or [])
        if ("tansu" in cmdline or "postgres" in cmdline) and any(mark in cmdline for mark in marks):
            found.append(proc)
    return found


def _start_embedded_hub(tmp_path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_DATA_DIR=str(tmp_path / "hub-data"),
        HUB_EMBEDDED_KAFKA_PORT="0",
        HUB_EMBEDDED_POSTGRES_PORT="0",
        HUB_HTTP_PORT="0",
        HUB_CONSUMER_GROUP="embedded-test",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "hub", "run"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )


def _wait_for_line(proc: subprocess.Popen, text: str, timeout: float = 90) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"no {text!r} within {timeout}s:\n{''.join(lines)}")


def test_sigkilled_hub_run_leaves_no_broker_or_postgres_behind(tmp_path):
    proc = _start_embedded_hub(tmp_path)
    try:
        output = "".join(_wait_for_line(proc, "hub running"))
        assert "embedded Postgres 18" in output and "Tansu" in output
        assert "in memory only" in output, "the user is told the embedded broker keeps nothing"
        assert "export HUB_KAFKA_BOOTSTRAP=" in output
        servers = _servers(output, tmp_path)
        assert {"tansu" in " ".join(p.cmdline()) for p in servers} == {True, False}, "expected Tansu and Postgres"
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        _gone, alive = psutil.wait_procs(servers, timeout=15)
        assert not alive, f"orphaned embedded servers: {[p.cmdline() for p in alive]}"
    finally:
        if proc.poll() is None:
            proc.kill()


def test_sigterm_stops_hub_run_and_everything_it_started(tmp_path):
    proc = _start_embedded_hub(tmp_path)
    try:
        servers = _servers("".join(_wait_for_line(proc, "hub running")), tmp_path)
        assert len(servers) >= 2
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        _gone, alive = psutil.wait_procs(servers, timeout=5)
        assert not alive
    finally:
        if proc.poll() is None:
            proc.kill()


def test_child_environment_sets_only_hub_variables(hub_settings):
    env = hub_settings.child_environment()
    assert env["HUB_KAFKA_BOOTSTRAP"] == hub_settings.kafka_bootstrap
