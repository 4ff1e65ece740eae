"""What a newcomer does after `hub run` on the embedded default: paste the printed `export` line
into a second terminal and run the printed commands. Each must work exactly as printed.

Also: a broker that refuses the idempotent producer gets an error that names the step and the
setting to change, not "cannot reach Kafka or Postgres".
"""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest

from tests.support import shipment_event

ROOT = Path(__file__).resolve().parents[1]


def _first_terminal(tmp_path: Path) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_DATA_DIR=str(tmp_path / "hub-data"),
        HUB_EMBEDDED_KAFKA_PORT="0",
        HUB_EMBEDDED_POSTGRES_PORT="0",
        HUB_HTTP_PORT="0",
        HUB_TOPIC_PARTITIONS="2",
        COLUMNS="400",
    )
    return subprocess.Popen(
        [sys.executable, "-m", "hub", "run"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def _read_until(proc: subprocess.Popen[str], text: str, timeout: float = 120) -> list[str]:
    lines, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline() if proc.stdout else ""
        if not line:
            break
        lines.append(line)
        if text in line:
            return lines
    raise AssertionError(f"no {text!r} within {timeout}s:\n{''.join(lines)}")


def _printed_instructions(lines: list[str]) -> tuple[dict[str, str], str]:
    """The environment of the printed `export` line, and the printed way to call `hub`."""
    export = next(line.strip() for line in lines if line.strip().startswith("export HUB_"))
    env = dict(pair.split("=", 1) for pair in shlex.split(export.removeprefix("export ")))
    command = next(re.match(r"\s*(\S+) alerts watch", line) for line in lines if " alerts watch" in line)
    assert command is not None
    return env, command.group(1)


def _second_terminal(env: dict[str, str], hub: str, *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    base["PATH"] = "/usr/bin:/bin"  # a fresh terminal: the venv is not on the PATH
    return subprocess.run(
        [*shlex.split(hub), *args], cwd=ROOT, env={**base, **env}, capture_output=True, text=True, timeout=180
    )


def _ok(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    return result.stdout


def test_the_printed_second_terminal_commands_work_as_printed(tmp_path: Path):
    hub_run = _first_terminal(tmp_path)
    try:
        lines = _read_until(hub_run, "hub running")
        env, hub = _printed_instructions(lines)
        assert env["HUB_KAFKA_IDEMPOTENCE"] == "false", "the embedded broker needs it; the line must carry it"
        assert "HUB_KAFKA_BOOTSTRAP" in env and "HUB_DATABASE_URL" in env and env["HUB_TOPIC_PARTITIONS"] == "2"
        assert hub.endswith("hub") and Path(ROOT / hub).exists(), hub

        _ok(_second_terminal(env, hub, "simulate", "--rate", "300", "--duration", "2", "--seed", "5"))
        feed = tmp_path / "feed.jsonl"
        feed.write_bytes(orjson.dumps(shipment_event("S-2ND", "created", 0)) + b"\n")
        assert "published 1 event" in _ok(
            _second_terminal(env, hub, "publish", "--topic", "shipment.events", str(feed))
        )
        letters: list[dict[str, object]] = []
        deadline = time.monotonic() + 60
        while not letters and time.monotonic() < deadline:  # the simulator sends ~1% malformed messages
            letters = json.loads(_ok(_second_terminal(env, hub, "dlq", "list", "--json")))
            time.sleep(1)
        assert letters, "the simulated traffic should have produced a dead letter"
        assert "replayed dead letter" in _ok(_second_terminal(env, hub, "dlq", "replay", str(letters[0]["id"])))
        _ok(_second_terminal(env, hub, "tasks", "list"))
    finally:
        hub_run.send_signal(signal.SIGTERM)
        try:
            hub_run.wait(60)
        except subprocess.TimeoutExpired:
            hub_run.kill()


@pytest.mark.usefixtures("database_url")
def test_a_broker_refusing_the_idempotent_producer_is_named_with_the_fix(hub_settings, kafka_is_embedded):
    if not kafka_is_embedded:
        pytest.skip("needs a broker without the idempotent producer (the embedded test broker)")
    settings = hub_settings.model_copy(update={"kafka_idempotence": True})
    subprocess.run(
        [sys.executable, "-m", "hub", "migrate"],
        env=settings.child_environment(),
        check=True,
        capture_output=True,
        timeout=60,
    )
    result = subprocess.run(
        [sys.executable, "-m", "hub", "run"],
        env=settings.child_environment(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1, result.stdout + result.stderr
    assert "refused the idempotent producer" in result.stderr and "HUB_KAFKA_IDEMPOTENCE=false" in result.stderr
    assert "cannot reach Kafka or Postgres" not in result.stderr and "Traceback" not in result.stderr
