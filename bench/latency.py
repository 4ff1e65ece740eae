"""Publish-to-effect latency of the hub at a fixed offered rate, and its memory over a soak.

A paced producer (bench.paced, its own process) sends task events and records each send time by
event_id. Two effects are timed against it:

- db:     the event's coordination task row, `created_at` (Postgres now(): the start of the batch
          transaction that wrote it, so a slight underestimate of when it became visible);
- commit: the commit time of that row's transaction (track_commit_timestamp): when it became visible;
- alert:  the arrival of the event's alert on its handler queue, read by a consumer in this process.

The floor (bench.floor: consume, one INSERT, re-publish the event that needs attention, commit)
is offered the same traffic in the same run: its commit and its re-published record's arrival
are the least this broker, Postgres and box allow, the baseline for the hub's figures.

Every run starts the pipeline on a fresh broker and database, waits until it has joined its group
and processed a few warm-up events, then offers the load.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition

from bench.drain import FLOOR, HUB, prepare_pipeline, spawn_pipeline
from bench.paced import PacedConfig
from bench.procstats import CpuMeter, load_average, tree_memory_kb, workers_rss_kb
from bench.services import (
    Child,
    RunContext,
    create_topics,
    free_port_range,
    fresh_broker,
    fresh_database,
    hub_settings,
    preload,
    prepare_hub_database,
    python_env,
    python_module,
    topics_by_kind,
)
from bench.stats import latency_summary, windows
from bench.workload import task_events
from hub.config import Settings

WARM_UP_EVENTS = 20
JOIN_TIMEOUT_S = 120.0
SETTLE_TIMEOUT_S = 60.0  # after the producer is done, how long the hub gets to catch up
SOAK_SAMPLE_S = 10.0
POLL_S = 0.2
READY_PROBE_TIMEOUT_S = 2.0

COUNT_INBOX = "SELECT count(*) FROM inbox"
COUNT_TASK_EVENTS = "SELECT count(DISTINCT source_event_id) FROM coordination_tasks"
TASK_TIMES = """
SELECT source_event_id, min(created_at) AS created_at, min(pg_xact_commit_timestamp(xmin)) AS committed
FROM coordination_tasks GROUP BY 1
"""


# The floor's rows: it has no transaction start to read, only the commit.
FLOOR_TIMES = """
SELECT event_id AS source_event_id, NULL::timestamptz AS created_at, pg_xact_commit_timestamp(xmin) AS committed
FROM bench_events
"""
COUNT_FLOOR_EVENTS = "SELECT count(*) FROM bench_events"


@dataclass(frozen=True)
class Probe:
    """Where a pipeline's effects are read: rows counted and timed, alerts and the event each is for."""

    count_sql: str  # events with their effect stored, warm-up included
    times_sql: str  # source_event_id, created_at (or NULL), committed
    alert_topics: Callable[[Settings], list[str]]
    event_id_of: Callable[[dict], str | None]


PROBES = {
    # The clock's alerts (escalations) come from a timer, not an event: not measured here.
    HUB: Probe(
        COUNT_TASK_EVENTS, TASK_TIMES, lambda s: list(s.alert_topics), lambda doc: doc["source"].get("event_id")
    ),
    # The floor re-publishes the event itself to the exceptions queue.
    FLOOR: Probe(COUNT_FLOOR_EVENTS, FLOOR_TIMES, lambda s: [s.topic_alerts_exceptions], lambda doc: doc["event_id"]),
}


