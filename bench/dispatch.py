"""`python -m bench dispatch` (issue 19): webhook notifications per second against a floor measured
in the same run, and the time from `pending` to `sent` at a steady 200 notifications/s.

Everything on this machine: the embedded PostgreSQL 18 (default durability, a fresh database with
every migration), a local webhook receiver in its own process (bench/webhook_receiver.py: plain
asyncio HTTP/1.1, answers 200 at once, counts every `webhook-id`), and the hub's Dispatcher in its
own process (bench/dispatch_hub.py: built and run as `hub run` does with HUB_DISPATCH_ENABLED,
the shipped settings otherwise). `--endpoints` customers (default 4) are registered for the
webhook channel, each with a whsec_ secret and its own URL on the receiver (one endpoint each).

Phases:

  floor       a bare httpx.AsyncClient (the dispatcher's limits: 64 connections, no redirects,
              10 s timeout) POSTs --notifications requests with HUB_DISPATCH_CONCURRENCY (16)
              in flight, round robin over the same endpoints, each body the hub's webhook JSON
              for such a notice and signed per Standard Webhooks as the hub signs it: posts/s
  hub         --notifications pending webhook notices written in one transaction the way the
              store writes them (hub.store.writes.write_notifications); the running dispatcher
              sends them all: notifications/s from that commit to the commit of its last round
              (Postgres commit timestamps), its ratio to the floor (target >= 0.5). The
              dispatcher's concurrency is min(HUB_DISPATCH_CONCURRENCY, endpoints x
              HUB_DISPATCH_ENDPOINT_CONCURRENCY) = 16, the floor's.
  latency     notices written at a paced --rate (200/s) for --seconds, in small transactions
              every --tick-s (as the store writes a batch, with write_notifications, whose NOTIFY
              hub_dispatch wakes the dispatcher on commit: the hub's own wake-up path); from each
              row's created_at (pending) to its sent_at, as Postgres records them: p50/p95/p99
              (target p99 <= 500 ms), and every notice received exactly once.

floor and hub alternate --repeat times (median, min-max), so a noisy minute hurts both alike.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import orjson
from rich.console import Console
from rich.table import Table

from bench.options import RESULTS_DIR
from bench.procstats import load_average, machine, process_cpu_s, tree_cpu_s
from bench.services import (
    REPO_ROOT,
    Child,
    free_port_range,
    fresh_database,
    hub_settings,
    hub_tree,
    python_env,
    python_module,
    run_postgres,
)
from bench.stats import latency_summary, windows
from hub.config import Settings
from hub.core.outputs import NotificationDecision
from hub.core.webhooks import Secret, signed_headers
from hub.dispatch.outgoing import Outgoing
from hub.dispatch.templates import render
from hub.dispatch.webhook import payload
from hub.migrate import apply_migrations
from hub.ops.customers import create_webhook_secret
from hub.store.writes import write_notifications
from schemas.enums import NotificationKind

DEFAULT_OUT = RESULTS_DIR / "dispatch.json"
TARGET_RATIO = 0.5
TARGET_P99_MS = 500.0
KIND = NotificationKind.DELAY  # sent at once by webhook (no quiet hours, no supersession)
BODY = "Your shipment {shipment} may arrive late: the carrier reports a delay at the Shanghai hub. We are on it."
PENDING = "SELECT count(*) FROM customer_notifications WHERE status = 'pending' AND next_attempt_at IS NOT NULL"

Say = Callable[[str], None]


@dataclass
class DispatchOptions:
    notifications: int = 5_000  # per throughput run, floor and hub alike
    repeat: int = 3
    endpoints: int = 4
    rate: float = 200.0
    seconds: float = 25.0
    tick_s: float = 0.02
    out: Path = DEFAULT_OUT
    keep: bool = False


@dataclass
class Bench:
    """What every phase shares."""

    dsn: str
    settings: Settings
    urls: list[str]  # one per endpoint (customer)
    secrets: list[str]
    receiver: str  # base URL
    dispatcher: Child
    receiver_child: Child
    postgres_pid: int
    say: Say

    @property
    def concurrency(self) -> int:
        s = self.settings
        return min(s.dispatch_concurrency, len(self.urls) * s.dispatch_endpoint_concurrency)


# --- the run ---------------------------------------------------------------------------------------


async def run_dispatch_bench(options: DispatchOptions, say: Say) -> dict:
    work_dir = Path(tempfile.mkdtemp(prefix="hub-bench-dispatch-"))
    say(f"work directory (Postgres data, logs): {work_dir}")
    result: dict = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "options": {k: v for k, v in vars(options).items() if k not in ("out", "keep")},
        "load_average_before": load_average(),
        "machine": machine(),
        "hub": hub_tree(),
    }
    failed = True
    try:
        async with run_postgres(work_dir) as pg, fresh_database(pg.admin_dsn, "bench_dispatch") as dsn:
            await apply_migrations(dsn)
            port = free_port_range(1)
            receiver = Child.spawn(
                "receiver",
                python_module("bench.webhook_receiver", str(port)),
                python_env(),
                work_dir / "receiver.log",
                REPO_ROOT,
            )
            dispatcher = None
            try:
                base = f"http://127.0.0.1:{port}"
                await _wait_for_receiver(base, receiver)
                urls, secrets = await _register(dsn, base, options.endpoints)
                settings = hub_settings("127.0.0.1:9", dsn, dispatch_enabled=True, webhook_insecure_hosts="127.0.0.1")
                dispatcher = Child.spawn(
                    "dispatcher",
                    python_module("bench.dispatch_hub"),
                    settings.child_environment(python_env()),
                    work_dir / "dispatcher.log",
                    REPO_ROOT,
                )
                bench = Bench(dsn, settings, urls, secrets, base, dispatcher, receiver, pg.pid, say)
                result["concurrency"] = {
                    "floor": bench.concurrency,
                    "hub": bench.concurrency,
                    "endpoints": len(urls),
                    "hub_channel": settings.dispatch_concurrency,
                    "hub_per_endpoint": settings.dispatch_endpoint_concurrency,
                    "hub_batch": settings.dispatch_batch,
                    "hub_poll_s": settings.dispatch_poll_s,
                }
                await _warm_up(bench)
                result["runs"] = await _throughput(bench, options)
                result["throughput"] = _throughput_summary(result["runs"])
                result["latency"] = await _latency(bench, options, tag="lat")
                result["delivery"] = await _delivery(bench)
            finally:
                if dispatcher is not None:
                    await dispatcher.stop(grace_s=15)
                await receiver.stop(grace_s=5)
        failed = False
    finally:
        if failed or options.keep:
            say(f"logs kept in {work_dir}")
        else:
            shutil.rmtree(work_dir, ignore_errors=True)
    result["load_average_after"] = load_average()
    result["targets"] = {
        "throughput_ratio": {
            "target": f">= {TARGET_RATIO}",
            "value": result["throughput"]["ratio"],
            "met": result["throughput"]["ratio"] >= TARGET_RATIO,
        },
        "latency_p99_ms": {
            "target": f"<= {TARGET_P99_MS:.0f} at {options.rate:g}/s",
            "value": result["latency"]["p99_ms"],
            "met": result["latency"]["p99_ms"] <= TARGET_P99_MS,
        },
        "exactly_once": {"met": result["delivery"]["exactly_once"]},
    }
    # A floor below the offered rate: no httpx sender at this concurrency kept up on this box then.
    result["latency"]["floor_below_rate"] = result["throughput"]["floor_max"] < options.rate
    return result


async def _wait_for_receiver(base: str, child: Child) -> None:
    deadline = time.monotonic() + 20
    async with httpx.AsyncClient() as client:
        while True:
            child.check_alive()
            try:
                (await client.get(f"{base}/counts")).raise_for_status()
                return
            except httpx.HTTPError:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the webhook receiver did not answer at {base}; log {child.log_path}") from None
                await asyncio.sleep(0.1)


async def _register(dsn: str, base: str, endpoints: int) -> tuple[list[str], list[str]]:
    """`endpoints` customers on the webhook channel, each with its own URL and a whsec_ secret."""
    conn = await asyncpg.connect(dsn)
    urls, secrets = [], []
    try:
        for i in range(endpoints):
            customer_id, url = f"C-HOOK-{i + 1:02d}", f"{base}/hooks/{i + 1:02d}"
            await conn.execute(
                "INSERT INTO customers (customer_id, name, tier, language, preferred_channel, webhook_url) "
                "VALUES ($1, $2, 'standard', 'en', 'webhook', $3)",
                customer_id,
                f"Bench customer {i + 1}",
                url,
            )
            secrets.append(await create_webhook_secret(conn, customer_id, rotate=False))
            urls.append(url)
    finally:
        await conn.close()
    return urls, secrets


def _customer(i: int) -> str:
    return f"C-HOOK-{i + 1:02d}"


def _decisions(tag: str, first: int, count: int, endpoints: int) -> list[NotificationDecision]:
    return [
        NotificationDecision(
            str(uuid.uuid4()),
            _customer(i % endpoints),
            f"SH-{tag}-{i}",
            KIND,
            "webhook",
            "en",
            BODY.format(shipment=f"SH-{tag}-{i}"),
            f"bench-{tag}-{i}",
        )
        for i in range(first, first + count)
    ]


async def _write(conn: asyncpg.Connection, notes: list[NotificationDecision]) -> None:
    """As the store writes a batch's notices: COPY and NOTIFY hub_dispatch in the batch's transaction."""
    async with conn.transaction():
        await write_notifications(conn, notes)


async def _wait_sent(bench: Bench, ids: list[str], timeout_s: float) -> None:
    conn = await asyncpg.connect(bench.dsn)
    deadline = time.monotonic() + timeout_s
    try:
        while True:
            # Every earlier phase is sent by now, so all pending rows are these: a cheap count on the
            # dispatcher's own partial index, which takes nothing worth mentioning from it.
            pending = await conn.fetchval(PENDING)
            if not pending:
                return
            bench.dispatcher.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"{pending:,} of {len(ids):,} notices still pending after {timeout_s:.0f}s; "
                    f"the dispatcher's log: {bench.dispatcher.log_path}"
                )
            await asyncio.sleep(0.25)
    finally:
        await conn.close()


async def _warm_up(bench: Bench) -> None:
    """A few notices per endpoint, so the dispatcher has connected, listens and holds connections."""
    notes = _decisions("warm", 0, 4 * bench.concurrency, len(bench.urls))
    conn = await asyncpg.connect(bench.dsn)
    try:
        await _write(conn, notes)
    finally:
        await conn.close()
    await _wait_sent(bench, [n.notification_id for n in notes], 60)
    bench.say(f"dispatcher warmed up ({len(notes)} notices sent)")


# --- throughput ------------------------------------------------------------------------------------


async def _throughput(bench: Bench, options: DispatchOptions) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {"floor": [], "hub": []}
    client = httpx.AsyncClient(
        follow_redirects=False,
        timeout=bench.settings.webhook_timeout_s,
        limits=httpx.Limits(max_connections=4 * bench.settings.dispatch_concurrency),
    )
    try:
        for r in range(options.repeat):
            floor = await _floor_run(bench, client, options.notifications, f"floor{r}")
            runs["floor"].append(floor)
            bench.say(f"floor {r + 1}/{options.repeat}: {floor['rate']:,.0f} posts/s")
            hub = await _hub_run(bench, options.notifications, f"tp{r}")
            runs["hub"].append(hub)
            bench.say(f"hub {r + 1}/{options.repeat}: {hub['rate']:,.0f} notifications/s")
    finally:
        await client.aclose()
    return runs


async def _floor_run(bench: Bench, client: httpx.AsyncClient, n: int, tag: str) -> dict:
    """A bare POST loop: the hub's webhook body and signature, httpx, `concurrency` in flight."""
    endpoints = len(bench.urls)
    keys = [(Secret(s),) for s in bench.secrets]
    now = datetime.now(UTC)
    # The text as the webhook template renders it for such a notice (once: the loop is bare).
    text = render(
        Outgoing("x", KIND.value, "webhook", "en", BODY.format(shipment="SH"), _customer(0), "SH", now, 0, 1)
    ).text
    ids = [str(uuid.uuid4()) for _ in range(n)]
    queue = iter(range(n))
    errors = 0

    async def worker() -> None:
        nonlocal errors
        for i in queue:
            e = i % endpoints
            body = orjson.dumps(
                {
                    "notification_id": ids[i],
                    "kind": KIND.value,
                    "customer_id": _customer(e),
                    "shipment_id": f"SH-{tag}-{i}",
                    "language": "en",
                    "body": text,
                    "created_at": now,
                }
            )
            headers = {**signed_headers(ids[i], datetime.now(UTC), body, keys[e]), "content-type": "application/json"}
            response = await client.post(bench.urls[e], content=body, headers=headers)
            if response.status_code != 200:
                errors += 1

    cpu = _Cpu(bench, os.getpid())
    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(bench.concurrency)))
    elapsed = time.perf_counter() - began
    counts = await _counts(bench, ids)
    return {
        "count": n,
        "seconds": round(elapsed, 3),
        "rate": round(n / elapsed, 1),
        "errors": errors,
        "received_once": counts["once"],
        "concurrency": bench.concurrency,
        "body_bytes": len(payload(_sample(bench, text, now))),
        **cpu.percent(),
    }


