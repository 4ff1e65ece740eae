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

# The clock must show all its timers within this short run, and it does for these reasons:
# - breaches: nobody works the demo's tasks, and at 36000x (10 simulated hours a wall second) the
#   15 s run covers about six simulated days, while the longest window of an event's task is a day
#   (P3: 24 h); every such task raised before the run's last two days breaches, level 1 at due_at and
#   level 2 a window later;
# - warnings: one fires only when a tick lands in the last quarter of a window, before due_at; ticks
#   are 10 simulated hours apart, but the key-account reviews the first tick raises (a fresh database:
#   one per key account, 35 with seed 7) are due in 7 days, so their 42 h warning span contains a tick;
# - stale shipments: the stale thresholds are 12 to 48 h without an event, which ordinary lives never
#   reach; lost shipments (no event after the loss) and long delays do, 48 h after their last event.
#   The exception rate of 0.5 gives the run about ten of them (6 to 12 over the starts sampled
#   offline; the traffic depends on its start, the wall clock's now, as well as on the seed).
DURATION_S, RATE, SPEED, EXCEPTION_RATE = 15, 200, 36000, 0.5


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
            "--speed",
            str(SPEED),
            "--exception-rate",
            str(EXCEPTION_RATE),
            "--json",
            str(summary),
        ],
        env=env,
        cwd=home,
        capture_output=True,
        text=True,
        timeout=180,
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
        "the clock: timers fired",
    ):
        assert title in out
    # Which clock each time is on: progress lines carry the simulated time beside the wall seconds,
    # and the summary says how fast simulated time ran and what is on it.
    assert re.search(r"^\s+\d+s  simulated \w{3} \d\d:\d\d  sent", out, re.MULTILINE), out
    assert f"simulated time ran {SPEED}x the wall clock" in out
    assert "created_at of the clock's alerts" in out


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
    # Alerts read back from the topics = the hub's own counters, plus the clock's (told apart by their source).
    assert s["alerts"] == _added(checks["hub_alerts"], checks["clock_alerts"])
    assert sum(n for by_severity in checks["hub_alerts"].values() for n in by_severity.values()) > 0
    assert checks["topic_alert_copies"] >= sum(n for by_sev in s["alerts"].values() for n in by_sev.values())
    clock = s["clock"]
    # The dispatcher adds tasks of its own: call-backs for phone notices, follow-ups of failed notices.
    assert sum(s["tasks_by_department"].values()) == checks["hub_tasks"] + clock["tasks"] + checks["dispatch_tasks"]
    assert checks["hub_tasks"] > 0
    assert sum(s["notifications_by_kind"].values()) == checks["hub_notifications"] + clock["notifications"] > 0
    assert s["dead_letters"] == checks["postgres_dead_letters"] == checks["topic_dead_letters"]
    assert checks["outbox_unsent"] == 0


def test_the_clock_fired_its_timers_on_simulated_time(demo_run) -> None:
    _, s, _ = demo_run
    clock, checks = s["clock"], s["checks"]
    fired = clock["fired"]
    assert clock["speed"] == SPEED and clock["ticks"] > DURATION_S / 2
    assert fired["sla_warnings"] > 0
    assert fired["sla_breaches"]["1"] > 0 and fired["sla_breaches"]["2"] > 0
    assert fired["stale_shipments"] > 0
    assert fired["delivery_overdue"] > 0
    assert fired["key_account_reviews"] > 0  # the first tick of a month, in a fresh database
    # The engine's reports = the rows of clock_firings = the clock's alerts on the topics.
    assert fired == checks["postgres_clock_firings"]
    # Reviews, surveys and statements raise no alert. A notice the dispatcher gave up on raises a
    # notification_failed alert (timer-sourced, like the clock's).
    failed = {"notification_failed": checks["failed_notices"]} if checks["failed_notices"] else {}
    assert checks["topic_clock_alerts"] == {**fired, "key_account_reviews": 0, "other": failed}
    timer_alerts = sum(n for by_severity in checks["clock_alerts"].values() for n in by_severity.values())
    assert clock["alerts"] + checks["failed_notices"] == timer_alerts
    assert set(checks["clock_alerts"]) == {"alerts.escalations", "alerts.exceptions"}


def _added(a: dict[str, dict[str, int]], b: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for counts in (a, b):
        for topic, by_severity in counts.items():
            for severity, n in by_severity.items():
                out.setdefault(topic, {})[severity] = out.get(topic, {}).get(severity, 0) + n
    return out


def test_nothing_the_demo_started_is_left_running(demo_run) -> None:
    result, _, home = demo_run
    port = re.search(r"HUB_KAFKA_BOOTSTRAP=127\.0\.0\.1:(\d+)", result.stdout)
    assert port, result.stdout
    for pattern in (f"tcp://127.0.0.1:{port[1]}", str(home / "hub-data")):
        found = subprocess.run(["pgrep", "-af", pattern], capture_output=True, text=True)
        leftovers = [line for line in found.stdout.splitlines() if "pgrep" not in line]
        assert leftovers == [], leftovers
