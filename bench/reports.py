"""`python -m bench reports` (issue 20): the reports over a month of 1,000,000 shipments.

One month (by default the previous calendar month in HUB_TIMEZONE) is generated in Postgres itself
(generate_series, as bench/console.py does): --shipments shipments over --customers customers, each
with its events in both streams (created, dispatched, in transit, out for delivery, delivered, a
carrier's copy of delivered for a third, exceptions with and without a code for 4 %), tasks for 12 %
of them plus a repeat contact on 2 % (complaints, claims, delays, ...; most resolved, some late, some
breached and escalated, some still open), inbound queries and complaints about 15 % (a third of those
followed by another within 7 days), survey answers about 10 %, delivery notices (sent or failed) for
30 % and stale-shipment firings for 1 %. The non-key indexes are dropped while loading and built
again after it (the same definitions the migrations made); then VACUUM ANALYZE.

Measured, on the embedded PostgreSQL started for the run:

- a baseline: one sequential scan counting the shipment events (index scans turned off), so every
  figure is also given as a multiple of it;
- each report through the code `hub report` runs (hub.reports.figures, then hub.reports.render):
  complaints and kpi for the whole month, statement for one customer (stored, as the command
  does), --repeat times each, as JSON and rendered (CSV, HTML; PDF for the statement);
- every customer's statement through the clock's monthly_statement sweep
  (hub.clock.engine._monthly_statements, STATEMENTS_PER_TICK a tick, each stored as JSON with its
  notice), total and per statement;
- PDF rendering of --pdf-sample stored statements through the dispatcher's renderer
  (hub.dispatch.attachments.Renderer) with HUB_REPORT_PROCESSES 1 and 2, extrapolated to every
  customer. The hub builds statements as JSON on the first tick of the month and renders a PDF only
  when the e-mail carrying it is sent, so the PDF rate is not part of the monthly sweep.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg

from bench.options import RESULTS_DIR
from bench.procstats import load_average
from hub.clock.engine import STATEMENTS_PER_TICK, Clock, TickReport, _monthly_statements, store_report
from hub.core.rules import load_rules
from hub.core.topics import Destinations, Queue
from hub.dev.databases import scratch_database
from hub.dev.embedded import start_postgres
from hub.dispatch.attachments import Renderer
from hub.migrate import apply_migrations
from hub.reports import figures
from hub.reports.models import AnyReport, Period

DEFAULT_OUT = RESULTS_DIR / "reports.json"
TARGET_REPORT_S = 10.0  # issue 20: each report under 10 s
TARGET_STATEMENTS_S = 600.0  # issue 20: the statements of 10,000 customers in under 10 minutes
LOADED_TABLES = ("shipments", "shipment_events", "coordination_tasks", "call_logs", "customer_notifications")

Say = Callable[[str], None]


@dataclass
class ReportsOptions:
    shipments: int = 1_000_000
    customers: int = 10_000
    repeat: int = 5
    pdf_sample: int = 100
    month: str | None = None  # YYYY-MM; default the previous month in `timezone`
    timezone: str = "Asia/Shanghai"
    out: Path = DEFAULT_OUT
    keep: bool = False


@dataclass
class Timing:
    name: str  # e.g. "kpi html"
    runs: int
    p50_s: float
    max_s: float
    ratio_to_scan: float  # p50 / the baseline scan's p50
    target_s: float | None = None

    @property
    def met(self) -> bool | None:
        return None if self.target_s is None else self.max_s < self.target_s


@dataclass
class Sweep:
    statements: int
    ticks: int
    total_s: float
    per_statement_ms: float
    tick_p50_s: float
    tick_max_s: float
    stored_json: int  # statements found in `reports` afterwards
    notices: int  # monthly_statement notices written
    target_s: float
    extrapolated_10000_s: float

    @property
    def met(self) -> bool:
        return self.extrapolated_10000_s < self.target_s


@dataclass
class PdfRate:
    processes: int
    sample: int
    seconds: float
    per_pdf_s: float  # wall time per PDF at this many processes
    pdfs_per_s: float
    extrapolated_s: float  # for every customer's statement
    bytes_p50: int


@dataclass
class ReportsSummary:
    created_at: str
    month: str
    timezone: str
    shipments: int
    customers: int
    rows: dict[str, int]
    load_s: float
    baseline: Timing
    reports: list[Timing] = field(default_factory=list)
    sweep: Sweep | None = None
    pdf: list[PdfRate] = field(default_factory=list)
    load_average_before: str = ""
    load_average_after: str = ""
    cpus: int = 0
    notes: list[str] = field(default_factory=list)


# ------------------------------------------------------------------------------------------ the data

# $1 shipments, $2 customers, $3 the period's start, $4 seconds in the period. Shipment n (1..$1) is
# created at $3 + (n - 1) x $4 / $1: evenly over the month, in id order, as they would arrive.
CREATED = "($3::timestamptz + (n - 1) * ($4::float8 / $1::int) * interval '1 second')"
SHIPMENT_ID = "('S' || lpad(n::text, 8, '0'))"
CUSTOMER_ID = "('C' || lpad((1 + (n * 7) % $2::int)::text, 6, '0'))"  # 7 and 10,000 coprime: all customers
CARRIERS = "(ARRAY['SF','YTO','ZTO','JD','EMS'])"
CODES = "(ARRAY['damaged','lost','delayed','address_issue','refused','customs_hold','weather'])"
# Delivered 36 to 82 h after creation; promised 72 h after it for 4 in 5 shipments: about a fifth late.
DELIVERED_AFTER = "((36 + n % 47) * interval '1 hour')"

LOAD: list[tuple[str, str]] = [
    (
        "customers",
        """
        INSERT INTO customers (customer_id, name, tier, language, preferred_channel, email, phone, credit_rating)
        SELECT 'C' || lpad(c::text, 6, '0'),
               CASE WHEN c % 4 = 0 THEN 'Customer ' || c || ' Ltd' ELSE '客户 ' || c || ' 有限公司' END,
               CASE WHEN c % 20 = 0 THEN 'key' ELSE 'standard' END, CASE WHEN c % 4 = 0 THEN 'en' ELSE 'zh' END,
               (ARRAY['sms','email','wechat','sms'])[1 + c % 4], 'c' || c || '@example.com',
               '+86 138 ' || lpad(c::text, 8, '0'), (ARRAY['A','B','C','D'])[1 + c % 4]
        FROM generate_series(1, $2::int) AS c
        WHERE $1::int > 0
        """,
    ),
    (
        "shipments",
        f"""
        INSERT INTO shipments (shipment_id, customer_id, order_id, status, promised_delivery_at, carrier_id, priority,
                               last_event_at)
        SELECT {SHIPMENT_ID}, {CUSTOMER_ID}, 'O' || n,
               CASE WHEN n % 250 = 0 THEN 'exception' ELSE 'delivered' END,
               CASE WHEN n % 5 <> 0 THEN {CREATED} + interval '72 hours' END,
               {CARRIERS}[1 + n % 5], CASE WHEN n % 50 = 0 THEN 'urgent' ELSE 'normal' END,
               {CREATED} + {DELIVERED_AFTER}
        FROM generate_series(1, $1::int) AS n
        """,
    ),
    (
        "shipment_events",
        f"""
        INSERT INTO shipment_events (event_id, shipment_id, topic, status, occurred_at, payload, recorded_at)
        SELECT 'E' || n || '-' || step.i, {SHIPMENT_ID}, step.topic, step.status, {CREATED} + step.after,
               jsonb_build_object('event_id', 'E' || n || '-' || step.i, 'shipment_id', {SHIPMENT_ID},
                                  'source', CASE WHEN step.topic = 'shipment.events' THEN 'wms-sh-01'
                                                 ELSE lower({CARRIERS}[1 + n % 5]) END,
                                  'location', jsonb_build_object('code', 'SHA-WH-0' || n % 9, 'city', '上海'))
               || step.extra,
               {CREATED} + step.after + interval '2 seconds'
        FROM generate_series(1, $1::int) AS n
        CROSS JOIN LATERAL (VALUES
            (1, 'shipment.events', 'created', interval '0 hours', '{{}}'::jsonb, true),
            (2, 'shipment.events', 'dispatched', interval '6 hours', '{{}}'::jsonb, true),
            (3, 'carrier.updates', 'in_transit', interval '12 hours', '{{}}'::jsonb, true),
            (4, 'shipment.events', 'exception', interval '30 hours',
                jsonb_build_object('exception', jsonb_build_object('code', {CODES}[1 + (n / 25) % 7])), n % 50 = 0),
            (5, 'carrier.updates', 'exception', interval '31 hours',
                CASE WHEN n % 3 = 0 THEN '{{}}'::jsonb
                     ELSE jsonb_build_object('exception_code', {CODES}[1 + (n / 50) % 7]) END, n % 50 = 25),
            (6, 'carrier.updates', 'out_for_delivery', {DELIVERED_AFTER} - interval '5 hours', '{{}}'::jsonb,
                n % 250 <> 0),
            (7, 'carrier.updates', 'delivered', {DELIVERED_AFTER}, '{{}}'::jsonb, n % 250 <> 0),
            (8, 'shipment.events', 'delivered', {DELIVERED_AFTER} + interval '1 hour', '{{}}'::jsonb,
                n % 250 <> 0 AND n % 3 = 0)
        ) AS step(i, topic, status, after, extra, wanted)
        WHERE step.wanted AND $2::int > 0
        """,
    ),
    (
        "coordination_tasks",
        # 12 % of the shipments have a task of one of 12 kinds; 2 % also a repeat contact a day later.
        f"""
        INSERT INTO coordination_tasks (task_id, department, kind, severity, status, shipment_id, customer_id, title,
                                        details, opened_at, due_at, warn_at, escalate_at, breached_at,
                                        escalation_level, source_event_id, rule, alert_id, claimed_by, claimed_at,
                                        resolved_by, resolved_at, resolution, created_at, updated_at)
        SELECT md5('task' || n || '-' || t.second)::uuid, t.department, t.kind, t.severity, t.status, {SHIPMENT_ID},
               {CUSTOMER_ID}, t.kind || ' ' || {SHIPMENT_ID}, '{{}}'::jsonb, t.opened_at, t.due_at,
               t.opened_at + 0.75 * t.window_, t.due_at + t.window_,
               CASE WHEN coalesce(t.resolved_at, $5::timestamptz) > t.due_at THEN t.due_at END,
               CASE WHEN coalesce(t.resolved_at, $5::timestamptz) > t.due_at + t.window_ THEN 2
                    WHEN coalesce(t.resolved_at, $5::timestamptz) > t.due_at THEN 1 ELSE 0 END,
               CASE WHEN t.second THEN 'K' || n || '-2' ELSE 'E' || n || '-3' END, t.kind,
               md5('alert' || n || '-' || t.second)::uuid,
               CASE WHEN t.status <> 'open' THEN 'agent' || n % 40 END,
               CASE WHEN t.status <> 'open' THEN t.opened_at + interval '20 minutes' END,
               CASE WHEN t.status = 'done' THEN 'agent' || n % 40 END, t.resolved_at,
               CASE WHEN t.status = 'done' THEN 'resolved' WHEN t.status = 'cancelled' THEN 'duplicate' END,
               t.opened_at, coalesce(t.resolved_at, t.opened_at)
        FROM generate_series(1, $1::int) AS n
        CROSS JOIN LATERAL (VALUES (false, n % 100 < 12), (true, n % 50 = 7)) AS pick(second, wanted)
        CROSS JOIN LATERAL (
            SELECT pick.second,
                   CASE WHEN pick.second THEN 'repeat_contact' ELSE k.kind END AS kind,
                   CASE WHEN pick.second THEN 'complaints'
                        WHEN k.kind = 'low_satisfaction' AND n % 2 = 0 THEN 'key_accounts' ELSE k.department END
                       AS department,
                   sev.severity, sev.window_, opened.at AS opened_at, opened.at + sev.window_ AS due_at,
                   CASE WHEN st.r < 80 THEN 'done' WHEN st.r < 84 THEN 'cancelled' WHEN st.r < 92 THEN 'open'
                        ELSE 'in_progress' END AS status,
                   CASE WHEN st.r < 80 THEN opened.at + (1 + (n * 7) % 96) * interval '1 hour' END AS resolved_at
            FROM (SELECT ((n * 13) % 100) AS r) AS st,
                 (SELECT {CREATED} + interval '30 hours' + (n % 17) * interval '1 hour'
                         + CASE WHEN pick.second THEN interval '1 day' ELSE interval '0' END AS at) AS opened,
                 (SELECT (ARRAY['P1','P2','P3','P4'])[1 + n % 4] AS severity,
                         (ARRAY[2, 8, 24, 72])[1 + n % 4] * interval '1 hour' AS window_) AS sev,
                 (SELECT (ARRAY['delay','delay','damage','loss','claim','complaint','complaint',
                                'repeat_contact','low_satisfaction','delivery_problem','customs_hold',
                                'urgent_order'])[1 + (n / 100) % 12] AS kind,
                         (ARRAY['carrier_liaison','carrier_liaison','claims','claims','claims','complaints',
                                'complaints','complaints','complaints','dispatch','carrier_liaison','warehouse'])
                             [1 + (n / 100) % 12] AS department) AS k
        ) AS t
        WHERE pick.wanted
        """,
    ),
    (
        "call_logs",
        # Inbound queries and complaints about 15 % (a third followed by another within 7 days), an
        # outbound call about 1 %, survey answers about 10 % (scores 5,5,5,4,4,4,3,2,1,5).
        f"""
        INSERT INTO call_logs (event_id, call_id, customer_id, shipment_id, direction, channel, category, occurred_at,
                               payload, satisfaction_score)
        SELECT 'K' || n || '-' || c.i, 'K' || n || '-' || c.i, {CUSTOMER_ID}, {SHIPMENT_ID}, c.direction,
               (ARRAY['phone','phone','wechat','email'])[1 + n % 4], c.category, {CREATED} + c.after,
               jsonb_build_object('notes', '客户来电询问包裹 ' || {SHIPMENT_ID}, 'agent', 'agent' || n % 40), c.score
        FROM generate_series(1, $1::int) AS n
        CROSS JOIN LATERAL (VALUES
            (1, 'inbound', CASE WHEN n % 3 = 0 THEN 'complaint' ELSE 'query' END,
                interval '40 hours' + (n % 30) * interval '1 hour', NULL::smallint, n % 100 < 15),
            (2, 'inbound', 'query', interval '90 hours' + (n % 30) * interval '1 hour', NULL::smallint,
                n % 100 < 5),
            (3, 'outbound', 'query', interval '50 hours', NULL::smallint, n % 100 = 15),
            (4, 'inbound', 'survey', interval '100 hours',
                (ARRAY[5,5,5,4,4,4,3,2,1,5])[1 + (n / 100) % 10]::smallint, n % 100 BETWEEN 20 AND 29)
        ) AS c(i, direction, category, after, score, wanted)
        WHERE c.wanted AND $2::int > 0
        """,
    ),
    (
        "customer_notifications",
        # A delivered notice for 30 % of the shipments; 1 in 50 given up on.
        f"""
        INSERT INTO customer_notifications (notification_id, customer_id, shipment_id, kind, channel, language, body,
                                            status, created_at, source_event_id, next_attempt_at, attempts, sent_at,
                                            failed_at)
        SELECT md5('notice' || n)::uuid, {CUSTOMER_ID}, {SHIPMENT_ID}, 'delivered',
               (ARRAY['sms','email','wechat'])[1 + n % 3], 'zh', '您的包裹 ' || {SHIPMENT_ID} || ' 已送达。',
               CASE WHEN n % 50 = 0 THEN 'failed' ELSE 'sent' END, {CREATED} + {DELIVERED_AFTER}, 'E' || n || '-7',
               NULL, CASE WHEN n % 50 = 0 THEN 5 ELSE 1 END,
               CASE WHEN n % 50 <> 0 THEN {CREATED} + {DELIVERED_AFTER} + interval '1 minute' END,
               CASE WHEN n % 50 = 0 THEN {CREATED} + {DELIVERED_AFTER} + interval '2 hours' END
        FROM generate_series(1, $1::int) AS n
        WHERE n % 10 < 3 AND $2::int > 0
        """,
    ),
    (
        "clock_firings",
        f"""
        INSERT INTO clock_firings (timer, subject, key, due_at, fired_at)
        SELECT 'stale_shipment', {SHIPMENT_ID}, to_char({CREATED} + interval '12 hours', 'YYYY-MM-DD"T"HH24:MI:SS'),
               {CREATED} + interval '60 hours', {CREATED} + interval '60 hours'
        FROM generate_series(1, $1::int) AS n
        WHERE n % 100 = 77 AND $2::int > 0
        """,
    ),
]

INDEXES = """
SELECT i.indexrelid::regclass::text AS name, pg_get_indexdef(i.indexrelid) AS definition
FROM pg_index AS i
WHERE i.indrelid = ANY($1::regclass[])
  AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conindid = i.indexrelid)