def _sample(bench: Bench, text: str, now: datetime) -> Outgoing:
    return Outgoing(str(uuid.uuid4()), KIND.value, "webhook", "en", "", _customer(0), "SH-tp0-0", now, 0, 1, text=text)


async def _hub_run(bench: Bench, n: int, tag: str) -> dict:
    notes = _decisions(tag, 0, n, len(bench.urls))
    ids = [note.notification_id for note in notes]
    conn = await asyncpg.connect(bench.dsn)
    try:
        cpu = _Cpu(bench, bench.dispatcher.pid)
        await _write(conn, notes)
        committed = datetime.now(UTC)
        await _wait_sent(bench, ids, 60 + n / 50)
        cpu_pct = cpu.percent()
        row = await conn.fetchrow(
            """
            SELECT count(*) FILTER (WHERE status = 'sent') AS sent, min(sent_at) AS first_sent,
                   max(pg_xact_commit_timestamp(xmin)) AS last_commit,
                   (SELECT count(*) FROM notification_attempts WHERE notification_id = ANY($1)) AS attempts
            FROM customer_notifications WHERE notification_id = ANY($1)
            """,
            ids,
        )
    finally:
        await conn.close()
    elapsed = (row["last_commit"] - committed).total_seconds()
    counts = await _counts(bench, ids)
    return {
        "count": n,
        "sent": row["sent"],
        "attempts": row["attempts"],
        "seconds": round(elapsed, 3),
        "rate": round(n / elapsed, 1),
        "first_sent_after_ms": round((row["first_sent"] - committed).total_seconds() * 1000, 1),
        "received_once": counts["once"],
        "concurrency": bench.concurrency,
        **cpu_pct,
    }