class AlertListener:
    """Reads the alert queues from their start and notes when each event's alert arrived."""

    def __init__(self, settings: Settings, probe: Probe) -> None:
        self.settings = settings
        self.probe = probe
        self.arrivals: dict[str, float] = {}
        self._consumer: AIOKafkaConsumer | None = None
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        # Assigned partitions, no group: no join to wait for.
        self._consumer = AIOKafkaConsumer(
            bootstrap_servers=self.settings.kafka_bootstrap,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=10,
        )
        await self._consumer.start()
        partitions = []
        for topic in self.probe.alert_topics(self.settings):
            ids = await self._partitions(topic)
            partitions += [TopicPartition(topic, p) for p in ids]
        self._consumer.assign(partitions)
        self._task = asyncio.create_task(self._listen(), name="alert-listener")

    async def _partitions(self, topic: str) -> set[int]:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            await self._consumer.topics()  # refreshes the cluster metadata
            found = self._consumer.partitions_for_topic(topic)
            if found:
                return found
            await asyncio.sleep(0.2)
        raise TimeoutError(f"topic {topic} has no partitions after 30s")

    async def _listen(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=100)
            arrived = time.time()
            for records in batches.values():
                for r in records:
                    event_id = self.probe.event_id_of(orjson.loads(r.value))
                    if event_id is not None:
                        self.arrivals.setdefault(event_id, arrived)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._consumer is not None:
            await self._consumer.stop()


@asynccontextmanager
async def running_hub(ctx: RunContext, phase: str, metrics: bool = False):
    """A fresh broker and database, the hub as a subprocess, joined and warm; yields (settings, dsn, hub, broker).

    With `metrics`, each worker serves /metrics (settings.http_port + i)."""
    with fresh_broker(ctx.work_dir, phase) as broker:
        async with fresh_database(ctx.pg.admin_dsn, phase) as dsn:
            # Several workers: their health endpoints tell when each holds partitions.
            port = free_port_range(ctx.hub_workers) if ctx.hub_workers > 1 or metrics else 0
            settings = hub_settings(broker.bootstrap, dsn, workers=ctx.hub_workers, http_port=port)
            await create_topics(settings)
            await prepare_hub_database(dsn, ctx.seed)
            hub = Child.spawn(
                "hub",
                python_module("hub", "run"),
                settings.child_environment(),
                ctx.phase_dir(phase) / "hub.log",
                ctx.phase_dir(phase),
            )
            try:
                if port:
                    await _wait_until_all_ready(settings, hub)
                await _warm_up(settings, dsn, hub, ctx.seed, COUNT_INBOX)
                yield settings, dsn, hub, broker
            finally:
                await hub.stop()


@asynccontextmanager
async def running_floor(ctx: RunContext, phase: str):
    """As `running_hub`, the floor pipeline (one process) in the hub's place."""
    with fresh_broker(ctx.work_dir, phase) as broker:
        async with fresh_database(ctx.pg.admin_dsn, phase) as dsn:
            settings = hub_settings(broker.bootstrap, dsn, workers=1)
            await create_topics(settings)
            await prepare_pipeline(FLOOR, dsn, ctx.seed)
            floor = spawn_pipeline(ctx, FLOOR, settings, dsn, phase)
            try:
                await _warm_up(settings, dsn, floor, ctx.seed, COUNT_FLOOR_EVENTS)
                yield settings, dsn, floor, broker
            finally:
                await floor.stop()


async def _wait_until_all_ready(settings: Settings, hub: Child) -> None:
    """Until every worker has partitions (/health/ready), so no rebalance falls inside a measurement.

    One worker alone can be assigned every partition before the other joins; once both are ready
    the group has settled with both in it.
    """
    ports = [settings.http_port + i for i in range(settings.workers)]
    deadline = time.monotonic() + JOIN_TIMEOUT_S
    while not all([await _ready(settings.http_host, port) for port in ports]):
        hub.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(
                f"the hub's {settings.workers} workers were not all ready (partitions assigned) "
                f"within {JOIN_TIMEOUT_S:.0f}s; its log {hub.log_path} ends with:\n{hub.log_tail()}"
            )
        await asyncio.sleep(POLL_S)


async def _ready(host: str, port: int) -> bool:
    # A worker whose loop is stuck does not answer in time: not ready; the caller's deadline still holds.
    status, _body = await _http_get(host, port, "/health/ready")
    return status == 200


async def _warm_up(settings: Settings, dsn: str, child: Child, seed: int, count_sql: str) -> None:
    """Until the pipeline has processed a few events, it has not joined its group: don't time that."""
    events = task_events(seed + 1, datetime(2026, 1, 1, tzinfo=UTC), 1.0)
    await preload(settings, [next(events) for _ in range(WARM_UP_EVENTS)])
    await _wait_for(
        dsn,
        count_sql,
        WARM_UP_EVENTS,
        JOIN_TIMEOUT_S,
        child,
        f"the {child.name} to process the warm-up events",
        required=True,
    )