ORDER BY 1
"""


async def load(conn: asyncpg.Connection, options: ReportsOptions, p: Period, as_of: datetime, say: Say) -> dict:
    """Generate the month; the tables' own indexes (not their keys) are built after the rows."""
    span = (p.end - p.start).total_seconds()
    await conn.execute("SET maintenance_work_mem = '512MB'")
    await conn.execute("SET synchronous_commit = off")
    indexes = await conn.fetch(INDEXES, list(LOADED_TABLES))
    for row in indexes:
        await conn.execute(f"DROP INDEX {row['name']}")
    rows: dict[str, int] = {}
    for table, sql in LOAD:
        began = time.monotonic()
        args: list = [options.shipments, options.customers]
        if "$3" in sql:
            args += [p.start, span]
        if "$5" in sql:
            args.append(as_of)
        status = await conn.execute(sql, *args)
        rows[table] = int(status.split()[-1])
        say(f"  {table}: {rows[table]:,} rows in {time.monotonic() - began:.1f}s")
    began = time.monotonic()
    for row in indexes:
        await conn.execute(row["definition"])
    say(f"  {len(indexes)} indexes built again in {time.monotonic() - began:.1f}s")
    began = time.monotonic()
    await conn.execute("VACUUM ANALYZE")
    say(f"  VACUUM ANALYZE in {time.monotonic() - began:.1f}s")
    return rows