def _throughput_summary(runs: dict[str, list[dict]]) -> dict:
    floor = [r["rate"] for r in runs["floor"]]
    hub = [r["rate"] for r in runs["hub"]]
    ratios = [h / f for h, f in zip(hub, floor, strict=True)]
    return {
        "floor_rate": round(statistics.median(floor), 1),
        "floor_min": min(floor),
        "floor_max": max(floor),
        "hub_rate": round(statistics.median(hub), 1),
        "hub_min": min(hub),
        "hub_max": max(hub),
        "ratio": round(statistics.median(hub) / statistics.median(floor), 3),
        "ratio_per_repeat": [round(r, 3) for r in ratios],
        "floor_sender_cpu_pct": statistics.median(r["sender_cpu_pct"] for r in runs["floor"]),
        "hub_sender_cpu_pct": statistics.median(r["sender_cpu_pct"] for r in runs["hub"]),
        "floor_receiver_cpu_pct": statistics.median(r["receiver_cpu_pct"] for r in runs["floor"]),
        "hub_receiver_cpu_pct": statistics.median(r["receiver_cpu_pct"] for r in runs["hub"]),
        "hub_postgres_cpu_pct": statistics.median(r["postgres_cpu_pct"] for r in runs["hub"]),
    }


class _Cpu:
    """CPU of the sender (the floor's process or the dispatcher's), the receiver and Postgres over a
    phase, in % of one core."""

    def __init__(self, bench: Bench, sender: int) -> None:
        self.pids = {"sender": sender, "receiver": bench.receiver_child.pid}
        self.postgres = bench.postgres_pid
        self.began = time.monotonic()
        self.start = self._read()

    def _read(self) -> dict[str, float]:
        return {**{k: process_cpu_s(pid) for k, pid in self.pids.items()}, "postgres": tree_cpu_s(self.postgres)}

    def percent(self) -> dict[str, float]:
        wall = max(time.monotonic() - self.began, 1e-9)
        now = self._read()
        return {f"{k}_cpu_pct": round(100 * (now[k] - self.start[k]) / wall, 1) for k in now}