async def _wait_for(
    dsn: str,
    sql: str,
    expected: int,
    timeout_s: float,
    hub: Child,
    what: str,
    also=lambda: True,
    required: bool = False,
) -> bool:
    """Poll until `sql` counts `expected` and `also()` holds; False (or an error if `required`) on timeout."""
    deadline = time.monotonic() + timeout_s
    conn = await asyncpg.connect(dsn)
    try:
        while time.monotonic() < deadline:
            hub.check_alive()
            if await conn.fetchval(sql) >= expected and also():
                return True
            await asyncio.sleep(0.2)
    finally:
        await conn.close()
    if required:
        raise TimeoutError(
            f"timed out after {timeout_s:.0f}s waiting for {what}; hub log {hub.log_path}:\n{hub.log_tail()}"
        )
    return False


def _paced(ctx: RunContext, settings: Settings, rate: float, seconds: float, phase: str, out: Path | None) -> Child:
    config = PacedConfig(
        bootstrap=settings.kafka_bootstrap,
        topics=topics_by_kind(settings),
        rate=rate,
        seconds=seconds,
        seed=ctx.seed,
        start=datetime.now(UTC).isoformat(),
        out=str(out) if out else None,
    )
    return Child.spawn(
        "paced producer",
        python_module("bench.paced", config.to_arg()),
        python_env(),
        ctx.phase_dir(phase) / "producer.log",
        ctx.phase_dir(phase),
    )


def _producer_summary(producer: Child) -> dict:
    if producer.proc.returncode != 0:
        raise RuntimeError(
            f"the paced producer failed (exit {producer.proc.returncode}); {producer.log_path}:\n{producer.log_tail()}"
        )
    lines = [line for line in producer.log_path.read_text().splitlines() if line.startswith("{")]
    return json.loads(lines[-1])


async def measure_latency(
    ctx: RunContext, rate: float, seconds: float, label: str, repeat: int, pipeline: str = HUB
) -> dict:
    """`pipeline`: the hub, or the floor as its baseline (same traffic, broker, Postgres and box)."""
    phase = f"latency_{label}_{repeat}"
    ctx.say(f"latency {label} #{repeat + 1}: {rate:,.0f} events/s for {seconds:g}s (load {load_average()})")
    load_before = load_average()
    running = running_floor if pipeline == FLOOR else running_hub
    async with running(ctx, phase) as (settings, dsn, child, broker):
        listener = AlertListener(settings, PROBES[pipeline])
        await listener.start()
        try:
            result = await _offer(ctx, settings, dsn, child, broker.pid, listener, rate, seconds, phase)
        finally:
            await listener.stop()
    result.update(pipeline=pipeline, load_before=load_before, load_after=load_average())
    db = result["db"]
    ctx.say(
        f"  {pipeline}: "
        + (f"db p50/p95/p99 {db['p50_ms']:.0f}/{db['p95_ms']:.0f}/{db['p99_ms']:.0f} ms, " if db["count"] else "")
        + f"commit p99 {result['commit']['p99_ms']:.0f} ms, alert p99 {result['alert']['p99_ms']:.0f} ms, "
        f"broker {result['cpu_pct'].get('broker', 0):.0f}%"
    )
    return result