# ------------------------------------------------------------------------------------------ the measures

SCAN = "SELECT count(*) FROM shipment_events"


async def baseline_scan(conn: asyncpg.Connection, repeat: int) -> list[float]:
    """count(*) over the shipment events by a sequential scan (the planner would use an index-only scan)."""
    times = []
    async with conn.transaction():
        for setting in ("enable_indexscan", "enable_indexonlyscan", "enable_bitmapscan"):
            await conn.execute(f"SET LOCAL {setting} = off")
        plan = "\n".join(r[0] for r in await conn.fetch(f"EXPLAIN {SCAN}"))
        if "Seq Scan" not in plan:
            raise RuntimeError(f"the baseline is not a sequential scan:\n{plan}")
        await conn.fetchval(SCAN)  # warm: the same cache state the reports meet
        for _ in range(repeat):
            began = time.perf_counter()
            await conn.fetchval(SCAN)
            times.append(time.perf_counter() - began)
    return times


Build = Callable[[asyncpg.Connection], Awaitable[AnyReport]]


async def time_report(
    dsn: str, build: Callable[[int], Build], formats: tuple[str, ...], repeat: int
) -> dict[str, list[float]]:
    """Each run as `hub report` makes it: a connection, the figures, then each format rendered from
    them; a format's time is the figures' plus its rendering (json: the SQL and the dump)."""
    from hub.reports.render import render

    times: dict[str, list[float]] = {fmt: [] for fmt in formats}
    render(await _once(dsn, build(0)), formats[-1])  # fonts and templates loaded, as in a warm process
    for run in range(repeat):
        began = time.perf_counter()
        report = await _once(dsn, build(run))
        built = time.perf_counter() - began
        for fmt in formats:
            began = time.perf_counter()
            content = render(report, fmt)
            times[fmt].append(built + time.perf_counter() - began)
            if not content:
                raise RuntimeError(f"{report.kind} as {fmt}: nothing rendered")
    return times


