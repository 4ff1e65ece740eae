"""Quieter, more useful logs (issue 22, point 8): at INFO one summary line every 10 s in which something
happened, partitions counted per topic instead of listed, and `hub run` against a configured
deployment says what to run next (without an `export` line: the settings are the operator's own).
"""

from __future__ import annotations

import asyncio
import logging
import signal
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import pytest
from aiokafka import TopicPartition

from hub.clock.engine import TickReport
from hub.commands.demo import next_steps
from hub.core.outcome import BatchOutcome
from hub.dispatch.dispatcher import RoundReport
from hub.inbound import AssignmentLog, partition_counts
from hub.logs import faststream_logger
from hub.observability import Activity, ActivityLog, summary_line
from tests.support import migrated, publish, shipment_event, wait_for_count


def _outcome(records: int = 10, dead: int = 1) -> BatchOutcome:
    return BatchOutcome(
        records=records,
        processed=records - dead - 1,
        duplicates=1,
        tasks=2,
        notifications=3,
        dead_lettered=Counter({"invalid_json": dead}),
        alerts=Counter({("exceptions", "P2"): 2}),
    )


def test_the_summary_line_counts_events_alerts_tasks_dead_letters_and_lag_per_topic():
    a = Activity()
    a.add_batch(_outcome())
    a.add_batch(_outcome())
    a.add_tick(TickReport(now=datetime.now(UTC), alerts=1, tasks=1))
    a.add_round(RoundReport(sent=Counter({"sms": 4}), failed=Counter({"email": 1})))
    line = summary_line(a, 10.0, {"shipment.events": 120, "call.logs": 0})
    assert line == (
        "20 events in 10s (16 processed, 2 duplicates, 2 dead-lettered); 5 alerts; 5 tasks; 6 notifications; "
        "dispatch: 4 sent, 1 failed; dead letters: 2 invalid_json; lag 120 (shipment.events 120)"
    )
    assert len(line) < 300


def test_partitions_are_counted_per_topic_and_faststreams_list_is_dropped(caplog: pytest.LogCaptureFixture):
    assigned = {TopicPartition(t, p) for t in ("shipment.events", "call.logs", "carrier.updates") for p in range(6)}
    assert partition_counts(assigned) == "18: call.logs 6, carrier.updates 6, shipment.events 6"
    with caplog.at_level(logging.INFO):
        asyncio.run(AssignmentLog().on_partitions_assigned(assigned))
        faststream_logger().info(f"Consumer m-1 assigned to partitions: ({', '.join(map(str, assigned))})")
    messages = [r.getMessage() for r in caplog.records]
    assert messages == ["partitions assigned: 18: call.logs 6, carrier.updates 6, shipment.events 6"]


async def test_the_activity_log_says_nothing_when_nothing_happened(caplog: pytest.LogCaptureFixture):
    activity = ActivityLog(every_s=3600)
    await activity.start(None)
    with caplog.at_level(logging.INFO, logger="hub.summary"):
        await activity.flush()
        assert not caplog.records
        activity.on_batch(_outcome(5, 0), 0.01)
        await activity.flush()
        await activity.flush()
    await activity.stop()
    assert [r.getMessage().split(" in ")[0] for r in caplog.records] == ["5 events"]
    assert caplog.records[0].summary["events"] == 5  # the same figures, as fields for JSON logs


def test_after_the_demo_the_next_commands_name_what_it_left():
    steps = [c for c, _ in next_steps({"shipment": "SF1", "customer": "C00042", "dead_letter": "d-1"})]
    assert steps == [
        "tasks list --breached",
        "tasks list --department claims",
        "shipment SF1",
        "customers show C00042",
        "notifications list --status failed",
        "dlq show d-1",
    ]
    assert [c for c, _ in next_steps({})][-1] == "dlq list"


async def test_hub_run_logs_a_summary_not_batches_and_says_what_to_run_next(hub_settings, tmp_path: Path):
    dsn = await migrated(hub_settings)
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    proc = _start(out, err, {**hub_settings.child_environment(), "COLUMNS": "200"})
    try:
        for _ in range(300):
            if "partitions assigned" in err.read_text():
                break
            assert proc.poll() is None, err.read_text()[-2000:]
            await asyncio.sleep(0.2)
        await publish(hub_settings, shipments=[shipment_event(f"S{i}", "created", i) for i in range(3)])
        await wait_for_count(dsn, "SELECT count(*) FROM inbox", 3)
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.to_thread(proc.wait, 30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    log, printed = err.read_text(), out.read_text()
    assert "hub.summary: 3 events in" in log and "3 processed" in log, log
    partitions = hub_settings.topic_partitions
    assert f"partitions assigned: {3 * partitions}: " in log
    assert "assigned to partitions" not in log and "batch: " not in log
    assert max(len(line) for line in log.splitlines()) < 400
    assert "export HUB_" not in printed
    for command in ("alerts watch", "tasks list --overdue", "dlq list", "purge --dry-run"):
        assert f" {command}" in printed, printed
    assert "kubectl exec deploy/hub -- hub COMMAND" in printed


def _start(out: Path, err: Path, env: dict[str, str]) -> subprocess.Popen:
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        return subprocess.Popen([sys.executable, "-m", "hub", "run"], env=env, stdout=stdout, stderr=stderr)
