"""`python -m bench latency`: only the latency runs, at rates given on the command line.

A full run takes ~18 minutes, most of it drains; a change that touches only the way from the
stored row to the handler queue (the outbox relay) is checked faster by offering the same rates
the last full run offered (2,000/s and its half maximum) back to back, before and after. Each
rate is offered to the floor too (bench.floor, the same traffic on a fresh broker and database):
the hub's latency compares with it. The result goes to its own file: `latest.json` holds full
runs only.
"""

from __future__ import annotations

import math
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path

from bench.drain import FLOOR
from bench.latency import measure_latency
from bench.options import Options
from bench.procstats import load_average, machine
from bench.services import RunContext, run_postgres, versions
from bench.stats import spread


async def run_latency_only(options: Options, rates: list[float], say: Callable[[str], None]) -> dict:
    began, load_start = time.time(), load_average()
    work_dir = Path(tempfile.mkdtemp(prefix="hub-bench-latency-"))
    say(f"work directory (Postgres data, logs): {work_dir}")
    runs: dict[float, list[dict]] = {rate: [] for rate in rates}
    floors: dict[float, list[dict]] = {rate: [] for rate in rates}  # the floor's runs: the baseline
    failed = True
    try:
        async with run_postgres(work_dir) as pg:
            ctx = RunContext(pg, work_dir, options.seed, say, options.hub_workers)
            found_versions = await versions(pg.admin_dsn)
            for repeat in range(options.repeat):
                for i, rate in enumerate(rates):
                    seconds = options.latency_seconds
                    floors[rate].append(await measure_latency(ctx, rate, seconds, f"floor_r{i}", repeat, FLOOR))
                    runs[rate].append(await measure_latency(ctx, rate, seconds, f"r{i}", repeat))
        failed = False
    finally:
        if failed or options.keep_work_dir:
            say(f"logs kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    return {
        "created_at": datetime.now().strftime("%Y%m%d-%H%M%S"),
        "hub_workers": options.hub_workers,
        "seconds": options.latency_seconds,
        "repeat": options.repeat,
        "load_average": {"start": load_start, "end": load_average()},
        "wall_s": round(time.time() - began, 1),
        "machine": machine(),
        "versions": found_versions,
        "summary": [_summary(rate, rs, floors[rate]) for rate, rs in runs.items()],
        "runs": {str(rate): rs for rate, rs in runs.items()},
        "floor_runs": {str(rate): rs for rate, rs in floors.items()},
    }


def _summary(rate: float, runs: list[dict], floor: Sequence[dict] = ()) -> dict:
    """Medians of the repeats, as the full run reports them, and the floor's beside them."""
    row = {"rate": rate, "runs": len(runs)}
    for effect, label in (("db", "db"), ("commit", "commit"), ("alert", "alert")):
        for q in ("p50", "p95", "p99"):
            row[f"{label}_{q}_ms"] = spread([r[effect][f"{q}_ms"] for r in runs])["median"]
    for q in ("p50", "p99"):
        row[f"alert_after_commit_{q}_ms"] = spread(
            [r["alert_after_commit"][f"{q}_ms"] for r in runs if "alert_after_commit" in r]
        )["median"]
    row["alert_over_task_p99"] = round(row["alert_p99_ms"] / row["db_p99_ms"], 2) if row["db_p99_ms"] else None
    for effect in ("commit", "alert"):
        for q in ("p50", "p99"):
            row[f"floor_{effect}_{q}_ms"] = spread([r[effect][f"{q}_ms"] for r in floor])["median"]
    floor_p99 = row["floor_alert_p99_ms"]
    row["alert_p99_over_floor"] = None if math.isnan(floor_p99) else round(row["alert_p99_ms"] / floor_p99, 2)
    row["box_busy_pct"] = spread([r["cpu_pct"].get("box_busy", 0) for r in runs])["median"]
    row["broker_cpu_pct"] = spread([r["cpu_pct"].get("broker", 0) for r in runs])["median"]
    row["hub_cpu_pct"] = spread([r["cpu_pct"].get("pipeline", 0) for r in runs])["median"]
    row["load_before"] = [r.get("load_before") for r in runs]
    return row