async def _once(dsn: str, build: Build) -> AnyReport:
    conn = await asyncpg.connect(dsn)
    try:
        return await build(conn)
    finally:
        await conn.close()


def _statement_builder(p: Period, customers: list[str]) -> Callable[[int], Build]:
    def build(run: int) -> Build:
        async def statement(conn: asyncpg.Connection) -> AnyReport:
            report = await figures.statement(conn, p, datetime.now(UTC), customers[run % len(customers)])
            async with conn.transaction():  # `hub report statement` stores it again
                await store_report(conn, report, p.label, report.customer_id, report.as_of)
            return report

        return statement

    return build


async def sweep_statements(dsn: str, p: Period, zone: ZoneInfo) -> tuple[Sweep, list[bytes]]:
    """The month's statements as the clock builds them on the first tick of the following month:
    hub.clock.engine._monthly_statements, STATEMENTS_PER_TICK customers a tick, until it is done.
    (tick() itself would first fire the generated tasks' SLA timers, which is not measured here.)"""
    clock = Clock(load_rules(), Destinations({q: f"alerts.{q.value}" for q in Queue}, "hub.dead-letter"), zone)
    now = p.end + timedelta(minutes=1)
    conn = await asyncpg.connect(dsn)
    ticks: list[float] = []
    try:
        began = time.perf_counter()
        while True:
            report = TickReport(now)
            tick_began = time.perf_counter()
            await _monthly_statements(conn, now, clock, report)
            ticks.append(time.perf_counter() - tick_began)
            if not report.more:
                break
        total = time.perf_counter() - began
        built = await conn.fetchval(
            "SELECT count(*) FROM clock_firings WHERE timer = 'monthly_statement' AND key = $1", p.label
        )
        stored = await conn.fetchval(
            "SELECT count(*) FROM reports WHERE kind = 'statement' AND period = $1 AND format = 'json'", p.label
        )
        notices = await conn.fetchval(
            "SELECT count(*) FROM customer_notifications WHERE kind = 'monthly_statement' AND statement_period = $1",
            p.label,
        )
        sample = [
            r["content"]
            for r in await conn.fetch(
                "SELECT content FROM reports WHERE kind = 'statement' AND period = $1 AND format = 'json' "
                "ORDER BY customer_id",
                p.label,
            )
        ]
    finally:
        await conn.close()
    per = total / built if built else 0.0
    return (
        Sweep(
            statements=built,
            ticks=len(ticks),
            total_s=round(total, 1),
            per_statement_ms=round(per * 1000, 1),
            tick_p50_s=round(statistics.median(ticks), 2),
            tick_max_s=round(max(ticks), 2),
            stored_json=stored,
            notices=notices,
            target_s=TARGET_STATEMENTS_S,
            extrapolated_10000_s=round(per * 10_000, 1),
        ),
        sample,
    )


