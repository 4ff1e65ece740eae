"""`python -m bench clock` (issue 18): what a tick of the clock costs on a database the size of a busy desk.

One embedded PostgreSQL 18 (default durability, track_commit_timestamp on for the drains), one
database migrated and loaded in Postgres itself (generate_series) with --shipments shipments in
flight (tracking sheets with their stale and overdue moments armed, as the batch store arms them),
--open-tasks open or in-progress tasks (and as many closed ones), their history, notifications,
published alerts and earlier firings; then VACUUM ANALYZE and one tick, the month's first (its
calendar sweep: a review task per key account), reported on its own. Every later measurement runs
on a copy of that database (CREATE DATABASE ... TEMPLATE), so each starts alike.

Ticks: `hub tick`'s code path in this process (hub.clock.lock.locked_tick on a connection opened by
hub.ops.db.database, the clock of the shipped settings and rules, now = the wall clock), timed
from outside (taking and releasing the tick lock included):

- nothing due: --idle-ticks ticks, p50 and max;
- N due (each of --due): N timers are made due just before the tick (40 % tasks at their warning
  point, 30 % tasks past due_at, 20 % shipments gone stale, 10 % promises passed: one firing
  each), then ticks run back to back until the tick says there is no more (TickReport.more); the
  first tick and the whole drain are reported, --repeat times. Every arranged timer must have
  fired exactly once (clock_firings of that tick, by timer), and a tick right after fires nothing.

Throughput: `hub run` (as shipped, --hub-workers processes, like the main benchmark's "hub"
drain) drains a preloaded workload on a fresh broker and a fresh copy of the big database, with
the clock off (HUB_SCHEDULER_INTERVAL_S=0) and on (the default interval), interleaved
--drain-repeat times. In both, --due-rate timers a second come due from the hub's start on, so
the clock's ticks during the drain fire real work (with the clock off they just stay due). The
rate comes from Postgres' commit timestamps of the inbox rows (bench/drain.py); it is compared
with the clock off and with the last committed `hub_eps` of bench/results/latest.json.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg

from bench.drain import COUNT_INBOX, SPAN_INBOX, drain_rate, drain_timeout_s
from bench.options import DEFAULT_OUT as LATEST_JSON
from bench.options import RESULTS_DIR, default_hub_workers
from bench.procstats import load_average
from bench.services import (
    Child,
    create_topics,
    fresh_broker,
    hub_settings,
    hub_tree,
    preload,
    prepare_hub_database,
    python_module,
    run_postgres,
)
from bench.workload import drain_workload
from hub.clock.engine import Clock, TickReport
from hub.clock.lock import locked_tick
from hub.config import Settings
from hub.core.rules import Rules, load_rules
from hub.ops.db import database

DEFAULT_OUT = RESULTS_DIR / "clock.json"
IDLE_TARGET_MS = 20.0
DUE_TARGET_MS = 1000.0  # for 10,000 due
THROUGHPUT_TOLERANCE = 0.10
# The share of each kind of timer made due: (timer, share); one firing per subject.
MIX = (("sla_warning", 0.4), ("sla_breach", 0.3), ("stale_shipment", 0.2), ("delivery_overdue", 0.1))

Say = Callable[[str], None]


@dataclass
class ClockOptions:
    shipments: int = 1_000_000
    open_tasks: int = 100_000
    due: tuple[int, ...] = (0, 1_000, 10_000)
    idle_ticks: int = 20
    repeat: int = 3  # measured ticks per due size above 0
    events: int = 150_000  # drained by `hub run` with the clock off and on
    drain_repeat: int = 2
    due_rate: float = 100.0  # timers coming due per second during the drains
    hub_workers: int = field(default_factory=default_hub_workers)
    seed: int = 7
    out: Path = DEFAULT_OUT
    keep: bool = False
    latest: Path = LATEST_JSON  # the last committed full benchmark run

    @property
    def customers(self) -> int:
        return max(100, self.shipments // 50)


# ------------------------------------------------------------------------------------------ the data

DEPARTMENTS = "ARRAY['claims','carrier_liaison','complaints','dispatch','key_accounts','warehouse','call_centre']"
RULES = (
    "ARRAY['damage','loss','delivery_problem','customs_hold','delay','urgent_order','complaint','claim',"
    "'repeat_contact']"
)
# Shipments in flight, in_transit the most common; each status with its stale threshold (the rules').
STATUS_MIX = (
    "created",
    "picked",
    "packed",
    "dispatched",
    "in_transit",
    "in_transit",
    "in_transit",
    "in_transit",
    "out_for_delivery",
    "delivery_failed",
    "exception",
)
WINDOW_HOURS = "(ARRAY[24, 36, 48, 72])"  # the open tasks' windows by severity: nothing due for hours

LOAD = {
    "customers": """
    INSERT INTO customers (customer_id, name, tier, language, preferred_channel, email, phone, credit_rating)
    SELECT 'BC' || n, 'Customer ' || n, CASE WHEN n % 10 = 0 THEN 'key' ELSE 'standard' END,
           CASE WHEN n % 4 = 0 THEN 'en' ELSE 'zh' END, 'sms', 'c' || n || '@example.com', '+86 138 0000 ' || n,
           (ARRAY['A','B','C','D'])[1 + n % 4]
    FROM generate_series(1, $1::int) AS n
    """,
    # Tracking sheets: last moved up to 6 h ago, so none goes stale for hours; promised in 1-5 days.
    "shipments": """
    WITH st AS (SELECT * FROM unnest($4::text[], $5::float8[]) WITH ORDINALITY AS t(status, hours, i))
    INSERT INTO shipments (shipment_id, customer_id, order_id, status, promised_delivery_at, carrier_id,
                           last_event_at, stale_at, overdue_at, notified_milestones)
    SELECT 'BS' || n, 'BC' || (1 + n % $2::int), 'BO' || n, st.status, p.promised,
           (ARRAY['SF','YTO','ZTO','JD'])[1 + n % 4], p.moved, p.moved + st.hours * interval '1 hour', p.promised,
           ARRAY['created']
    FROM generate_series(1, $1::int) AS n
    JOIN st ON st.i = 1 + n % array_length($4::text[], 1)
    CROSS JOIN LATERAL (SELECT $3::timestamptz - (n % 360) * interval '1 minute' AS moved,
                               $3::timestamptz + interval '1 day' + (n % 96) * interval '1 hour' AS promised) AS p
    """,
    # Open tasks: 85 % at level 0 inside their window, 10 % breached (level 1, level 2 hours away),
    # 5 % with the manager (level 2: no timer left); then as many closed ones.
    "coordination_tasks": """
    INSERT INTO coordination_tasks (task_id, department, kind, severity, status, shipment_id, customer_id, title,
                                    details, opened_at, due_at, warn_at, escalate_at, warned_at, breached_at,
                                    escalation_level, source_event_id, rule, alert_id, claimed_by, claimed_at,
                                    resolved_by, resolved_at, resolution, created_at, updated_at)
    SELECT md5('btask' || n)::uuid, d.department, d.rule, d.severity, d.status, 'BS' || n, 'BC' || (1 + n % $2::int),
           'Task for shipment BS' || n, '{}'::jsonb, w.opened, w.opened + w.window, w.opened + 0.75 * w.window,
           w.opened + 2 * w.window, NULL, CASE WHEN d.level > 0 THEN w.opened + w.window END, d.level,
           'BE' || n, d.rule, md5('balert' || n)::uuid,
           CASE WHEN d.status = 'in_progress' THEN 'agent' || n % 20 END,
           CASE WHEN d.status = 'in_progress' THEN $3::timestamptz END,
           CASE WHEN d.closed THEN 'agent' || n % 20 END,
           CASE WHEN d.closed THEN w.opened + interval '2 hours' END,
           CASE WHEN d.closed THEN 'handled' END, w.opened, $3::timestamptz
    FROM generate_series(1, 2 * $1::int) AS n
    CROSS JOIN LATERAL (
        SELECT n > $1::int AS closed,
               CASE WHEN n > $1::int THEN (CASE WHEN n % 11 = 0 THEN 'cancelled' ELSE 'done' END)
                    WHEN n % 3 = 0 THEN 'in_progress' ELSE 'open' END AS status,
               CASE WHEN n > $1::int THEN 0 WHEN n % 20 = 0 THEN 2 WHEN n % 10 = 5 THEN 1 ELSE 0 END AS level,
               (ARRAY['P1','P2','P3','P4'])[1 + n % 4] AS severity,
               ("""
    + DEPARTMENTS
    + """)[1 + n % 7] AS department, ("""
    + RULES
    + """)[1 + n % 9] AS rule
    ) AS d
    CROSS JOIN LATERAL (SELECT """
    + WINDOW_HOURS
    + """[1 + n % 4] * interval '1 hour' AS window) AS h
    CROSS JOIN LATERAL (
        SELECT h.window, CASE WHEN d.closed THEN $3::timestamptz - interval '30 days' + n * interval '1 second'
                              WHEN d.level = 2 THEN $3::timestamptz - 3 * h.window
                              WHEN d.level = 1 THEN $3::timestamptz - h.window - interval '2 hours'
                              ELSE $3::timestamptz - (n % 60) * interval '1 minute' END AS opened
    ) AS w
    """,
    "task_events": """
    INSERT INTO task_events (task_id, at, actor, action, detail)
    SELECT task_id, created_at, 'hub', 'created', jsonb_build_object('rule', rule, 'severity', severity)
    FROM coordination_tasks
    UNION ALL
    SELECT task_id, resolved_at, resolved_by, 'resolved', jsonb_build_object('resolution', resolution)
    FROM coordination_tasks WHERE resolved_at IS NOT NULL
    """,
    "customer_notifications": """
    INSERT INTO customer_notifications (notification_id, customer_id, shipment_id, kind, channel, language, body,
                                        status, created_at, source_event_id, next_attempt_at)
    SELECT md5('bnote' || task_id)::uuid, customer_id, shipment_id, 'exception', 'sms', 'zh',
           '您的包裹 ' || shipment_id || ' 在运输中出现异常。', 'sent', created_at, source_event_id, NULL
    FROM coordination_tasks WHERE shipment_id LIKE 'BS%'
    """,
    "outbox": """
    INSERT INTO outbox (topic, key, value, headers, message_id, created_at, sent_at)
    SELECT 'alerts.exceptions', convert_to(shipment_id, 'UTF8'),
           convert_to(json_build_object('alert_id', alert_id, 'kind', rule, 'severity', severity,
                                        'shipment_id', shipment_id, 'task_id', task_id, 'summary', title,
                                        'created_at', created_at, 'due_at', due_at)::text, 'UTF8'),
           '[]'::jsonb, alert_id::text, created_at, created_at
    FROM coordination_tasks WHERE alert_id IS NOT NULL ORDER BY created_at
    """,
    # What fired before: the breached tasks' escalations, and a stale firing for a fifth of the shipments.
    "clock_firings": """
    INSERT INTO clock_firings (timer, subject, key, due_at, fired_at)
    SELECT 'sla_breach', task_id::text, l::text, CASE WHEN l = 1 THEN due_at ELSE escalate_at END,
           CASE WHEN l = 1 THEN due_at ELSE escalate_at END
    FROM coordination_tasks CROSS JOIN generate_series(1, 2) AS l
    WHERE status IN ('open', 'in_progress') AND escalation_level >= l
    UNION ALL
    SELECT 'stale_shipment', shipment_id, (last_event_at - interval '3 days')::text,
           last_event_at - interval '1 day', last_event_at - interval '1 day'
    FROM shipments WHERE shipment_id LIKE 'BS%' AND hashtext(shipment_id) % 5 = 0
    """,
}


async def load(conn: asyncpg.Connection, options: ClockOptions, rules: Rules, at: datetime, say: Say) -> None:
    hours = {status.value: h for status, h in rules.clock.stale_after_hours.items()}
    statuses = [s for s in STATUS_MIX if s in hours]
    args: dict[str, tuple] = {
        "customers": (options.customers,),
        "shipments": (options.shipments, options.customers, at, statuses, [hours[s] for s in statuses]),
        "coordination_tasks": (options.open_tasks, options.customers, at),
        "task_events": (),
        "customer_notifications": (),
        "outbox": (),
        "clock_firings": (),
    }
    for table, sql in LOAD.items():
        began = time.monotonic()
        status = await conn.execute(sql, *args[table])
        say(f"  {table}: {int(status.split()[-1]):,} rows in {time.monotonic() - began:.1f}s")


# ------------------------------------------------------------------------------------------ arranging due timers

ARRANGE = {
    # At their warning point (window 8 h, warning at 6 h), due_at 2 h later.
    "sla_warning": """
    UPDATE coordination_tasks AS t
    SET opened_at = p.m - interval '6 hours', warn_at = p.m, due_at = p.m + interval '2 hours',
        escalate_at = p.m + interval '10 hours'
    FROM (SELECT task_id, $1::timestamptz + $2::float8 * (row_number() OVER (ORDER BY task_id) - 1)
                          / greatest($3::int, 1) * interval '1 second' AS m
          FROM (SELECT task_id FROM coordination_tasks
                WHERE status IN ('open', 'in_progress') AND escalation_level = 0 AND warned_at IS NULL
                  AND warn_at > $1::timestamptz + $2::float8 * interval '1 second'
                ORDER BY task_id LIMIT $3::int) AS pick) AS p
    WHERE t.task_id = p.task_id
    """,
    # Past due_at (window 8 h; warned at its warning point), level 2 a window away: level 1 only.
    "sla_breach": """
    UPDATE coordination_tasks AS t
    SET opened_at = p.m - interval '8 hours', warn_at = p.m - interval '2 hours', due_at = p.m,
        escalate_at = p.m + interval '8 hours', warned_at = p.m - interval '2 hours'
    FROM (SELECT task_id, $1::timestamptz + $2::float8 * (row_number() OVER (ORDER BY task_id) - 1)
                          / greatest($3::int, 1) * interval '1 second' AS m
          FROM (SELECT task_id FROM coordination_tasks
                WHERE status IN ('open', 'in_progress') AND escalation_level = 0 AND warned_at IS NULL
                  AND warn_at > $1::timestamptz + $2::float8 * interval '1 second'
                ORDER BY task_id DESC LIMIT $3::int) AS pick) AS p
    WHERE t.task_id = p.task_id
    """,
    # Not moved for its status' threshold: last_event_at set back, stale_at with it.
    "stale_shipment": """
    UPDATE shipments AS s
    SET last_event_at = p.m - st.hours * interval '1 hour', stale_at = p.m
    FROM (SELECT shipment_id, $1::timestamptz + $2::float8 * (row_number() OVER (ORDER BY shipment_id) - 1)
                              / greatest($3::int, 1) * interval '1 second' AS m
          FROM (SELECT shipment_id FROM shipments
                WHERE stale_at > $1::timestamptz + $2::float8 * interval '1 second'
                  AND overdue_at > $1::timestamptz + $2::float8 * interval '1 second' AND shipment_id LIKE 'BS%'
                ORDER BY shipment_id LIMIT $3::int) AS pick) AS p,
         unnest($4::text[], $5::float8[]) AS st(status, hours)
    WHERE s.shipment_id = p.shipment_id AND st.status = s.status
    """,
    # The promise passed.
    "delivery_overdue": """
    UPDATE shipments AS s SET promised_delivery_at = p.m, overdue_at = p.m
    FROM (SELECT shipment_id, $1::timestamptz + $2::float8 * (row_number() OVER (ORDER BY shipment_id) - 1)
                              / greatest($3::int, 1) * interval '1 second' AS m
          FROM (SELECT shipment_id FROM shipments
                WHERE stale_at > $1::timestamptz + $2::float8 * interval '1 second'
                  AND overdue_at > $1::timestamptz + $2::float8 * interval '1 second' AND shipment_id LIKE 'BS%'
                ORDER BY shipment_id DESC LIMIT $3::int) AS pick) AS p
    WHERE s.shipment_id = p.shipment_id
    """,
}


def split(n: int) -> dict[str, int]:
    counts = {timer: int(n * share) for timer, share in MIX}
    counts[MIX[0][0]] += n - sum(counts.values())
    return counts


async def arrange(conn: asyncpg.Connection, n: int, start: datetime, spread_s: float, rules: Rules) -> dict[str, int]:
    """Make `n` timers come due between `start` and `start + spread_s` (MIX); returns them by timer."""
    hours = {status.value: h for status, h in rules.clock.stale_after_hours.items()}
    made = {}
    for timer, count in split(n).items():
        extra = (list(hours), list(hours.values())) if timer == "stale_shipment" else ()
        status = await conn.execute(ARRANGE[timer], start, float(spread_s), count, *extra)
        made[timer] = int(status.split()[-1])
        if made[timer] != count:
            raise RuntimeError(f"arranged {made[timer]} of {count} {timer} timers: the database is too small")
    return made


# ------------------------------------------------------------------------------------------ ticks


@dataclass
class DueRun:
    """One measured tick with `due` timers due (and the ticks that continued it, if any)."""

    due: int
    first_ms: float
    total_ms: float
    ticks: int
    fired: int
    alerts: int
    tasks: int
    notifications: int
    exactly_once: bool  # every arranged timer fired once, and a tick right after fired nothing
    engine_ms: float  # TickReport.duration_s of the first tick (no lock taking)


def _ms(seconds: float) -> float:
    return round(seconds * 1000, 2)


async def timed_tick(conn: asyncpg.Connection, clock: Clock) -> tuple[TickReport, float]:
    """One tick as `hub tick` runs it (the tick lock, now = the wall clock); its wall time."""
    began = time.perf_counter()
    report = await locked_tick(conn, datetime.now(UTC), clock)
    return report, time.perf_counter() - began


FIRED_AT = "SELECT timer, count(*) AS n FROM clock_firings WHERE fired_at = $1 GROUP BY timer"


async def measure_due(conn: asyncpg.Connection, clock: Clock, rules: Rules, due: int) -> DueRun:
    made = await arrange(conn, due, datetime.now(UTC) - timedelta(minutes=2), 60.0, rules)
    first, first_s = await timed_tick(conn, clock)
    report, total_s, ticks, nows = first, first_s, 1, [first.now]
    while report.more:
        later, later_s = await timed_tick(conn, clock)
        report, total_s, ticks = report.then(later), total_s + later_s, ticks + 1
        nows.append(later.now)
    recorded: dict[str, int] = {}
    for now in nows:
        for row in await conn.fetch(FIRED_AT, now):
            recorded[row["timer"]] = recorded.get(row["timer"], 0) + row["n"]
    fired: dict[str, int] = {}
    for firing in report.fired:
        fired[firing.timer.value] = fired.get(firing.timer.value, 0) + 1
    after, _ = await timed_tick(conn, clock)
    once = fired == recorded == {k: v for k, v in made.items() if v} and not after.fired and not report.skipped
    return DueRun(
        due,
        _ms(first_s),
        _ms(total_s),
        ticks,
        len(report.fired),
        report.alerts,
        report.tasks,
        report.notifications,
        once,
        _ms(first.duration_s),
    )


def _spread(values: list[float]) -> dict[str, float]:
    return {"p50": round(statistics.median(values), 2), "max": round(max(values), 2), "min": round(min(values), 2)}


async def measure_ticks(dsn: str, options: ClockOptions, clock: Clock, rules: Rules, say: Say) -> list[dict]:
    rows = []
    clock = replace(clock, dsn=dsn)  # as `hub tick` runs: a second connection through a backlog
    async with database(dsn, decode_jsonb=False) as conn:  # as `hub tick` connects
        await timed_tick(conn, clock)  # warm: the connection's statement cache, Postgres's buffers
        for due in options.due:
            if due == 0:
                times, engine = [], []
                for _ in range(options.idle_ticks):
                    report, seconds = await timed_tick(conn, clock)
                    if report.fired:
                        raise RuntimeError(f"an idle tick fired {len(report.fired)} timers: the data is not idle")
                    times.append(seconds * 1000)
                    engine.append(report.duration_s * 1000)
                rows.append(
                    {
                        "due": 0,
                        "ticks_measured": len(times),
                        "first_tick_ms": _spread(times),
                        "to_drain_ms": _spread(times),
                        "engine_ms": _spread(engine),
                        "ticks_to_drain": 1,
                        "fired": 0,
                        "exactly_once": True,
                        "runs": [],
                    }
                )
                say(f"  nothing due: p50 {statistics.median(times):.1f} ms, max {max(times):.1f} ms")
                continue
            runs = [await measure_due(conn, clock, rules, due) for _ in range(options.repeat)]
            rows.append(
                {
                    "due": due,
                    "ticks_measured": len(runs),
                    "first_tick_ms": _spread([r.first_ms for r in runs]),
                    "to_drain_ms": _spread([r.total_ms for r in runs]),
                    "engine_ms": _spread([r.engine_ms for r in runs]),
                    "ticks_to_drain": max(r.ticks for r in runs),
                    "fired": min(r.fired for r in runs),
                    "exactly_once": all(r.exactly_once for r in runs),
                    "runs": [asdict(r) for r in runs],
                }
            )
            say(
                f"  {due:,} due: first tick p50 {rows[-1]['first_tick_ms']['p50']:,.0f} ms, "
                f"to drain p50 {rows[-1]['to_drain_ms']['p50']:,.0f} ms, fired {rows[-1]['fired']:,} "
                f"(each once: {rows[-1]['exactly_once']})"
            )
    return rows


# ------------------------------------------------------------------------------------------ throughput


async def _copy_database(admin_dsn: str, template: str, prefix: str) -> tuple[str, str]:
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{template}" STRATEGY FILE_COPY')
    finally:
        await conn.close()
    return name, _dsn_of(admin_dsn, name)


async def _drop_database(admin_dsn: str, name: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


def _dsn_of(admin_dsn: str, name: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    return urlunsplit(urlsplit(admin_dsn)._replace(path=f"/{name}"))


FIRED_BETWEEN = """
SELECT count(*) AS fired, count(DISTINCT fired_at) AS ticks FROM clock_firings WHERE recorded_at BETWEEN $1 AND $2
"""


async def measure_drain(
    admin_dsn: str,
    template: str,
    work_dir: Path,
    options: ClockOptions,
    rules: Rules,
    workload: list,
    clock_on: bool,
    repeat: int,
    say: Say,
) -> dict:
    phase = f"{'on' if clock_on else 'off'}_{repeat}"
    load_before = load_average()
    say(f"drain, clock {'on' if clock_on else 'off'} #{repeat + 1}: {len(workload):,} events (load {load_before})")
    name, dsn = await _copy_database(admin_dsn, template, f"bench_clock_{phase}")
    try:
        with fresh_broker(work_dir, phase) as broker:
            overrides = {} if clock_on else {"scheduler_interval_s": 0}
            settings = hub_settings(broker.bootstrap, dsn, workers=options.hub_workers, **overrides)
            await create_topics(settings)
            await preload(settings, workload)
            spread_s = 60 + len(workload) / 2_000  # from the hub's start past the end of its drain
            conn = await asyncpg.connect(dsn)
            try:
                made = await arrange(conn, round(options.due_rate * spread_s), datetime.now(UTC), spread_s, rules)
            finally:
                await conn.close()
            child = Child.spawn(
                "hub", python_module("hub", "run"), settings.child_environment(), work_dir / phase / "hub.log", work_dir
            )
            started = time.time()
            try:
                await _wait_drained(child, dsn, len(workload))
            finally:
                await child.stop()
            conn = await asyncpg.connect(dsn)
            try:
                span = await conn.fetchrow(SPAN_INBOX)
                during = await conn.fetchrow(FIRED_BETWEEN, span["first"], span["last"])
            finally:
                await conn.close()
    finally:
        await _drop_database(admin_dsn, name)
    eps = round(drain_rate(span["rows"], span["first"], span["last"], span["in_first"]), 1)
    result = {
        "clock": "on" if clock_on else "off",
        "scheduler_interval_s": settings.scheduler_interval_s,
        "events": len(workload),
        "rows": span["rows"],
        "eps": eps,
        "span_s": round((span["last"] - span["first"]).total_seconds(), 3),
        "startup_to_first_s": round(span["first"].timestamp() - started, 2),
        "timers_arranged": sum(made.values()),
        "timers_fired_in_drain": during["fired"],
        "ticks_firing_in_drain": during["ticks"],
        "workers": options.hub_workers,
        "load_before": load_before,
        "load_after": load_average(),
    }
    say(
        f"  clock {result['clock']}: {eps:,.0f} events/s over {result['span_s']:.1f}s; "
        f"{during['fired']:,} timers fired by {during['ticks']} tick(s) during the drain"
    )
    return result


async def _wait_drained(child: Child, dsn: str, events: int) -> None:
    deadline = time.monotonic() + drain_timeout_s(events)
    conn = await asyncpg.connect(dsn)
    try:
        while (stored := await conn.fetchval(COUNT_INBOX)) < events:
            child.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(f"the hub stored {stored:,} of {events:,} events; its log: {child.log_path}")
            await asyncio.sleep(0.2)
    finally:
        await conn.close()


def _last_committed_eps(path: Path) -> tuple[float | None, dict]:
    try:
        latest = json.loads(path.read_text())
    except (OSError, ValueError):
        return None, {}
    if not isinstance(latest, dict) or not latest.get("hub_eps"):
        return None, {}
    options = latest.get("options", {})
    return float(latest["hub_eps"]), {
        "file": str(path),
        "started_at": latest.get("started_at"),
        "events": options.get("events"),
        "hub_workers": latest.get("hub_workers"),
        "commit": (latest.get("hub_tree") or {}).get("commit"),
        "load_average": latest.get("load_average"),
    }


# ------------------------------------------------------------------------------------------ the run


async def run_clock_bench(options: ClockOptions, say: Say) -> dict:
    work_dir = Path(tempfile.mkdtemp(prefix="hub-bench-clock-"))
    say(f"work directory {work_dir}")
    result: dict = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {
            "shipments": options.shipments,
            "open_tasks": options.open_tasks,
            "customers": options.customers,
            "due": list(options.due),
            "idle_ticks": options.idle_ticks,
            "repeat": options.repeat,
            "events": options.events,
            "drain_repeat": options.drain_repeat,
            "due_rate": options.due_rate,
            "hub_workers": options.hub_workers,
            "seed": options.seed,
        },
        "load_average_before": load_average(),
        "cpus": os.cpu_count() or 0,
        "hub_tree": hub_tree(),
    }
    settings = Settings(_env_file=None)
    rules = load_rules(settings.rules_file)
    clock = Clock.of(settings, rules)
    failed = True
    try:
        async with run_postgres(work_dir) as pg:
            base, base_dsn = f"bench_clock_base_{uuid.uuid4().hex[:8]}", ""
            conn = await asyncpg.connect(pg.admin_dsn)
            try:
                await conn.execute(f'CREATE DATABASE "{base}"')
            finally:
                await conn.close()
            base_dsn = _dsn_of(pg.admin_dsn, base)
            try:
                result["database"] = await _build(base_dsn, options, rules, clock, say)
                say("ticks (on a copy of the database) ...")
                name, dsn = await _copy_database(pg.admin_dsn, base, "bench_clock_ticks")
                try:
                    result["ticks"] = await measure_ticks(dsn, options, clock, rules, say)
                finally:
                    await _drop_database(pg.admin_dsn, name)
                workload = drain_workload(options.seed, options.events, datetime.now(UTC).replace(microsecond=0))
                drains = []
                for repeat in range(options.drain_repeat):
                    for clock_on in (False, True):
                        drains.append(
                            await measure_drain(
                                pg.admin_dsn, base, work_dir, options, rules, workload, clock_on, repeat, say
                            )
                        )
                result["throughput"] = _throughput(drains, options)
            finally:
                await _drop_database(pg.admin_dsn, base)
        failed = False
    finally:
        if failed or options.keep:
            say(f"work directory kept: {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    result["load_average_after"] = load_average()
    result["targets"] = _targets(result)
    return result


async def _build(dsn: str, options: ClockOptions, rules: Rules, clock: Clock, say: Say) -> dict:
    began = time.monotonic()
    await prepare_hub_database(dsn, options.seed)  # migrations, and the workload's customer register
    say(f"loading {options.shipments:,} shipments in flight and {options.open_tasks:,} open tasks ...")
    async with database(dsn, decode_jsonb=False) as conn:
        await load(conn, options, rules, datetime.now(UTC), say)
        await conn.execute("VACUUM ANALYZE")
        load_s = time.monotonic() - began
        report, seconds = await timed_tick(conn, clock)  # the month's first: its calendar sweep
        say(
            f"  first tick of the month: {len(report.fired):,} timers (key-account reviews) in {seconds * 1000:,.0f} ms"
        )
        await conn.execute("VACUUM ANALYZE")
        figures = await conn.fetchrow(
            """SELECT (SELECT count(*) FROM shipments WHERE status NOT IN ('delivered', 'returned', 'cancelled'))
                          AS in_flight,
                      (SELECT count(*) FROM coordination_tasks WHERE status IN ('open', 'in_progress')) AS open_tasks,
                      (SELECT count(*) FROM coordination_tasks) AS tasks,
                      (SELECT count(*) FROM customers) AS customers,
                      (SELECT count(*) FROM clock_firings) AS firings,
                      pg_database_size(current_database()) AS bytes"""
        )
    return {
        "shipments_in_flight": figures["in_flight"],
        "open_tasks": figures["open_tasks"],
        "tasks": figures["tasks"],
        "customers": figures["customers"],
        "clock_firings": figures["firings"],
        "size_mb": round(figures["bytes"] / 2**20),
        "load_s": round(load_s, 1),
        "first_tick_of_month": {"fired": len(report.fired), "ms": _ms(seconds)},
    }


def _throughput(drains: list[dict], options: ClockOptions) -> dict:
    off = [d["eps"] for d in drains if d["clock"] == "off"]
    on = [d["eps"] for d in drains if d["clock"] == "on"]
    out: dict = {
        "clock_off_eps": round(statistics.median(off), 1),
        "clock_on_eps": round(statistics.median(on), 1),
        "on_over_off": round(statistics.median(on) / statistics.median(off), 3),
        "runs": drains,
    }
    committed, about = _last_committed_eps(options.latest)
    out["last_committed_eps"] = committed
    out["last_committed"] = about
    out["on_over_last_committed"] = round(out["clock_on_eps"] / committed, 3) if committed else None
    return out


def _targets(result: dict) -> dict:
    ticks = {row["due"]: row for row in result.get("ticks", [])}
    out: dict = {}
    if 0 in ticks:
        out["idle_p50_under_20ms"] = ticks[0]["first_tick_ms"]["p50"] < IDLE_TARGET_MS
        out["idle_max_under_20ms"] = ticks[0]["first_tick_ms"]["max"] < IDLE_TARGET_MS
    if 10_000 in ticks:
        out["due_10000_first_tick_under_1s"] = ticks[10_000]["first_tick_ms"]["max"] < DUE_TARGET_MS
        out["due_10000_drained_under_1s"] = ticks[10_000]["to_drain_ms"]["max"] < DUE_TARGET_MS
    throughput = result.get("throughput", {})
    if throughput.get("on_over_last_committed") is not None:
        out["throughput_within_10pct_of_last_committed"] = (
            throughput["on_over_last_committed"] >= 1 - THROUGHPUT_TOLERANCE
        )
    if throughput:
        out["throughput_on_within_10pct_of_off"] = throughput["on_over_off"] >= 1 - THROUGHPUT_TOLERANCE
    out["every_timer_fired_once"] = all(row["exactly_once"] for row in ticks.values())
    return out


def write(result: dict, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    return out
