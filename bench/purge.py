"""`python -m bench purge`: the hub's throughput while a purge of 1,000,000 rows runs, and without one.

Two phases, each on a fresh database and a fresh broker holding the same preloaded workload; each
database first gets the same `--rows` rows past retention, spread like a real backlog of them
(40% inbox ids, 20% published outbox rows, 5% dead letters, 25% shipment history, 10% calls),
then VACUUM ANALYZE, so both phases start alike:

  baseline  `hub run` (the shipped settings, its own purge off) drains the workload
  purge     the same, while the purge that `hub run` schedules (hub.ops.lifecycle.purge, the same
            code, in this process, batches of --batch rows) deletes all those rows; it starts
            when the hub's first batch commits

The hub's rate comes from Postgres' commit timestamps of the inbox rows it wrote (as in the drain
benchmark): over the whole drain, and over the purge's window alone (in the baseline: the same
stretch of the drain). The longest pause between two of the hub's commits in that window shows
whether the purge ever held it up.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from itertools import pairwise
from pathlib import Path

import asyncpg

from bench.drain import drain_timeout_s
from bench.options import RESULTS_DIR
from bench.procstats import load_average
from bench.services import (
    Child,
    create_topics,
    fresh_broker,
    fresh_database,
    hub_settings,
    preload,
    prepare_hub_database,
    python_module,
    run_postgres,
)
from bench.workload import drain_workload
from hub.ops.lifecycle import PurgeReport, Retention, purge_locked

RETENTION = Retention(inbox_days=30, outbox_days=7, dead_letters_days=90, events_days=365)
SHARES = {"inbox": 0.40, "outbox": 0.20, "dead_letters": 0.05, "shipment_events": 0.25, "call_logs": 0.10}
PAYLOAD = '{"source": "wms-sh-01", "type": "in_transit", "location": {"code": "SHA-WH-03", "city": "Shanghai"}, ' + (
    '"attributes": {"note": "' + "x" * 300 + '"}}'
)
SEED_SQL = {
    "inbox": """
        INSERT INTO inbox (event_id, topic, payload_hash, partition, "offset", processed_at)
        SELECT 'old-' || i, 'shipment.events', sha256(i::text::bytea), i % 6, i,
               now() - interval '400 days' + i * interval '1 ms'
        FROM generate_series(1, $1) i""",
    "outbox": """
        INSERT INTO outbox (topic, key, value, message_id, created_at, sent_at)
        SELECT 'alerts.exceptions', 'S1', convert_to($2, 'UTF8'), 'old-' || i,
               now() - interval '400 days' + i * interval '1 ms', now() - interval '400 days' + i * interval '1 ms'
        FROM generate_series(1, $1) i""",
    "dead_letters": """
        INSERT INTO dead_letters (id, source_topic, source_partition, source_offset, value_hash, reason, error_class,
                                  message, value, created_at)
        SELECT gen_random_uuid(), 'call.logs', i % 6, i, sha256(i::text::bytea), 'invalid_json', 'JSONDecodeError',
               'value is not JSON', convert_to($2, 'UTF8'), now() - interval '400 days' + i * interval '1 ms'
        FROM generate_series(1, $1) i""",
    "shipment_events": """
        INSERT INTO shipment_events (event_id, shipment_id, topic, status, occurred_at, payload, recorded_at)
        SELECT 'old-' || i, 'OLD' || (i / 8), 'shipment.events', 'in_transit',
               now() - interval '400 days' + i * interval '1 ms', $2::jsonb, now() - interval '400 days'
        FROM generate_series(1, $1) i""",
    "call_logs": """
        INSERT INTO call_logs (event_id, call_id, customer_id, direction, channel, category, occurred_at, payload)
        SELECT 'old-' || i, 'K' || i, 'C00001', 'inbound', 'phone', 'query',
               now() - interval '400 days' + i * interval '1 ms', $2::jsonb
        FROM generate_series(1, $1) i""",
}
NEW_INBOX = "SELECT count(*) FROM inbox WHERE processed_at > now() - interval '1 day'"
COMMITS = """
SELECT pg_xact_commit_timestamp(xmin) AS at, count(*) AS n
FROM inbox WHERE processed_at > now() - interval '1 day' GROUP BY 1 ORDER BY 1
"""


async def run_purge_bench(
    rows: int, events: int, batch: int, seed: int, keep: bool, say: Callable[[str], None]
) -> dict:
    work_dir = Path(tempfile.mkdtemp(prefix="hub-bench-purge-"))
    say(f"work directory (Postgres data, logs): {work_dir}")
    workload = drain_workload(seed, events, datetime.now(UTC).replace(microsecond=0))
    result: dict = {"created_at": datetime.now(UTC).isoformat(timespec="seconds"), "rows": rows, "events": events}
    result["batch"] = batch
    failed = True
    try:
        async with run_postgres(work_dir) as pg:
            baseline = await _phase(pg.admin_dsn, work_dir, "baseline", rows, workload, batch, False, say)
            during = await _phase(pg.admin_dsn, work_dir, "purge", rows, workload, batch, True, say)
        failed = False
    finally:
        if failed or keep:
            say(f"logs kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    window = (during["purge"]["started_after_s"], during["purge"]["started_after_s"] + during["purge"]["seconds"])
    result["baseline"] = {**baseline["hub"], **_in_window(baseline["commits"], *window)}
    result["during_purge"] = {**during["hub"], **_in_window(during["commits"], *window)}
    result["purge"] = during["purge"]
    result["load"] = load_average()  # 1, 5 and 15 minutes: the figures mean little on a busy machine
    return result


async def _phase(
    admin_dsn: str,
    work_dir: Path,
    phase: str,
    rows: int,
    workload: list,
    batch: int,
    purging: bool,
    say: Callable[[str], None],
) -> dict:
    with fresh_broker(work_dir, phase) as broker:
        async with fresh_database(admin_dsn, f"purge_{phase}") as dsn:
            settings = hub_settings(broker.bootstrap, dsn, purge_interval_s=0, scheduler_interval_s=0)
            await create_topics(settings)
            await prepare_hub_database(dsn, seed=7)
            began = time.perf_counter()
            await _seed(dsn, rows)
            say(f"{phase}: {rows:,} rows past retention written in {time.perf_counter() - began:.0f}s")
            await preload(settings, workload)
            log = work_dir / phase / "hub.log"
            child = Child.spawn("hub", python_module("hub", "run"), settings.child_environment(), log, work_dir)
            try:
                report, purge_started = await _drain(child, dsn, len(workload), batch, purging)
            finally:
                await child.stop()
            conn = await asyncpg.connect(dsn)
            try:
                commits = [(r["at"], r["n"]) for r in await conn.fetch(COMMITS)]
            finally:
                await conn.close()
    first, last = commits[0][0], commits[-1][0]
    hub = {
        "eps": round((sum(n for _, n in commits) - commits[0][1]) / (last - first).total_seconds(), 1),
        "drain_s": round((last - first).total_seconds(), 1),
    }
    say(f"{phase}: the hub drained {len(workload):,} events at {hub['eps']:,.0f} events/s")
    out: dict = {"hub": hub, "commits": [((at - first).total_seconds(), n) for at, n in commits]}
    if report is not None and purge_started is not None:
        out["purge"] = {
            "deleted": report.deleted,
            "total": report.total,
            "batches": report.batches,
            "seconds": round(report.duration_s, 1),
            "rows_per_s": round(report.total / report.duration_s),
            "started_after_s": round((purge_started - first).total_seconds(), 1),
            "complete": report.complete,
        }
        say(
            f"{phase}: purged {report.total:,} rows in {report.duration_s:.1f}s "
            f"({report.total / report.duration_s:,.0f} rows/s, {report.batches:,} batches)"
        )
    return out


async def _seed(dsn: str, rows: int) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for table, share in SHARES.items():
            sql = SEED_SQL[table]
            n = round(rows * share)
            await (conn.execute(sql, n) if "$2" not in sql else conn.execute(sql, n, PAYLOAD))
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def _drain(
    child: Child, dsn: str, events: int, batch: int, purging: bool
) -> tuple[PurgeReport | None, datetime | None]:
    """Wait until the hub stored every event; with `purging`, purge from its first commit on."""
    deadline = time.monotonic() + drain_timeout_s(events)
    conn = await asyncpg.connect(dsn)
    purger: asyncpg.Connection | None = None
    task: asyncio.Task | None = None
    started = None
    try:
        while (stored := await conn.fetchval(NEW_INBOX)) < events:
            child.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the hub stored {stored:,} of {events:,} events; its log: {child.log_path}")
            if purging and stored and task is None:
                purger = await asyncpg.connect(dsn)
                started = await conn.fetchval("SELECT clock_timestamp()")
                task = asyncio.create_task(purge_locked(purger, RETENTION, batch))
            await asyncio.sleep(0.1)
        report = await task if task is not None else None
        if task is not None and report is not None and report.duration_s and not report.complete:
            raise RuntimeError("the purge stopped early (rows kept locked?)")
        return report, started
    finally:
        await conn.close()
        if purger is not None:
            await purger.close()


def _in_window(commits: list[tuple[float, int]], start: float, end: float) -> dict:
    """The hub's rate, and its longest pause between commits, within [start, end] seconds of the drain."""
    inside = [(t, n) for t, n in commits if start <= t <= end]
    if len(inside) < 2:
        return {"window_eps": None, "window_longest_gap_ms": None}
    gaps = [b[0] - a[0] for a, b in pairwise(inside)]
    return {
        "window_s": round(inside[-1][0] - inside[0][0], 1),  # less than the purge's if the drain ended first
        "window_eps": round(sum(n for _, n in inside[1:]) / (inside[-1][0] - inside[0][0]), 1),
        "window_longest_gap_ms": round(max(gaps) * 1000),
    }


def write(result: dict) -> Path:
    path = RESULTS_DIR / "purge.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    return path


def lines(result: dict) -> list[str]:
    b, d, p = result["baseline"], result["during_purge"], result["purge"]
    return [
        f"purge: {p['total']:,} rows in {p['seconds']}s ({p['rows_per_s']:,} rows/s, {p['batches']:,} batches of "
        f"{result['batch']:,}), from {p['started_after_s']}s into the drain",
        f"hub, whole drain of {result['events']:,} events: {b['eps']:,.0f} events/s without a purge, "
        f"{d['eps']:,.0f} with one ({d['eps'] / b['eps'] - 1:+.0%})",
        f"hub, during {d.get('window_s')}s of the purge's {p['seconds']}s (raise --events if the drain ended first): "
        f"{b['window_eps']:,.0f} events/s in the same stretch "
        f"without a purge, {d['window_eps']:,.0f} with it; longest pause between commits "
        f"{b['window_longest_gap_ms']} ms without, {d['window_longest_gap_ms']} ms with",
    ]
