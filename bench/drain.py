"""Throughput: one pipeline drains a preloaded workload on a fresh broker and a fresh database.

The rate comes from Postgres' commit timestamps of the stored rows (track_commit_timestamp, see
bench.services.run_postgres), the same way for all three pipelines and whether or not a pipeline
keeps several batches in flight: between the first commit and the last one, every event except
those of the first commit was stored, so

    events/s = (events - rows of the first commit) / (last commit - first commit)

This leaves out process start-up and the consumer-group join, reported on their own as
"start to first row" (to the first commit). The floor and the hub find the workload waiting when
they start; the naive pipeline gets it only after its three subscribers have joined (see
`_join_naive`).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from datetime import UTC, datetime

import asyncpg

from bench.baseline import CREATE_EVENTS_TABLE, PipelineConfig
from bench.procstats import CpuMeter, CpuSnapshot, load_average, tree_memory_kb
from bench.services import (
    Child,
    RunContext,
    create_topics,
    fresh_broker,
    fresh_database,
    hub_settings,
    preload,
    prepare_hub_database,
    python_env,
    python_module,
    topics_by_kind,
)
from bench.workload import Message, task_events
from hub.config import Settings

FLOOR, NAIVE, HUB = "floor", "naive", "hub"
PIPELINES = (FLOOR, NAIVE, HUB)
POLL_S = 0.2
JOIN_TIMEOUT_S = 120.0

COUNT_BENCH_EVENTS = "SELECT count(*) FROM bench_events"
FORGET_WARM_UP = "DELETE FROM bench_events"
COUNT_INBOX = "SELECT count(*) FROM inbox"
SPAN_BENCH_EVENTS = """
WITH stamped AS (SELECT pg_xact_commit_timestamp(xmin) AS committed FROM bench_events)
SELECT count(*) AS rows, min(committed) AS first, max(committed) AS last,
       count(*) FILTER (WHERE committed = (SELECT min(committed) FROM stamped)) AS in_first
FROM stamped
"""
SPAN_INBOX = """
WITH stamped AS (SELECT pg_xact_commit_timestamp(xmin) AS committed FROM inbox)
SELECT count(*) AS rows, min(committed) AS first, max(committed) AS last,
       count(*) FILTER (WHERE committed = (SELECT min(committed) FROM stamped)) AS in_first
FROM stamped
"""


@dataclass
class Watch:
    """What the poller saw while a pipeline drained."""

    first_cpu: CpuSnapshot | None = None
    last_cpu: CpuSnapshot | None = None
    rss_peak_kb: int = 0
    rows: int = 0


@dataclass
class Drained:
    """One pipeline process's drain: when it started, what was seen, how long the preload took."""

    started_wall: float
    watch: Watch
    preload_s: float
    joined_wall: float | None = None  # the naive pipeline: when all its subscribers consumed


def drain_timeout_s(events: int) -> float:
    return 90 + events / 250  # generous: the naive pipeline manages ~1,000/s on a quiet box


async def measure_drain(
    ctx: RunContext,
    pipeline: str,
    workload: list[Message],
    repeat: int,
    label: str | None = None,
    workers: int | None = None,
) -> dict:
    """`label` names a variant (e.g. the hub on task events); default: the pipeline's name.
    `workers`: the hub's processes (`hub run --workers`); default: the run's."""
    label = label or pipeline
    workers = workers or ctx.hub_workers
    phase = f"{label}_{repeat}"
    load_before = load_average()
    ctx.say(f"drain {label} #{repeat + 1}: {len(workload):,} events (load {load_before})")
    with fresh_broker(ctx.work_dir, phase) as broker:
        async with fresh_database(ctx.pg.admin_dsn, phase) as dsn:
            settings = hub_settings(broker.bootstrap, dsn, workers=workers)
            await create_topics(settings)
            await prepare_pipeline(pipeline, dsn, ctx.seed)
            drained = await _drain(ctx, pipeline, settings, dsn, workload, broker.pid, phase)
            span = await _span(dsn, pipeline)
    result = _result(label, len(workload), span, drained)
    if pipeline == HUB:
        result["workers"] = workers
    result.update(load_before=load_before, load_after=load_average())
    ctx.say(f"  {label}: {result['eps']:,.0f} events/s, start to first row {result['startup_to_first_s']:.1f}s")
    return result


async def _drain(
    ctx: RunContext, pipeline: str, settings: Settings, dsn: str, workload: list[Message], broker_pid: int, phase: str
) -> Drained:
    preload_s = await preload(settings, workload) if pipeline != NAIVE else 0.0
    child = spawn_pipeline(ctx, pipeline, settings, dsn, phase)
    joined_wall = None
    try:
        if pipeline == NAIVE:
            joined_wall = await _join_naive(child, settings, dsn, ctx.seed)
            preload_s = await preload(settings, workload)
        watch = await _watch(child, dsn, pipeline, len(workload), CpuMeter(child.pid, broker_pid, ctx.pg.pid))
    finally:
        await child.stop()
    return Drained(child.started_wall, watch, preload_s, joined_wall)


