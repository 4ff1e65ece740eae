"""`python -m bench console`: the web console on a database the size of a busy desk.

100,000 tasks (15 % open), 1,000,000 shipment events (100,000 shipments, both streams), their calls,
notifications, task histories and 100,000 alerts in the outbox are generated in Postgres itself
(generate_series: a minute, not an hour). Then `hub console` runs as its own process, as in
production, and is measured from outside:

- page time: sequential GETs of the queues page, the tasks page (default and filtered) and
  random shipments' pages; p50, p95, max per page (issue 21: p95 under 200 ms);
- live clients: 50 logged-in event streams; an alert is written the way the hub writes one
  (hub.store.writes.write_alerts, in a transaction) and each stream's arrival of it is timed
  from the commit (issue 21: every client within 2 s).

Postgres is the embedded PostgreSQL 18 with default durability, started for the run.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import httpx

from hub.core.ids import stable_id
from hub.core.outputs import AlertDecision
from hub.core.topics import Destinations, Queue
from hub.dev.databases import scratch_database
from hub.dev.embedded import free_port, start_postgres
from hub.migrate import apply_migrations
from hub.ops.users import Role, add_user, hash_password
from hub.store.writes import write_alerts
from schemas.enums import AlertKind, Severity
from schemas.outbound import Alert, AlertSource

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = REPO_ROOT / "bench" / "results" / "console.json"
PASSWORD = "bench console password"
OPEN_SHARE = 0.15

Say = Callable[[str], None]


@dataclass
class ConsoleOptions:
    tasks: int = 100_000
    events: int = 1_000_000
    requests: int = 200  # per page
    clients: int = 50
    rounds: int = 10  # alerts written while the clients listen
    seed: int = 7
    out: Path = DEFAULT_OUT
    keep: bool = False


@dataclass
class PageTimes:
    page: str
    requests: int
    p50_ms: float
    p95_ms: float
    max_ms: float


@dataclass
class LiveTimes:
    clients: int
    rounds: int
    deliveries: int  # of clients x rounds
    p50_ms: float
    p95_ms: float
    max_ms: float
    all_within_2s: bool


@dataclass
class ConsoleSummary:
    created_at: str
    tasks: int
    open_tasks: int
    shipment_events: int
    shipments: int
    load_s: float
    pages: list[PageTimes] = field(default_factory=list)
    live: LiveTimes | None = None
    load_average_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_average_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    cpus: int = 0


# ------------------------------------------------------------------------------------------ the data

DEPARTMENTS = "ARRAY['claims','carrier_liaison','complaints','dispatch','key_accounts','warehouse','call_centre']"
RULES = (
    "ARRAY['damage','loss','delivery_problem','customs_hold','delay','urgent_order','complaint','claim',"
    "'repeat_contact']"
)
QUEUE_OF_RULE = (
    "ARRAY['exceptions','exceptions','exceptions','exceptions','exceptions','urgent_orders','complaints',"
    "'exceptions','complaints']"
)
MOVES = "ARRAY['created','picked','packed','dispatched','in_transit','in_transit','out_for_delivery','delivered']"

LOAD = [
    # customers
    """
    INSERT INTO customers (customer_id, name, tier, language, preferred_channel, email, phone, credit_rating)
    SELECT 'C' || n, '客户 ' || n, CASE WHEN n % 10 = 0 THEN 'key' ELSE 'standard' END,
           CASE WHEN n % 4 = 0 THEN 'en' ELSE 'zh' END, 'sms', 'c' || n || '@example.com', '+86 138 0000 ' || n,
           (ARRAY['A','B','C','D'])[1 + n % 4]
    FROM generate_series(1, $1::int) AS n
    """,
    # the tracking sheets
    """
    INSERT INTO shipments (shipment_id, customer_id, status, promised_delivery_at, carrier_id, last_event_at)
    SELECT 'S' || n, 'C' || (1 + n % $2::int), 'in_transit', $3::timestamptz + (n % 500) * interval '1 hour',
           (ARRAY['SF','YTO','ZTO','JD'])[1 + n % 4], $3::timestamptz + (n % 1000) * interval '1 minute'
    FROM generate_series(1, $1::int) AS n
    """,
    # both streams' history: every shipment has events/shipments of them
    """
    INSERT INTO shipment_events (event_id, shipment_id, topic, status, occurred_at, payload)
    SELECT 'E' || n, 'S' || (1 + n / $2::int),
           CASE WHEN n % 2 = 0 THEN 'shipment.events' ELSE 'carrier.updates' END,
           ("""
    + MOVES
    + """)[1 + (n % $2::int) % 8],
           $3::timestamptz + (n % $2::int) * interval '3 hours' + (n / $2::int) * interval '1 second',
           jsonb_build_object('event_id', 'E' || n, 'shipment_id', 'S' || (1 + n / $2::int), 'source', 'bench',
                              'carrier_id', 'SF', 'location', jsonb_build_object('city', '上海'))
    FROM generate_series(0, $1::int - 1) AS n
    """,
    # calls about a tenth of the shipments
    """
    INSERT INTO call_logs (event_id, call_id, customer_id, shipment_id, direction, channel, category, occurred_at,
                           payload)
    SELECT 'K' || n, 'K' || n, 'C' || (1 + n % $2::int), 'S' || (1 + n * 10), 'inbound', 'phone',
           (ARRAY['query','complaint','claim','survey'])[1 + n % 4], $3::timestamptz + n * interval '1 minute',
           jsonb_build_object('notes', '客户来电询问包裹 ' || n, 'satisfaction_score', 1 + n % 5)
    FROM generate_series(1, $1::int) AS n
    """,
    # tasks: OPEN_SHARE open or in progress, the rest closed; one per shipment
    """
    INSERT INTO coordination_tasks (task_id, department, kind, severity, status, shipment_id, customer_id, title,
                                    details, opened_at, due_at, warn_at, escalate_at, source_event_id, rule, alert_id,
                                    claimed_by, claimed_at, resolved_by, resolved_at, resolution, escalation_level,
                                    created_at, updated_at)
    SELECT md5('task' || n)::uuid, ("""
    + DEPARTMENTS
    + """)[1 + n % 7], ("""
    + RULES
    + """)[1 + n % 9],
           (ARRAY['P1','P2','P3','P4'])[1 + n % 4],
           CASE WHEN n % 100 < $4::int THEN (CASE WHEN n % 3 = 0 THEN 'in_progress' ELSE 'open' END)
                WHEN n % 11 = 0 THEN 'cancelled' ELSE 'done' END,
           'S' || n, 'C' || (1 + n % $2::int), 'Task for shipment S' || n, '{}'::jsonb,
           $3::timestamptz + n * interval '20 seconds',
           $3::timestamptz + n * interval '20 seconds' + interval '8 hours',
           $3::timestamptz + n * interval '20 seconds' + interval '6 hours',
           $3::timestamptz + n * interval '20 seconds' + interval '16 hours',
           'E' || (n * 10), ("""
    + RULES
    + """)[1 + n % 9], md5('alert' || n)::uuid,
           CASE WHEN n % 100 < $4::int AND n % 3 = 0 THEN 'agent' || n % 20 END,
           CASE WHEN n % 100 < $4::int AND n % 3 = 0 THEN now() END,
           CASE WHEN n % 100 >= $4::int THEN 'agent' || n % 20 END,
           CASE WHEN n % 100 >= $4::int THEN $3::timestamptz + n * interval '20 seconds' + interval '2 hours' END,
           CASE WHEN n % 100 >= $4::int THEN 'handled' END,
           CASE WHEN n % 100 < $4::int THEN n % 3 ELSE 0 END,
           $3::timestamptz + n * interval '20 seconds', now()
    FROM generate_series(1, $1::int) AS n
    """,
    # every task's history: created, and resolved for the closed ones
    """
    INSERT INTO task_events (task_id, at, actor, action, detail)
    SELECT task_id, created_at, 'hub', 'created', jsonb_build_object('rule', rule, 'severity', severity)
    FROM coordination_tasks
    UNION ALL
    SELECT task_id, resolved_at, resolved_by, 'resolved', jsonb_build_object('resolution', resolution)
    FROM coordination_tasks WHERE resolved_at IS NOT NULL
    """,
    # a notice per task
    """
    INSERT INTO customer_notifications (notification_id, customer_id, shipment_id, kind, channel, language, body,
                                        status, created_at, source_event_id, next_attempt_at)
    SELECT md5('note' || task_id)::uuid, customer_id, shipment_id, 'exception', 'sms', 'zh',
           '您的包裹 ' || shipment_id || ' 在运输中出现异常。', 'sent', created_at, source_event_id, NULL
    FROM coordination_tasks
    """,
    # the alerts the tasks came with, published long ago
    """
    INSERT INTO outbox (topic, key, value, headers, message_id, created_at, sent_at)
    SELECT 'alerts.' || replace(q.queue, '_', '-'), convert_to(t.shipment_id, 'UTF8'),
           convert_to(json_build_object(
               'alert_id', t.alert_id, 'kind', t.rule, 'severity', t.severity, 'rule', t.rule,
               'shipment_id', t.shipment_id, 'customer_id', t.customer_id, 'summary', t.title,
               'task_id', t.task_id, 'source', json_build_object('topic', 'shipment.events', 'partition', 0,
                                                                 'offset', 0, 'event_id', t.source_event_id),
               'created_at', t.created_at, 'due_at', t.due_at)::text, 'UTF8'),
           '[]'::jsonb, t.alert_id::text, t.created_at, t.created_at
    FROM coordination_tasks t
    JOIN unnest("""
    + RULES
    + """, """
    + QUEUE_OF_RULE
    + """) AS q(rule, queue) ON q.rule = t.rule
    ORDER BY t.created_at
    """,
]


async def load(dsn: str, options: ConsoleOptions, say: Say) -> tuple[int, int, int]:
    shipments = options.tasks
    per_shipment = max(1, options.events // shipments)
    customers = max(100, shipments // 50)
    start = datetime(2026, 1, 1, tzinfo=UTC)
    args = [
        (customers,),
        (shipments, customers, start),
        (shipments * per_shipment, per_shipment, start),
        (shipments // 10, customers, start),
        (options.tasks, customers, start, round(OPEN_SHARE * 100)),
        (),
        (),
        (),
    ]
    conn = await asyncpg.connect(dsn)
    try:
        for sql, values in zip(LOAD, args, strict=True):
            began = time.monotonic()
            status = await conn.execute(sql, *values)
            table = re.search(r"INSERT INTO (\w+)", sql)
            say(f"  {table[1] if table else '?'}: {status.split()[-1]} rows in {time.monotonic() - began:.1f}s")
        await conn.execute("ANALYZE")
        opened = await conn.fetchval("SELECT count(*) FROM coordination_tasks WHERE status IN ('open', 'in_progress')")
        events = await conn.fetchval("SELECT count(*) FROM shipment_events")
    finally:
        await conn.close()
    return opened, events, shipments


# ------------------------------------------------------------------------------------------ the console


def _environment(dsn: str, port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(HUB_DATABASE_URL=dsn, HUB_CONSOLE_PORT=str(port), HUB_LOG_LEVEL="WARNING")
    return env


async def _start_console(dsn: str, work_dir: Path) -> tuple[subprocess.Popen, str]:
    port = free_port()
    log = open(work_dir / "console.log", "ab")  # noqa: SIM115, ASYNC230 - the child writes it until it stops
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", "console"], env=_environment(dsn, port), stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    async with httpx.AsyncClient(base_url=base, trust_env=False) as client:
        deadline = time.monotonic() + 120
        while True:
            try:
                if (await client.get("/health")).status_code == 200:
                    return process, base
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"hub console did not start; see {work_dir / 'console.log'}")
            await asyncio.sleep(0.25)


async def _logged_in(base: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base, trust_env=False, timeout=30)
    page = await client.get("/login")
    token = re.search(r'name="csrf" value="([^"]+)"', page.text)
    answer = await client.post(
        "/login", data={"csrf": token[1] if token else "", "username": "bench", "password": PASSWORD}
    )
    if answer.status_code != 303:
        raise RuntimeError(f"bench could not log in to the console ({answer.status_code})")
    return client


def _ms(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return round(statistics.median(ordered) * 1000, 1), round(p95 * 1000, 1), round(ordered[-1] * 1000, 1)


async def measure_pages(base: str, options: ConsoleOptions, shipments: int) -> list[PageTimes]:
    rng = random.Random(options.seed)
    pages = {
        "queues": lambda: "/queues",
        "tasks": lambda: "/tasks",
        "tasks, filtered": lambda: (
            "/tasks?department="
            + rng.choice(["claims", "complaints", "dispatch", "warehouse"])
            + "&severity="
            + rng.choice(["P1", "P2", "P3"])
        ),
        "tasks, overdue": lambda: "/tasks?overdue=1",
        "shipment": lambda: f"/shipments/S{rng.randint(1, shipments)}",
        "task": lambda: f"/tasks/{_task_uuid(rng.randint(1, options.tasks))}",
        "customer": lambda: f"/customers/C{rng.randint(1, 100)}",
    }
    client = await _logged_in(base)
    results = []
    try:
        for name, path in pages.items():
            for _ in range(5):  # warm the console's and Postgres's caches
                await client.get(path())
            times = []
            for _ in range(options.requests):
                began = time.perf_counter()
                answer = await client.get(path())
                times.append(time.perf_counter() - began)
                if answer.status_code != 200:
                    raise RuntimeError(f"{name}: {answer.status_code} for {answer.request.url}")
            results.append(PageTimes(name, len(times), *_ms(times)))
    finally:
        await client.aclose()
    return results


def _task_uuid(n: int) -> str:
    digest = hashlib.md5(f"task{n}".encode()).hexdigest()  # the generated ids (md5 in SQL), not security
    return f"{digest[:8]}-{digest[8:12]}-{digest[12:16]}-{digest[16:20]}-{digest[20:]}"


async def measure_live(base: str, dsn: str, options: ConsoleOptions) -> LiveTimes:
    """`clients` event streams; `rounds` alerts, each written like the hub writes one; each stream's
    time from the commit to the alert's arrival."""
    clients = [await _logged_in(base) for _ in range(options.clients)]
    arrivals: dict[str, dict[int, float]] = {}  # alert id -> client -> when it first arrived there
    connected = 0
    all_connected = asyncio.Event()

    watched: list[bytes] = []  # the alert ids written so far, as they appear in the HTML

    async def listen(number: int, client: httpx.AsyncClient) -> None:
        # Raw chunks searched for the ids written: the measuring side stays cheap next to the
        # console on the same cores (parsing 50 streams line by line would slow both).
        nonlocal connected
        async with client.stream("GET", "/events", timeout=None) as stream:
            connected += 1
            if connected == len(clients):
                all_connected.set()
            tail = b""
            async for chunk in stream.aiter_raw():
                now = time.monotonic()
                window = tail + chunk
                for alert_id in watched:
                    if alert_id in window:
                        arrivals.setdefault(alert_id.decode(), {}).setdefault(number, now)
                tail = window[-64:]

    listeners = [asyncio.create_task(listen(n, c)) for n, c in enumerate(clients)]
    try:
        await asyncio.wait_for(all_connected.wait(), 60)
        await asyncio.sleep(2)  # the first fragments of every stream have gone out
        conn = await asyncpg.connect(dsn)
        latencies: list[float] = []
        try:
            for round_ in range(options.rounds):
                alert = _bench_alert(round_)
                watched.append(alert.alert_id.encode())
                async with conn.transaction():
                    await write_alerts(conn, [AlertDecision(Queue.EXCEPTIONS, alert)], _destinations())
                committed = time.monotonic()
                deadline = committed + 10
                while len(arrivals.get(alert.alert_id, [])) < len(clients) and time.monotonic() < deadline:
                    await asyncio.sleep(0.01)
                got = list(arrivals.get(alert.alert_id, {}).values())
                latencies += [t - committed for t in got]
                latencies += [float("inf")] * (len(clients) - len(got))  # never arrived within 10 s
                await asyncio.sleep(1)
        finally:
            await conn.close()
    finally:
        for task in listeners:
            task.cancel()
        await asyncio.gather(*listeners, return_exceptions=True)
        for client in clients:
            await client.aclose()
    finite = [t for t in latencies if t != float("inf")]
    p50, p95, worst = _ms(finite) if finite else (float("inf"),) * 3
    return LiveTimes(
        options.clients,
        options.rounds,
        len(finite),
        p50,
        p95 if len(finite) == len(latencies) else float("inf"),
        worst if len(finite) == len(latencies) else float("inf"),
        len(finite) == len(latencies) and max(latencies) < 2.0,
    )