async def _offer(
    ctx: RunContext,
    settings: Settings,
    dsn: str,
    child: Child,
    broker_pid: int,
    listener: AlertListener,
    rate: float,
    seconds: float,
    phase: str,
) -> dict:
    sent_file = ctx.phase_dir(phase) / "sent.tsv"
    meter = CpuMeter(child.pid, broker_pid, ctx.pg.pid)
    first = meter.snapshot()
    producer = _paced(ctx, settings, rate, seconds, phase, sent_file)
    rss_peak = 0
    deadline = time.monotonic() + seconds + 120
    while producer.proc.poll() is None and time.monotonic() < deadline:
        child.check_alive()
        rss_peak = max(rss_peak, tree_memory_kb(child.pid).get("VmHWM", 0))
        await asyncio.sleep(0.5)
    await producer.stop(grace_s=5)
    last = meter.snapshot()
    summary = _producer_summary(producer)
    sent = _read_sent(sent_file)
    complete = await _wait_for(
        dsn,
        listener.probe.count_sql,
        len(sent) + WARM_UP_EVENTS,
        SETTLE_TIMEOUT_S,
        child,
        "every event's task and alert",
        also=lambda: sent.keys() <= listener.arrivals.keys(),
    )
    rss_peak = max(rss_peak, tree_memory_kb(child.pid).get("VmHWM", 0))
    created, committed = await _task_times(dsn, listener.probe.times_sql)
    db = [(t, (created[e] - t) * 1000) for e, t in sent.items() if e in created]
    commit = [(t, (committed[e] - t) * 1000) for e, t in sent.items() if e in committed]
    alert = [(t, (listener.arrivals[e] - t) * 1000) for e, t in sent.items() if e in listener.arrivals]
    # The outbox relay's share: from the commit that wrote the alert's row to its arrival on the queue.
    relay = [(listener.arrivals[e] - committed[e]) * 1000 for e in sent if e in listener.arrivals and e in committed]
    return {
        "offered_rate": rate,
        "seconds": seconds,
        "sent": len(sent),
        "producer": summary,
        "complete": complete,
        "db": latency_summary([lat for _, lat in db]),
        "commit": latency_summary([lat for _, lat in commit]),
        "alert": latency_summary([lat for _, lat in alert]),
        "alert_after_commit": latency_summary(relay),
        "missing_tasks": len(sent) - len(commit),  # the floor has no created_at: count commits
        "missing_alerts": len(sent) - len(alert),
        "db_p99_by_fifth_ms": windows(db),
        "alert_p99_by_fifth_ms": windows(alert),
        "cpu_pct": CpuMeter.between(first, last),  # pipeline = the hub
        "rss_peak_mb": round(rss_peak / 1024, 1),
    }


def _read_sent(path: Path) -> dict[str, float]:
    sent = {}
    with open(path) as f:
        for line in f:
            event_id, at = line.rstrip("\n").split("\t")
            sent[event_id] = float(at)
    return sent


async def _task_times(dsn: str, sql: str) -> tuple[dict[str, float], dict[str, float]]:
    """By source event id: its first task's created_at (if known), and that transaction's commit time."""
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(sql)
    finally:
        await conn.close()
    return (
        {r["source_event_id"]: r["created_at"].timestamp() for r in rows if r["created_at"] is not None},
        {r["source_event_id"]: r["committed"].timestamp() for r in rows},
    )


# ------------------------------------------------------------------------------------------- soak


async def measure_soak(ctx: RunContext, rate: float, minutes: float) -> dict:
    """Steady offered load; the hub's RSS every SOAK_SAMPLE_S seconds: does it grow?"""
    seconds = minutes * 60
    ctx.say(f"soak: {rate:,.0f} events/s for {minutes:g} min, RSS every {SOAK_SAMPLE_S:g}s (load {load_average()})")
    async with running_hub(ctx, "soak", metrics=True) as (settings, dsn, hub, _broker):
        producer = _paced(ctx, settings, rate, seconds, "soak", None)
        samples = await _sample_rss(settings, hub, producer, dsn, seconds)
        await producer.stop(grace_s=5)
        summary = _producer_summary(producer)
    return soak_summary(samples, rate, minutes, summary)


async def _sample_rss(settings: Settings, hub: Child, producer: Child, dsn: str, seconds: float) -> list[dict]:
    """RSS, events processed, and the batches so far (records, count): what a worker holds in flight
    grows with its batch size, so RSS is read beside it."""
    samples = []
    began = time.monotonic()
    conn = await asyncpg.connect(dsn)
    try:
        while producer.proc.poll() is None and time.monotonic() - began < seconds + 120:
            hub.check_alive()
            memory = tree_memory_kb(hub.pid)
            samples.append(
                {
                    "t_s": round(time.monotonic() - began, 1),
                    "rss_mb": round(memory["VmRSS"] / 1024, 1),
                    "hwm_mb": round(memory["VmHWM"] / 1024, 1),
                    "processed": await conn.fetchval(COUNT_INBOX),
                    "workers_rss_mb": [round(kb / 1024, 1) for kb in workers_rss_kb(hub.pid)],
                    **await _batches_so_far(settings),
                }
            )
            await asyncio.sleep(SOAK_SAMPLE_S)
    finally:
        await conn.close()
    return samples