async def _join_naive(child: Child, settings: Settings, dsn: str, seed: int) -> float:
    """Wait until each of the naive pipeline's three subscribers has stored a warm-up event; forget them.

    FastStream starts its subscribers one after another and each joins its own group (about 5 s
    on Tansu), so with a backlog waiting the first topic would be drained before the last
    subscriber even starts. The workload is therefore published only once all three consume.
    Returns the wall-clock time at which all three had joined.
    """
    events = task_events(seed + 2, datetime(2026, 1, 1, tzinfo=UTC), 1.0)
    warm_up = list({m.kind: m for m in itertools.islice(events, 40)}.values())
    await preload(settings, warm_up)
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    conn = await asyncpg.connect(dsn)
    try:
        while await conn.fetchval(COUNT_BENCH_EVENTS) < len(warm_up):
            child.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the naive pipeline did not consume its warm-up events in {JOIN_TIMEOUT_S:.0f}s; "
                    f"its log {child.log_path} ends with:\n{child.log_tail()}"
                )
            await asyncio.sleep(POLL_S)
        joined = time.time()
        await conn.execute(FORGET_WARM_UP)
    finally:
        await conn.close()
    return joined


async def prepare_pipeline(pipeline: str, dsn: str, seed: int) -> None:
    if pipeline == HUB:
        await prepare_hub_database(dsn, seed)
        return
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(CREATE_EVENTS_TABLE)
    finally:
        await conn.close()


def spawn_pipeline(ctx: RunContext, pipeline: str, settings: Settings, dsn: str, phase: str) -> Child:
    log = ctx.phase_dir(phase) / f"{pipeline}.log"
    if pipeline == HUB:
        return Child.spawn(HUB, python_module("hub", "run"), settings.child_environment(), log, ctx.phase_dir(phase))
    config = PipelineConfig(
        bootstrap=settings.kafka_bootstrap,
        dsn=dsn,
        topics=topics_by_kind(settings),
        attention_topic=settings.topic_alerts_exceptions,
        group_id=f"bench-{pipeline}",
        batch_max_records=settings.batch_max_records,
    )
    return Child.spawn(
        pipeline, python_module(f"bench.{pipeline}", config.to_arg()), python_env(), log, ctx.phase_dir(phase)
    )


async def _watch(child: Child, dsn: str, pipeline: str, events: int, meter: CpuMeter) -> Watch:
    watch = Watch()
    count_sql = COUNT_INBOX if pipeline == HUB else COUNT_BENCH_EVENTS
    deadline = time.monotonic() + drain_timeout_s(events)
    conn = await asyncpg.connect(dsn)
    try:
        while watch.rows < events:
            child.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{pipeline} stored {watch.rows:,} of {events:,} events in "
                    f"{drain_timeout_s(events):.0f}s; its log {child.log_path} ends with:\n"
                    f"{child.log_tail()}"
                )
            await asyncio.sleep(POLL_S)
            watch.rows = await conn.fetchval(count_sql)
            watch.rss_peak_kb = max(watch.rss_peak_kb, tree_memory_kb(child.pid).get("VmHWM", 0))
            if watch.rows and watch.first_cpu is None:
                watch.first_cpu = meter.snapshot()
        watch.last_cpu = meter.snapshot()
    finally:
        await conn.close()
    return watch


async def _span(dsn: str, pipeline: str) -> asyncpg.Record:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchrow(SPAN_INBOX if pipeline == HUB else SPAN_BENCH_EVENTS)
    finally:
        await conn.close()


def drain_rate(events: int, first: datetime, last: datetime, in_first: int) -> float:
    """Events per second between the first and the last commit (see the module docstring)."""
    seconds = (last - first).total_seconds()
    if seconds <= 0:
        return float("nan")  # everything in one transaction: too few events to time
    return (events - in_first) / seconds


def _result(pipeline: str, events: int, span: asyncpg.Record, drained: Drained) -> dict:
    watch = drained.watch
    cpu = CpuMeter.between(watch.first_cpu, watch.last_cpu) if watch.first_cpu and watch.last_cpu else {}
    first_effect = drained.joined_wall or span["first"].timestamp()
    return {
        "pipeline": pipeline,
        "events": events,
        "rows": span["rows"],
        "eps": round(drain_rate(span["rows"], span["first"], span["last"], span["in_first"]), 1),
        "span_s": round((span["last"] - span["first"]).total_seconds(), 3),
        "rows_in_first_commit": span["in_first"],
        "startup_to_first_s": round(first_effect - drained.started_wall, 2),
        "preload_s": round(drained.preload_s, 2),
        "cpu_pct": cpu,  # pipeline, broker, postgres, box_busy: % of one core while draining
        "rss_peak_mb": round(watch.rss_peak_kb / 1024, 1),
    }