def _destinations() -> Destinations:
    """The default topics, as the console (default settings) maps them back to queues."""
    return Destinations({q: f"alerts.{q.value.replace('_', '-')}" for q in Queue}, "hub.dead-letter")


def _bench_alert(round_: int) -> Alert:
    now = datetime.now(UTC)
    task_id = _task_uuid(1 + round_)
    return Alert(
        alert_id=stable_id("alert", "bench-console", str(time.time_ns()), str(round_)),
        kind=AlertKind.DAMAGE,
        severity=Severity.P1,
        rule="damage",
        shipment_id=f"S{1 + round_}",
        customer_id=None,
        summary=f"bench alert {round_}",
        task_id=task_id,
        source=AlertSource(topic="shipment.events", partition=0, offset=round_, event_id=f"bench-{round_}"),
        created_at=now,
        due_at=now + timedelta(hours=2),
    )


# ------------------------------------------------------------------------------------------ the run


async def run_console_bench(options: ConsoleOptions, say: Say) -> ConsoleSummary:
    work_dir = Path(tempfile.mkdtemp(prefix="hub-bench-console-"))
    say(f"work directory {work_dir}")
    before = os.getloadavg()
    try:
        with start_postgres(work_dir / "postgres" / "data") as pg:
            async with scratch_database(pg.admin_dsn, "bench_console") as dsn:
                await apply_migrations(dsn)
                say(f"generating {options.tasks:,} tasks and {options.events:,} shipment events ...")
                began = time.monotonic()
                opened, events, shipments = await load(dsn, options, say)
                load_s = time.monotonic() - began
                conn = await asyncpg.connect(dsn)
                try:
                    await add_user(conn, "bench", Role.VIEWER, [], await asyncio.to_thread(hash_password, PASSWORD))
                finally:
                    await conn.close()
                process, base = await _start_console(dsn, work_dir)
                try:
                    say(f"hub console at {base}: {options.requests} requests per page ...")
                    pages = await measure_pages(base, options, shipments)
                    say(f"{options.clients} live clients, {options.rounds} alerts ...")
                    live = await measure_live(base, dsn, options)
                finally:
                    process.send_signal(signal.SIGTERM)
                    try:
                        process.wait(20)
                    except subprocess.TimeoutExpired:
                        process.kill()
    finally:
        if not options.keep:
            shutil.rmtree(work_dir, ignore_errors=True)
    return ConsoleSummary(
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        tasks=options.tasks,
        open_tasks=opened,
        shipment_events=events,
        shipments=shipments,
        load_s=round(load_s, 1),
        pages=pages,
        live=live,
        load_average_before=tuple(round(x, 2) for x in before),  # type: ignore[arg-type]
        load_average_after=tuple(round(x, 2) for x in os.getloadavg()),  # type: ignore[arg-type]
        cpus=os.cpu_count() or 0,
    )


def summary_json(summary: ConsoleSummary) -> dict:
    return asdict(summary)