# --- latency -------------------------------------------------------------------------------------


async def _latency(bench: Bench, options: DispatchOptions, tag: str) -> dict:
    total = round(options.rate * options.seconds)
    bench.say(f"latency: {total:,} notices at {options.rate:g}/s for {options.seconds:g}s")
    conn = await asyncpg.connect(bench.dsn)
    ids: list[str] = []
    try:
        began = time.monotonic()
        written, writes, tick = 0, 0, 0
        while written < total:
            tick += 1
            await asyncio.sleep(max(0.0, began + tick * options.tick_s - time.monotonic()))
            due = min(total, int((time.monotonic() - began) * options.rate))
            if due > written:
                notes = _decisions(tag, written, due - written, len(bench.urls))
                await _write(conn, notes)
                ids += [note.notification_id for note in notes]
                written, writes = due, writes + 1
        offered_s = time.monotonic() - began
        await _wait_sent(bench, ids, 60)
        rows = await conn.fetch(
            "SELECT status, extract(epoch FROM created_at) AS at, "
            "extract(epoch FROM sent_at - created_at) * 1000 AS ms "
            "FROM customer_notifications WHERE notification_id = ANY($1)",
            ids,
        )
    finally:
        await conn.close()
    latencies = [float(r["ms"]) for r in rows if r["status"] == "sent"]
    by_time = [(float(r["at"]), float(r["ms"])) for r in rows if r["status"] == "sent"]
    counts = await _counts(bench, ids)
    summary = latency_summary(latencies)
    return {
        "offered": total,
        "offered_rate": round(total / offered_s, 1),
        "writes": writes,
        "sent": len(latencies),
        **summary,
        "p99_ms_by_fifth": windows(by_time),  # growing: the dispatcher did not keep up with --rate
        "received_once": counts["once"],
        "received_twice_or_more": counts["more"],
        "missing": counts["missing"],
        "exactly_once": counts["once"] == total,
    }


