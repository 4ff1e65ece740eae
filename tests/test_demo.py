"""`hub demo`, end to end as a user runs it: its own broker and Postgres, traffic, a summary, a clean stop.

The demo's Postgres and broker are gone when it exits, so the demo itself counts everything a
second time from Postgres and from the topics just before shutdown (`checks` in its JSON);
this test holds those independent counts against the summary and against the traffic sent.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

DURATION_S, RATE = 8, 100


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, dict, Path]:
    home = tmp_path_factory.mktemp("demo")
    summary = home / "summary.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(HUB_DATA_DIR=str(home / "hub-data"), HUB_EMBEDDED_KAFKA_PORT="0", HUB_EMBEDDED_POSTGRES_PORT="0")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hub",
            "demo",
            "--duration",
            str(DURATION_S),
            "--rate",
            str(RATE),
            "--json",
            str(summary),
        ],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=120,
    )
    doc = orjson.loads(summary.read_bytes()) if summary.exists() else {}
    return result, doc, home


def test_demo_exits_cleanly_and_prints_the_summary(demo_run) -> None:
    result, _, _ = demo_run
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    # One line, whatever the terminal width: pasted, it must export both variables.
    export = re.search(r"export HUB_KAFKA_BOOTSTRAP=127\.0\.0\.1:\d+ HUB_DATABASE_URL=postgresql://\S+/hub .*\n", out)
    assert export and "HUB_KAFKA_IDEMPOTENCE=false" in export.group(), out
    assert "hub alerts watch" in out and "hub tasks list" in out
    assert out.index("hub alerts watch") < out.index("what the hub did")  # told early, not at the end
    for title in (
        "events in, per stream",
        "alerts per queue and severity",
        "tasks per department",
        "customer notifications per kind",
        "dead letters per reason",
        "events/s",
    ):
        assert title in out


def test_the_hub_handled_every_message_sent(demo_run) -> None:
    _, s, _ = demo_run
    assert s["drained"] is True
    assert sum(s["sent"].values()) == DURATION_S * RATE == s["records_consumed"]
    for topic, sent in s["sent"].items():
        assert s["processed"][topic] + s["duplicates"][topic] + s["dead_lettered"][topic] == sent, topic
    assert sum(s["duplicates"].values()) == s["sent_special"].get("duplicate", 0)
    assert sum(s["dead_letters"].values()) == s["sent_special"].get("malformed", 0) > 0
    assert s["events_per_second"] > 0


def test_summary_agrees_with_postgres_and_the_topics(demo_run) -> None:
    _, s, _ = demo_run
    checks = s["checks"]
    assert checks["topic_records"] == s["sent"]  # what reached the inbound topics is what the simulator sent
    assert checks["postgres_events"] == s["processed"]  # one history row per event the hub counted
    assert s["alerts"] == checks["hub_alerts"]  # alerts read back from the topics = the hub's own counters
    assert sum(n for by_severity in s["alerts"].values() for n in by_severity.values()) > 0
    assert checks["topic_alert_copies"] >= sum(n for by_sev in s["alerts"].values() for n in by_sev.values())
    assert sum(s["tasks_by_department"].values()) == checks["hub_tasks"] > 0
    assert sum(s["notifications_by_kind"].values()) == checks["hub_notifications"] > 0
    assert s["dead_letters"] == checks["postgres_dead_letters"] == checks["topic_dead_letters"]
    assert checks["outbox_unsent"] == 0


def test_nothing_the_demo_started_is_left_running(demo_run) -> None:
    result, _, home = demo_run
    port = re.search(r"HUB_KAFKA_BOOTSTRAP=127\.0\.0\.1:(\d+)", result.stdout)
    assert port, result.stdout
    for pattern in (f"tcp://127.0.0.1:{port[1]}", str(home / "hub-data")):
        found = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
        leftovers = [line for line in found.stdout.splitlines() if "pgrep" not in line]
        assert leftovers == [], leftovers