async def pdf_rate(contents: list[bytes], processes: int, customers: int) -> PdfRate:
    """The sample rendered by the dispatcher's renderer with `processes` workers, all queued at once;
    its workers are started and warm (fonts loaded) before the clock starts."""
    renderer = Renderer(processes)
    try:
        await asyncio.gather(*(renderer.statement_pdf(contents[0]) for _ in range(processes * 2)))
        began = time.perf_counter()
        pdfs = await asyncio.gather(*(renderer.statement_pdf(c) for c in contents))
        seconds = time.perf_counter() - began
    finally:
        renderer.close()
    if not all(pdf.startswith(b"%PDF") for pdf in pdfs):
        raise RuntimeError("a statement did not render as PDF")
    per = seconds / len(contents)
    return PdfRate(
        processes=processes,
        sample=len(contents),
        seconds=round(seconds, 2),
        per_pdf_s=round(per, 3),
        pdfs_per_s=round(len(contents) / seconds, 2),
        extrapolated_s=round(per * customers, 1),
        bytes_p50=int(statistics.median(len(p) for p in pdfs)),
    )


# ------------------------------------------------------------------------------------------ the run


def _timing(name: str, times: list[float], scan_s: float, target: float | None) -> Timing:
    p50 = statistics.median(times)
    # To the microsecond: on a quiet box the tiny run's baseline scan takes under half a millisecond.
    return Timing(name, len(times), round(p50, 6), round(max(times), 6), round(p50 / scan_s, 2), target)


