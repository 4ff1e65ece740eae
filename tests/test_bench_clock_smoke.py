"""`python -m bench clock` runs end to end at tiny sizes and produces every figure.

No assertion about speed (the box may be busy): only that the ticks were measured with nothing due
and with timers due, that every arranged timer fired exactly once, that `hub run` drained the whole
workload with the clock off and on, and that the table prints. In this process (the benchmark's
own code, not its command line), with one hub worker, so it stays under a minute.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from rich.console import Console

from bench.__main__ import clock_tables
from bench.clock import ClockOptions, run_clock_bench, write

pytestmark = pytest.mark.slow


def test_clock_bench_produces_every_figure(tmp_path: Path) -> None:
    latest = tmp_path / "latest.json"
    latest.write_text(json.dumps({"hub_eps": 1000.0, "options": {"events": 50_000}, "hub_tree": {"commit": "abc"}}))
    options = ClockOptions(
        shipments=2_000,
        open_tasks=500,
        due=(0, 20, 100),
        idle_ticks=3,
        repeat=1,
        events=1_000,
        drain_repeat=1,
        due_rate=5.0,
        hub_workers=1,
        out=tmp_path / "clock.json",
        latest=latest,
    )
    result = asyncio.run(run_clock_bench(options, lambda line: None))
    written = json.loads(write(result, options.out).read_text())

    assert written["database"]["shipments_in_flight"] == 2_000
    assert written["database"]["open_tasks"] >= 500
    assert written["database"]["first_tick_of_month"]["fired"] > 0  # the key accounts' reviews
    assert [row["due"] for row in written["ticks"]] == [0, 20, 100]
    for row in written["ticks"]:
        assert row["exactly_once"], row
        assert row["fired"] == row["due"]
        for key in ("first_tick_ms", "to_drain_ms", "engine_ms"):
            assert row[key]["p50"] > 0 and row[key]["max"] >= row[key]["p50"], (key, row)
    assert written["ticks"][0]["ticks_measured"] == 3

    throughput = written["throughput"]
    assert [r["clock"] for r in throughput["runs"]] == ["off", "on"]
    for run in throughput["runs"]:
        assert run["rows"] == run["events"] == 1_000 and run["eps"] > 0, run
        assert run["timers_arranged"] > 0
    assert throughput["runs"][0]["timers_fired_in_drain"] == 0  # nobody ticks with the clock off
    assert throughput["on_over_off"] > 0
    assert throughput["last_committed_eps"] == 1000.0 and throughput["on_over_last_committed"] > 0
    assert set(written["targets"]) >= {
        "idle_max_under_20ms",
        "throughput_on_within_10pct_of_off",
        "throughput_within_10pct_of_last_committed",
        "every_timer_fired_once",
    }
    assert written["targets"]["every_timer_fired_once"]
    assert written["load_average_before"] and written["load_average_after"]

    console = Console(width=200, record=True)
    for table in clock_tables(written):
        console.print(table)
    printed = console.export_text()
    for text in ("timers due", "1st tick p50 ms", "last committed", "on"):
        assert text in printed