async def _batches_so_far(settings: Settings) -> dict[str, float]:
    """Records and batches the hub's workers have stored so far, from their hub_batch_size histograms
    ({} if one of them does not answer: that sample then has no batch counts)."""
    totals = {"batch_records": 0.0, "batches": 0.0}
    for i in range(settings.workers):
        status, text = await _http_get(settings.http_host, settings.http_port + i, "/metrics")
        if status != 200:
            return {}
        for line in text.splitlines():
            name, _, value = line.partition(" ")
            if name == "hub_batch_size_sum":
                totals["batch_records"] += float(value)
            elif name == "hub_batch_size_count":
                totals["batches"] += float(value)
    return totals


async def _http_get(host: str, port: int, path: str) -> tuple[int, str]:
    """(status, body); (0, "") when nothing answers within READY_PROBE_TIMEOUT_S."""
    try:
        return await asyncio.wait_for(_exchange(host, port, path), READY_PROBE_TIMEOUT_S)
    except (TimeoutError, OSError):
        return 0, ""


async def _exchange(host: str, port: int, path: str) -> tuple[int, str]:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(f"GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n".encode())
        await writer.drain()
        head, _, body = (await reader.read()).partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].split()[1:2]
        return (int(status[0]) if status and status[0].isdigit() else 0), body.decode(errors="replace")
    finally:
        writer.close()


def _mean_batch(samples: list[dict], since_s: float, until_s: float) -> float | None:
    """Mean records per batch stored between two sample times (None without batches)."""
    inside = [s for s in samples if since_s <= s["t_s"] <= until_s and "batches" in s]
    if len(inside) < 2 or inside[-1]["batches"] <= inside[0]["batches"]:
        return None
    return round(
        (inside[-1]["batch_records"] - inside[0]["batch_records"]) / (inside[-1]["batches"] - inside[0]["batches"]), 1
    )


def soak_summary(samples: list[dict], rate: float, minutes: float, producer: dict) -> dict:
    """Minute 1 against the last minute (the largest RSS sampled in each), and whether the hub kept up.

    A hub that falls behind buffers more, so RSS growth means a leak only while it keeps up.
    """
    if not samples:
        raise RuntimeError("the soak took no RSS samples: did the producer exit at once?")
    end = samples[-1]["t_s"]
    processed_eps = samples[-1]["processed"] / end if end else 0.0
    first_minute = max(s["rss_mb"] for s in samples if s["t_s"] < 60)
    last_minute = max(s["rss_mb"] for s in samples if s["t_s"] >= end - 60)
    growth = {
        "offered_rate": rate,
        "minutes": minutes,
        "producer": producer,
        "samples": samples,
        "rss_minute1_mb": first_minute,
        "rss_last_minute_mb": last_minute,
        "rss_growth_ratio": round(last_minute / first_minute, 3),
        # What a worker holds in flight grows with its batches: their size beside the RSS.
        "batch_mean_minute1": _mean_batch(samples, 0, 60),
        "batch_mean_last_minute": _mean_batch(samples, end - 60, end),
    }
    # With several workers the total includes an idle supervisor, which dilutes the ratio: the
    # worker that grew most is reported on its own.
    workers = len(samples[0].get("workers_rss_mb", []))
    if workers and all(len(s["workers_rss_mb"]) == workers for s in samples):
        growth["worker_rss_growth_ratio"] = max(
            round(
                max(s["workers_rss_mb"][i] for s in samples if s["t_s"] >= end - 60)
                / max(s["workers_rss_mb"][i] for s in samples if s["t_s"] < 60),
                3,
            )
            for i in range(workers)
        )
    return {
        **growth,
        "rss_peak_mb": max(s["hwm_mb"] for s in samples),
        "processed_eps": round(processed_eps, 1),
        "kept_up": processed_eps >= 0.95 * rate,
    }