async def measure(dsn: str, options: ReportsOptions, say: Say) -> ReportsSummary:
    """Everything on the database `dsn` (empty: migrated and loaded here)."""
    zone = ZoneInfo(options.timezone)
    as_of = datetime.now(UTC)
    p = figures.month(options.month, zone) if options.month else figures.previous_month(as_of, zone)
    before = load_average()
    await apply_migrations(dsn)
    say(f"generating {p.label} ({p.timezone}): {options.shipments:,} shipments of {options.customers:,} customers ...")
    began = time.monotonic()
    conn = await asyncpg.connect(dsn)
    try:
        rows = await load(conn, options, p, as_of, say)
        load_s = time.monotonic() - began
        scan = await baseline_scan(conn, options.repeat)
        customers = [
            r["customer_id"]
            for r in await conn.fetch("SELECT customer_id FROM customers ORDER BY customer_id LIMIT $1", options.repeat)
        ]
    finally:
        await conn.close()
    scan_s = statistics.median(scan)
    baseline = _timing(f"seq scan: count(*) of {rows['shipment_events']:,} shipment events", scan, scan_s, None)
    say(f"baseline scan p50 {scan_s:.3f}s; the reports, {options.repeat} runs each ...")
    summary = ReportsSummary(
        created_at=as_of.isoformat(timespec="seconds"),
        month=p.label,
        timezone=p.timezone,
        shipments=options.shipments,
        customers=options.customers,
        rows=rows,
        load_s=round(load_s, 1),
        baseline=baseline,
        load_average_before=before,
        cpus=os.cpu_count() or 0,
    )
    cases: list[tuple[str, Callable[[int], Build], tuple[str, ...]]] = [
        ("complaints", lambda _: lambda c: figures.complaints_report(c, p, datetime.now(UTC)), ("json", "csv", "html")),
        ("kpi", lambda _: lambda c: figures.kpi_report(c, p, datetime.now(UTC)), ("json", "csv", "html")),
        ("statement", _statement_builder(p, customers), ("json", "html", "pdf")),
    ]
    for kind, build, formats in cases:
        times = await time_report(dsn, build, formats, options.repeat)
        for fmt in formats:
            timing = _timing(f"{kind} {fmt}", times[fmt], scan_s, TARGET_REPORT_S)
            summary.reports.append(timing)
            say(f"  {timing.name}: p50 {timing.p50_s:.3f}s, max {timing.max_s:.3f}s")
    await _clear_statements(dsn, p)  # the sweep builds every customer's, as on the first tick of a month
    say(f"the monthly_statement sweep: every customer's {p.label} statement, stored as JSON ...")
    summary.sweep, stored = await sweep_statements(dsn, p, zone)
    say(
        f"  {summary.sweep.statements:,} statements in {summary.sweep.total_s:.1f}s "
        f"({summary.sweep.per_statement_ms:.1f} ms each, {summary.sweep.ticks} ticks)"
    )
    sample = stored[:: max(1, len(stored) // options.pdf_sample)][: options.pdf_sample] if stored else []
    for processes in (1, 2):
        if not sample:
            break
        rate = await pdf_rate(sample, processes, summary.sweep.statements)
        summary.pdf.append(rate)
        say(f"  PDFs with HUB_REPORT_PROCESSES={processes}: {rate.sample} in {rate.seconds:.1f}s")
    summary.load_average_after = load_average()
    summary.notes = notes(summary)
    return summary


async def _clear_statements(dsn: str, p: Period) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DELETE FROM reports WHERE kind = 'statement' AND period = $1", p.label)
    finally:
        await conn.close()


async def run_reports_bench(options: ReportsOptions, say: Say) -> ReportsSummary:
    """On an embedded PostgreSQL started for the run, in a work directory removed afterwards."""
    work_dir = Path(tempfile.mkdtemp(prefix="hub-bench-reports-"))
    say(f"work directory {work_dir}")
    try:
        with start_postgres(work_dir / "postgres" / "data") as pg:
            async with scratch_database(pg.admin_dsn, "bench_reports") as dsn:
                return await measure(dsn, options, say)
    finally:
        if options.keep:
            say(f"kept {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)


def notes(s: ReportsSummary) -> list[str]:
    out = []
    slow = [t.name for t in s.reports if t.met is False]
    out.append(
        f"every report under {TARGET_REPORT_S:.0f} s: yes"
        if not slow
        else f"over {TARGET_REPORT_S:.0f} s: {', '.join(slow)}"
    )
    if s.sweep:
        out.append(
            f"statements as JSON (the monthly sweep): {s.sweep.statements:,} in {s.sweep.total_s:.0f} s; "
            f"10,000 at this rate: {s.sweep.extrapolated_10000_s:.0f} s (target {TARGET_STATEMENTS_S:.0f} s: "
            f"{'met' if s.sweep.met else 'missed'})"
        )
    for rate in s.pdf:
        out.append(
            f"PDFs, HUB_REPORT_PROCESSES={rate.processes}: {rate.per_pdf_s:.2f} s each, "
            f"{s.sweep.statements if s.sweep else 0:,} would take {rate.extrapolated_s / 60:.0f} min"
        )
    out.append(
        "the hub builds the statements as JSON on the first tick of the month and renders each PDF only when "
        "its e-mail is sent (hub.dispatch.attachments), so the PDF rate is spread over the dispatcher's rounds "
        "and is not part of the 10-minute target"
    )
    return out


def summary_json(s: ReportsSummary) -> dict:
    data = asdict(s)
    for timing in [data["baseline"], *data["reports"]]:
        timing["met"] = None if timing["target_s"] is None else timing["max_s"] < timing["target_s"]
    if data["sweep"]:
        data["sweep"]["met"] = s.sweep.met if s.sweep else None
    data["statements_per_tick"] = STATEMENTS_PER_TICK
    return data


def write(s: ReportsSummary, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(summary_json(s), indent=2, ensure_ascii=False) + "\n")
    return out