# --- the receiver's side ---------------------------------------------------------------------------


async def _counts(bench: Bench, ids: list[str]) -> dict[str, int]:
    async with httpx.AsyncClient() as client:
        counts = (await client.get(f"{bench.receiver}/counts")).json()
    seen = [counts.get(i, 0) for i in ids]
    return {
        "once": sum(1 for c in seen if c == 1),
        "more": sum(1 for c in seen if c > 1),
        "missing": sum(1 for c in seen if c == 0),
    }


async def _delivery(bench: Bench) -> dict:
    """Over the whole run (warm-up, floor, hub, latency): every id the receiver saw, and every
    notice in Postgres sent once, with one attempt."""
    async with httpx.AsyncClient() as client:
        counts: dict[str, int] = (await client.get(f"{bench.receiver}/counts")).json()
    conn = await asyncpg.connect(bench.dsn)
    try:
        rows = await conn.fetch("SELECT notification_id::text AS id, status, attempts FROM customer_notifications")
    finally:
        await conn.close()
    hub_ids = {r["id"] for r in rows}
    return {
        "notifications": len(rows),
        "sent": sum(1 for r in rows if r["status"] == "sent"),
        "not_sent": sum(1 for r in rows if r["status"] != "sent"),
        "received_once": sum(1 for r in rows if counts.get(r["id"]) == 1),
        "received_more_than_once": sum(1 for r in rows if counts.get(r["id"], 0) > 1),
        "never_received": sum(1 for r in rows if not counts.get(r["id"])),
        "floor_posts_received": sum(c for i, c in counts.items() if i not in hub_ids),
        "exactly_once": all(counts.get(r["id"]) == 1 and r["status"] == "sent" for r in rows),
    }


