"""One benchmark run: drains, latencies, the optional soak, in that order, on one Postgres.

Drains are interleaved round-robin (floor, naive, hub, hub on task events, floor, ...) so a noisy
neighbour or a slow minute hurts all alike rather than one pipeline's repeats.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from statistics import median

from bench.drain import FLOOR, PIPELINES, measure_drain
from bench.latency import measure_latency, measure_soak
from bench.options import Options
from bench.procstats import load_average, machine
from bench.report import summarize
from bench.services import RunContext, hub_tree, run_postgres, versions
from bench.workload import drain_workload, task_workload

# The hub also drains the latency runs' traffic (every event a task and an alert): its maximum for
# that traffic tells how close to saturation the fixed-rate and half-maximum runs are.
HUB_TASKS = "hub_tasks"
HUB_SINGLE = "hub_1"  # the hub as one process, beside `hub run --workers N`
TASK_DRAIN_EVENTS = 20_000

# Simulated time of the workload's first event: fixed, so a seed always gives the same event ids.
WORKLOAD_START = datetime(2026, 11, 27, 8, 0, tzinfo=UTC)


async def run_benchmark(options: Options, say: Callable[[str], None]) -> dict:
    began, load_start, tree = time.time(), load_average(), hub_tree()
    say(f"generating {options.events:,} events (seed {options.seed})")
    workload = drain_workload(options.seed, options.events, WORKLOAD_START)
    tasks = task_workload(options.seed, min(options.events, TASK_DRAIN_EVENTS), WORKLOAD_START)
    work_dir = Path(tempfile.mkdtemp(prefix="hub-bench-"))
    say(f"work directory (Postgres data, logs): {work_dir}")
    failed = True
    try:
        async with run_postgres(work_dir) as pg:
            ctx = RunContext(pg, work_dir, options.seed, say, options.hub_workers)
            found_versions = await versions(pg.admin_dsn)
            runs = await _measure(ctx, options, workload, tasks)
        failed = False
    finally:
        if failed or options.keep_work_dir:
            say(f"logs kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    summary = summarize(
        runs,
        options=options,
        machine=machine(),
        versions=found_versions,
        load={"start": load_start, "end": load_average()},
        started_at=began,
        wall_s=time.time() - began,
    )
    summary["hub_tree"] = tree
    return summary


async def _measure(ctx: RunContext, options: Options, workload: list, tasks: list) -> dict:
    single = (HUB_SINGLE,) if options.hub_workers > 1 else ()
    drains: dict[str, list[dict]] = {p: [] for p in (*PIPELINES, *single, HUB_TASKS)}
    for repeat in range(options.repeat):
        for pipeline in PIPELINES:
            events = workload[: options.naive_events] if pipeline == "naive" else workload
            drains[pipeline].append(await measure_drain(ctx, pipeline, events, repeat))
        if single:
            drains[HUB_SINGLE].append(await measure_drain(ctx, "hub", workload, repeat, label=HUB_SINGLE, workers=1))
        drains[HUB_TASKS].append(await measure_drain(ctx, "hub", tasks, repeat, label=HUB_TASKS))
    # Half of the hub's maximum for the traffic the latency runs offer (every event a task and an
    # alert), which is well below its maximum for the mixed workload.
    half_rate = round(options.half_max_share * median(r["eps"] for r in drains[HUB_TASKS]))
    if options.half_max_cap is not None:
        half_rate = min(half_rate, round(options.half_max_cap))
    fixed, half, floor = [], [], []
    for repeat in range(options.repeat):
        # The floor at the fixed rate: what this broker, Postgres and box allow the hub's latency.
        floor.append(await measure_latency(ctx, options.latency_rate, options.latency_seconds, "floor", repeat, FLOOR))
        fixed.append(await measure_latency(ctx, options.latency_rate, options.latency_seconds, "fixed", repeat))
        half.append(await measure_latency(ctx, half_rate, options.latency_seconds, "half_max", repeat))
    soak_rate = options.soak_rate or options.latency_rate
    soak = await measure_soak(ctx, soak_rate, options.soak_minutes) if options.soak_minutes else None
    return {"drain": drains, "latency_fixed": fixed, "latency_half_max": half, "latency_floor": floor, "soak": soak}