# --- output ----------------------------------------------------------------------------------------


def write(result: dict, out: Path) -> Path:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(orjson.dumps(result, option=orjson.OPT_INDENT_2).decode() + "\n")
    return out


def print_tables(console: Console, result: dict) -> None:
    c, t = result["concurrency"], result["throughput"]
    runs = result["runs"]
    table = Table(
        title=f"webhook dispatch: {result['options']['notifications']:,} per run, {len(runs['hub'])} repeats, "
        f"{c['endpoints']} endpoints; load {result['load_average_before']} on {result['machine']['nproc']} cores"
    )
    for column in ("measure", "concurrency", "rate/s median (min-max)", "sender CPU %", "receiver CPU %", "target"):
        table.add_column(column, justify="left" if column in ("measure", "target") else "right")
    table.add_row(
        "floor: bare httpx POST loop, signed",
        str(c["floor"]),
        f"{t['floor_rate']:,.0f} ({t['floor_min']:,.0f}-{t['floor_max']:,.0f})",
        f"{t['floor_sender_cpu_pct']:.0f}",
        f"{t['floor_receiver_cpu_pct']:.0f}",
        "",
    )
    table.add_row(
        "hub: Dispatcher, pending -> sent",
        f"{c['hub']} ({c['endpoints']} x {c['hub_per_endpoint']}, channel {c['hub_channel']})",
        f"{t['hub_rate']:,.0f} ({t['hub_min']:,.0f}-{t['hub_max']:,.0f})",
        f"{t['hub_sender_cpu_pct']:.0f}",
        f"{t['hub_receiver_cpu_pct']:.0f}",
        "",
    )
    met = result["targets"]
    table.add_row(
        "hub / floor",
        "",
        f"{t['ratio']:.2f} (per repeat {', '.join(f'{r:.2f}' for r in t['ratio_per_repeat'])})",
        "",
        "",
        f">= {TARGET_RATIO}: {'met' if met['throughput_ratio']['met'] else 'NOT MET'}",
    )
    console.print(table)
    latency = Table(title="pending -> sent (created_at -> sent_at in Postgres), paced writes")
    columns = ("run", "offered/s", "sent", "p50 ms", "p95 ms", "p99 ms", "max ms", "p99 by fifth", "received once")
    for column in (*columns, "target"):
        latency.add_column(column, justify="left" if column in ("run", "target") else "right")
    r = result["latency"]
    latency.add_row(
        "written as the store writes them",
        f"{r['offered_rate']:,.0f}",
        f"{r['sent']:,}",
        *(f"{r[k]:,.0f}" for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")),
        " ".join(f"{v:,.0f}" for v in r["p99_ms_by_fifth"]),
        f"{r['received_once']:,}/{r['offered']:,}",
        f"p99 <= {TARGET_P99_MS:.0f}: {'met' if r['p99_ms'] <= TARGET_P99_MS else 'NOT MET'}",
    )
    console.print(latency)
    if r["floor_below_rate"]:
        console.print(
            f"[yellow]even the floor sent at most {t['floor_max']:,.0f}/s, below the {r['offered_rate']:,.0f}/s "
            "offered: no httpx sender at this concurrency could keep up on this box at this load[/]"
        )
    d = result["delivery"]
    console.print(
        f"delivery over the whole run: {d['notifications']:,} notices, {d['sent']:,} sent, received once "
        f"{d['received_once']:,}, more than once {d['received_more_than_once']}, never {d['never_received']}; "
        f"exactly once: {d['exactly_once']}; load after {result['load_average_after']}"
    )
