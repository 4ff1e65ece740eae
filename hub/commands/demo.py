"""`hub demo`: one command to see the hub work.

Starts the embedded broker and Postgres (as `hub run` does), loads the simulator's customers,
runs the hub in-process while `hub simulate`'s traffic flows in, waits until the hub has
handled every message and published every alert, prints what happened, and stops it all.

The numbers cover this run only: rows created since it started, topic records from the
offsets the topics had when it started. Besides the hub's own counters, the summary carries
the same numbers counted again from Postgres and from the topics (`checks`), so a test, or
a sceptical reader of `--json`, can see that they agree.

The traffic runs on simulated time, `--speed` times faster than the wall clock, and so does
the hub's clock here: instead of the hub's real-time scheduler, the demo ticks the clock every
second at the simulated moment of the traffic the hub has handled, so SLA warnings and
breaches, stale shipments and overdue deliveries happen within the demo's minute, on the same
clock as the events' times.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from contextlib import suppress
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from hub.clock.engine import Clock
from hub.clock.lock import ClockBusy, locked_tick
from hub.commands._common import console, fail, hub_command, print_commands, print_second_terminal_hint, settings
from hub.commands._demo_dispatch import LocalReceivers, by_channel, create_secrets, settle, with_webhooks
from hub.commands._demo_dispatch import table as dispatch_table
from hub.commands.console import demo_console
from hub.commands.run import embedded_services
from hub.commands.simulate import TrafficReport, publish_traffic, topic_of
from hub.config import Settings
from hub.core.clock import Timer
from hub.core.outcome import BatchOutcome
from hub.dev.simulator import (
    DUPLICATE,
    ETA_SLIP,
    EXCEPTION,
    KINDS,
    LATE,
    MALFORMED,
    REPEAT_CONTACT,
    URGENT,
    PlannedMessage,
    customers,
    generate,
)
from hub.kafka import KafkaSetupError, aiokafka_kwargs, caught_up, ensure_topics, fetched_high_watermarks
from hub.logs import configure_logging
from hub.migrate import apply_migrations
from hub.ops.customers import import_customers
from hub.runtime import HubRuntime, StartupError
from hub.store.queries import OUTBOX_BACKLOG
from producers.feeds import DeliveryError
from schemas.outbound import Alert, DeadLetterHeaders, TimerSource

PROGRESS_EVERY_S = 5.0
SEVERITIES = ("P1", "P2", "P3", "P4")
# Simulated seconds per wall-clock second. The clock's shortest stale threshold is 12 h and most are
# 24-48 h (rules.yaml, clock.stale_after_hours): at 600x a minute covers 10 h and no shipment could go
# stale within it; at 7200x the minute covers five days, so tasks breach, shipments go stale and
# promises pass while one watches.
DEMO_SPEED = 7200.0
CLOCK_EVERY_S = 1.0  # wall seconds between the demo's ticks of the clock

DB_CLOCK = "SELECT clock_timestamp()"
EVENTS_BY_TOPIC = "SELECT topic, count(*) AS n FROM shipment_events WHERE recorded_at >= $1 GROUP BY topic"
CALLS_STORED = "SELECT count(*) FROM call_logs WHERE recorded_at >= $1"
TASKS_BY_DEPARTMENT = """
SELECT department, count(*) AS n FROM coordination_tasks WHERE created_at >= $1 GROUP BY department
"""
NOTIFICATIONS_BY_KIND = "SELECT kind, count(*) AS n FROM customer_notifications WHERE created_at >= $1 GROUP BY kind"
# The dispatcher's own tasks: a phone notice becomes a call_centre call-back, a failed notice a follow-up.
DISPATCH_TASKS = """
SELECT count(*) FROM coordination_tasks WHERE created_at >= $1 AND kind IN ('call_back', 'notification_failed')
"""
FAILED_NOTICES = "SELECT count(*) FROM customer_notifications WHERE created_at >= $1 AND status = 'failed'"
DEAD_LETTERS_BY_REASON = "SELECT reason, count(*) AS n FROM dead_letters WHERE created_at >= $1 GROUP BY reason"
# recorded_at is Postgres' own (wall) clock: the firings recorded during this run, whatever simulated moment fired them.
CLOCK_FIRINGS = """
SELECT timer, CASE WHEN timer = 'sla_breach' THEN key ELSE '' END AS level, count(*) AS n
FROM clock_firings WHERE recorded_at >= $1 GROUP BY 1, 2
"""


@dataclass
class ClockCounts:
    """Timers of the clock that fired, by kind; breaches by level ("1": supervisor, "2": manager)."""

    sla_warnings: int = 0
    sla_breaches: dict[str, int] = field(default_factory=lambda: {"1": 0, "2": 0})
    stale_shipments: int = 0
    delivery_overdue: int = 0
    key_account_reviews: int = 0
    other: dict[str, int] = field(default_factory=dict)  # timers this demo does not know yet

    def add(self, timer: str, key: str, n: int = 1) -> None:
        if timer == Timer.SLA_BREACH:
            self.sla_breaches[key] = self.sla_breaches.get(key, 0) + n
        elif timer == Timer.SLA_WARNING:
            self.sla_warnings += n
        elif timer == Timer.STALE_SHIPMENT:
            self.stale_shipments += n
        elif timer == Timer.DELIVERY_OVERDUE:
            self.delivery_overdue += n
        elif timer == Timer.KEY_ACCOUNT_REVIEW:
            self.key_account_reviews += n
        else:
            self.other[timer] = self.other.get(timer, 0) + n


@dataclass
class DemoClock:
    """The hub's clock during the run, ticked by the demo at the traffic's simulated time."""

    speed: float  # simulated seconds per wall-clock second
    timezone: str  # of the times on screen (HUB_TIMEZONE)
    simulated_start: str  # the traffic's first simulated moment
    simulated_end: str  # the last tick's simulated now: the traffic's last moment
    ticks: int
    fired: ClockCounts  # from the engine's tick reports
    alerts: int  # alerts the clock queued (sla_* on alerts.escalations, stale and overdue on alerts.exceptions)
    tasks: int
    notifications: int


@dataclass
class Checks:
    """The summary's numbers counted again, independently, just before shutdown."""

    hub_alerts: dict[str, dict[str, int]]  # the hub's counters: alert topic -> severity -> alerts
    hub_tasks: int
    hub_notifications: int
    postgres_events: dict[str, int]  # inbound topic -> rows in shipment_events / call_logs
    postgres_dead_letters: dict[str, int]  # reason -> rows in dead_letters
    topic_records: dict[str, int]  # inbound topic -> records published during the run
    topic_dead_letters: dict[str, int]  # reason (hub.errors.reason header) -> records on the dead-letter topic
    topic_alert_copies: int  # alert records on the topics, re-sends included
    outbox_unsent: int
    clock_alerts: dict[str, dict[str, int]]  # the clock's alerts read back from the topics: topic -> severity -> alerts
    topic_clock_alerts: ClockCounts  # the same alerts by timer (key_account_review raises none)
    postgres_clock_firings: ClockCounts  # rows of clock_firings recorded during the run
    dispatch_tasks: int = 0  # call-backs for phone notices and follow-ups of failed ones (with an alert each)
    failed_notices: int = 0  # notices the dispatcher gave up on (each raised a notification_failed alert)


@dataclass
class DemoSummary:
    seed: int
    rate: float
    duration_s: float
    traffic_start: str
    drained: bool  # the hub handled every message and published every alert in time
    sent: dict[str, int]  # inbound topic -> messages the simulator published
    sent_special: dict[str, int]  # simulator tag (duplicate, late, malformed, exception:damaged, ...) -> messages
    records_consumed: int  # records the hub's consumer handled (each copy of a duplicate counts)
    processed: dict[str, int]  # inbound topic -> events stored (first copies)
    duplicates: dict[str, int]  # inbound topic -> copies recognised and skipped
    dead_lettered: dict[str, int]  # inbound topic -> records sent to the dead-letter topic
    dead_letters: dict[str, int]  # reason -> records (the hub's counters)
    alerts: dict[str, dict[str, int]]  # alert topic -> severity -> distinct alert_ids read back (events' and clock's)
    tasks_by_department: dict[str, int]  # from coordination_tasks
    notifications_by_kind: dict[str, int]  # from customer_notifications
    elapsed_s: float  # from the first message published to the last effect published
    events_per_second: float
    busy_s: float  # time the hub spent inside its batches
    clock: DemoClock
    checks: Checks
    dispatch: DemoDispatch | None = None  # notifications per channel and status, and what the receivers got
    examples: dict[str, str] = field(default_factory=dict)  # a shipment, customer, dead letter to look at next

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


@dataclass
class DemoDispatch:
    by_channel: dict[str, dict[str, int]]  # channel -> status -> notifications of this run
    received: dict[str, int]  # what the local receivers got, per channel


@dataclass
class _Busy:
    seconds: float = 0.0

    def on_batch(self, outcome: BatchOutcome, elapsed_s: float) -> None:
        self.seconds += elapsed_s


# ------------------------------------------------------------------------------ the command


def register(app: typer.Typer) -> None:
    @app.command()
    def demo(
        duration: float = typer.Option(60.0, "--duration", min=1.0, help="Seconds of simulated traffic"),
        rate: float = typer.Option(200.0, "--rate", min=1.0, help="Messages per second"),
        seed: int = typer.Option(7, "--seed", help="Seed of the simulated traffic and customers"),
        speed: float = typer.Option(
            DEMO_SPEED,
            "--speed",
            min=1.0,
            help="Simulated seconds per wall-clock second, for the traffic and the clock",
        ),
        exception_rate: float = typer.Option(
            0.10, "--exception-rate", min=0.0, max=1.0, help="Share of shipments that hit an incident"
        ),
        json_file: Path | None = typer.Option(
            None, "--json", dir_okay=False, help="Also write the summary (and its cross-checks) as JSON"
        ),
        web_console: bool = typer.Option(
            True,
            "--console/--no-console",
            help="Also serve the web console (HUB_CONSOLE_PORT) with a login for this run",
        ),
    ) -> None:
        """See the hub work: embedded broker and Postgres, simulated traffic, a summary, then a clean stop.

        Postgres data stays in HUB_DATA_DIR (default ./.hub); the broker keeps messages in memory only.
        The demo never touches the servers named by HUB_KAFKA_BOOTSTRAP / HUB_DATABASE_URL.
        """
        s = settings()
        # The hub logs a line per batch; in a demo that would bury the story. HUB_LOG_LEVEL still wins.
        configure_logging(s.log_level if "log_level" in s.model_fields_set else "WARNING", s.log_format)
        if s.kafka_bootstrap or s.database_url:
            console.print(
                "[yellow]note:[/] the demo brings its own broker and Postgres; "
                "HUB_KAFKA_BOOTSTRAP and HUB_DATABASE_URL are ignored"
            )
        s = s.model_copy(update={"kafka_bootstrap": None, "database_url": None, "migrate_database_url": None})
        with embedded_services(s) as s:
            _print_watch_hint(s)
            summary = _run(s, _Traffic(seed, rate, duration, speed, exception_rate), web_console)
        print_summary(console, s, summary)
        if json_file is not None:
            json_file.write_bytes(summary.to_json())
            console.print(f"summary written to {json_file}")
        console.print(
            f"stopped the hub, the embedded broker and Postgres (Postgres data kept in {Path(s.data_dir) / 'postgres'})"
        )
        print_next_steps(summary.examples)
        if not summary.drained:
            fail(
                "the hub did not finish handling the traffic in time; the numbers above are partial. "
                "Try a lower --rate, or look for warnings above."
            )


# What the demo leaves in Postgres, and where to look next: a shipment whose customer is known, with
# the most escalated task of the run, and a dead letter.
EXAMPLE_SHIPMENT = """
SELECT s.shipment_id AS shipment, s.customer_id AS customer
FROM coordination_tasks AS t JOIN shipments AS s USING (shipment_id)
WHERE t.created_at >= $1 AND s.customer_id IS NOT NULL AND s.status IS NOT NULL
ORDER BY t.escalation_level DESC, t.severity, t.created_at LIMIT 1
"""
EXAMPLE_DEAD_LETTER = "SELECT id::text FROM dead_letters WHERE created_at >= $1 ORDER BY created_at LIMIT 1"


async def _examples(conn: asyncpg.Connection, since: datetime) -> dict[str, str]:
    row = await conn.fetchrow(EXAMPLE_SHIPMENT, since)
    found = dict(row) if row else {}
    found["dead_letter"] = await conn.fetchval(EXAMPLE_DEAD_LETTER, since)
    return {name: value for name, value in found.items() if value}


def next_steps(examples: dict[str, str]) -> list[tuple[str, str]]:
    """The commands to run after the demo, on the data it left (ids from `examples` where there are some)."""
    steps = [
        ("tasks list --breached", "tasks past their SLA, and who has them now"),
        ("tasks list --department claims", "one department's queue"),
    ]
    if "shipment" in examples:
        steps.append((f"shipment {examples['shipment']}", "one shipment: its history, tasks and notices"))
    if "customer" in examples:
        steps.append((f"customers show {examples['customer']}", "its customer, and what the hub holds about them"))
    steps.append(("notifications list --status failed", "notices that could not be sent, and why"))
    if "dead_letter" in examples:
        steps.append((f"dlq show {examples['dead_letter']}", "a message the hub could not process, and why"))
    else:
        steps.append(("dlq list", "messages the hub could not process, and why"))
    return steps


def print_next_steps(examples: dict[str, str]) -> None:
    hub = hub_command()
    console.print(
        f"next: the demo's data is still in Postgres. Start [bold]{hub} run[/] (the same embedded Postgres, an empty "
        "broker), paste the export line it prints into a second terminal, and run there:",
        soft_wrap=True,
        highlight=False,
    )
    print_commands(next_steps(examples))


def _print_watch_hint(s: Settings) -> None:
    print_second_terminal_hint(
        s,
        True,
        [("alerts watch", "alerts as they are published"), ("tasks list", "the coordination tasks raised so far")],
    )
    console.print("(both servers stop when the demo ends)")
    console.print(
        "[dim]times there: the traffic and the clock run on simulated time (event times, every `due`, and "
        "`created` of the clock's sla_*, stale and overdue alerts); alerts raised by events are `created` "
        "on the wall clock, which also judges what those views call overdue[/]",
        soft_wrap=True,
    )


@dataclass(frozen=True)
class _Traffic:
    seed: int
    rate: float
    duration_s: float
    speed: float = DEMO_SPEED
    exception_rate: float = 0.10

    def generate(self, start: datetime) -> Iterator[PlannedMessage]:
        return generate(
            self.seed, self.rate, self.duration_s, start=start, speed=self.speed, exception_rate=self.exception_rate
        )


def _run(s: Settings, traffic: _Traffic, web_console: bool = False) -> DemoSummary:
    try:
        applied = asyncio.run(apply_migrations(s.dsn))
        if applied:
            console.print(f"migrated the embedded database: {', '.join(applied)}")
        with demo_console(s) if web_console else contextlib.nullcontext():
            return asyncio.run(run_demo(s, traffic))
    except KeyboardInterrupt:
        fail("interrupted; everything the demo started has been stopped", code=130)
    except (StartupError, KafkaSetupError) as exc:
        fail(str(exc))
    except ClockBusy as exc:
        fail(f"{exc}; is a `hub tick` running against the demo's database?")
    except DeliveryError as exc:
        fail(f"the embedded broker refused traffic ({exc}); look at {Path(s.data_dir) / 'logs' / 'tansu.log'}")
    except (OSError, KafkaError, asyncpg.PostgresError) as exc:
        fail(f"the embedded services stopped answering ({type(exc).__name__}: {exc}); see the logs in {s.data_dir}")


# ------------------------------------------------------------------------------- the run


async def run_demo(s: Settings, traffic: _Traffic) -> DemoSummary:
    """Import customers, run the hub, the simulator and the clock, wait for the hub to drain, count."""
    conn = await asyncpg.connect(s.dsn)
    try:
        since = await conn.fetchval(DB_CLOCK)
        receivers = LocalReceivers()
        await receivers.start()
        register = with_webhooks(customers(traffic.seed), receivers)
        await import_customers(conn, register)
        hooked = await create_secrets(conn, register)
        console.print(
            f"imported {len(register)} customers ({sum(c.tier.value == 'key' for c in register)} key accounts, "
            f"{hooked} receiving their notices by webhook); notifications go to a local SMTP sink and HTTP "
            f"receiver (webhooks, SMS and WeChat gateways)"
        )
        await ensure_topics(s)
        watched = [*s.inbound_topics, *s.alert_topics, s.dead_letter_topic]
        start_offsets = await _current_ends(s, watched)
        traffic_start = datetime.now(UTC).replace(microsecond=0)
        busy = _Busy()
        # The real-time scheduler would tick at wall time, days behind the traffic's, and hold the
        # clock lock all along: the demo ticks the clock itself, at simulated time.
        hub_settings = receivers.settings(s.model_copy(update={"scheduler_interval_s": 0.0}))
        async with HubRuntime(hub_settings, on_batch=busy.on_batch) as runtime:
            assert runtime.rules is not None  # loaded by start()
            clock = _SimulatedClock(Clock.of(s, runtime.rules), runtime, traffic_start, traffic.speed)
            feed = await _feed_and_drain(s, runtime, conn, clock, traffic, traffic_start)
            await settle(conn, timeout_s=30)
            stored = await _stored_counts(conn, since, s.topic_call_logs)
            on_topics = await _topic_counts(s, start_offsets, since)
            unsent = await conn.fetchval(OUTBOX_BACKLOG)
            dispatched = DemoDispatch(await by_channel(conn, since), receivers.received())
        summary = _summary(s, traffic.seed, traffic_start, feed, runtime, busy, clock, stored, on_topics, unsent)
        summary.dispatch = dispatched
        summary.examples = await _examples(conn, since)
        return summary
    finally:
        await receivers.stop()
        await conn.close()


class _SimulatedClock:
    """Ticks the hub's clock (hub.clock.engine.tick, under the clock lock) at simulated time.

    Its `now` is the simulated moment of the latest message the hub has handled: the traffic's
    own time, which follows `start + wall seconds x speed` only on average (the simulator's births
    are random: at 3600x it drifts hours from it over a minute), and never ahead of what the hub
    has seen, so a shipment whose next event is merely still in flight is not called stale.
    """

    def __init__(self, clock: Clock, runtime: HubRuntime, start: datetime, speed: float) -> None:
        self.clock, self.runtime, self.start, self.speed = clock, runtime, start, speed
        self.arrivals: list[float] = []  # simulated seconds after start of each message handed to the sender, in order
        self.fired = ClockCounts()
        self.ticks = self.alerts = self.tasks = self.notifications = 0
        self.last = start

    def timed(self, messages: Iterable[PlannedMessage]) -> Iterator[PlannedMessage]:
        for message in messages:
            self.arrivals.append(message.simulated_s)
            yield message

    def now(self) -> datetime:
        handled = min(self.runtime.totals.records, len(self.arrivals))
        return self.start + timedelta(seconds=self.arrivals[handled - 1]) if handled else self.start

    def end(self) -> datetime:
        """The traffic's last simulated moment."""
        return self.start + timedelta(seconds=self.arrivals[-1]) if self.arrivals else self.start

    async def run(self, dsn: str, stop: asyncio.Event) -> None:
        """Tick every CLOCK_EVERY_S until `stop`, then once more at the traffic's last moment."""
        conn = await asyncpg.connect(dsn)  # its own: ticks run while the demo polls on its connection
        try:
            while not stop.is_set():
                now = self.now()
                if self.ticks == 0 or now > self.last:
                    await self._tick(conn, now)
                with suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), CLOCK_EVERY_S)
            await self._tick(conn, max(self.end(), self.last))
        finally:
            await conn.close()

    async def _tick(self, conn: asyncpg.Connection, now: datetime) -> None:
        report = await locked_tick(conn, now, self.clock)
        self.ticks += 1
        self.last = now
        for firing in report.fired:
            self.fired.add(firing.timer.value, firing.key)
        self.alerts += report.alerts
        self.tasks += report.tasks
        self.notifications += report.notifications


@dataclass
class _Feed:
    rate: float
    duration_s: float
    report: TrafficReport
    elapsed_s: float  # from the first message sent until the hub had drained
    drained: bool


async def _feed_and_drain(
    s: Settings,
    runtime: HubRuntime,
    conn: asyncpg.Connection,
    clock: _SimulatedClock,
    traffic: _Traffic,
    traffic_start: datetime,
) -> _Feed:
    total = round(traffic.rate * traffic.duration_s)
    zone = s.zone
    console.print(
        f"sending {total:,} messages at {traffic.rate:g}/s for {traffic.duration_s:g}s (seed {traffic.seed}) "
        f"on simulated time, {traffic.speed:g}x the wall clock: it starts at "
        f"{traffic_start.astimezone(zone):%a %Y-%m-%d %H:%M} ({s.timezone}) and covers about "
        f"{_span(traffic.duration_s * traffic.speed)}; the clock ticks every {CLOCK_EVERY_S:g}s at simulated time ...",
        soft_wrap=True,
    )
    report = TrafficReport()
    began = time.monotonic()
    stop_clock = asyncio.Event()
    ticking = asyncio.create_task(clock.run(s.dsn, stop_clock), name="demo-clock")
    try:
        sender = asyncio.create_task(publish_traffic(s, clock.timed(traffic.generate(traffic_start)), report))
        while not sender.done():
            await asyncio.wait({sender, ticking}, timeout=PROGRESS_EVERY_S, return_when=asyncio.FIRST_COMPLETED)
            if ticking.done():  # the clock failed: stop the traffic, raise the clock's error
                sender.cancel()
                await asyncio.gather(sender, return_exceptions=True)
                ticking.result()
            _progress(time.monotonic() - began, clock, report, total, runtime)
        await sender  # raises DeliveryError if the broker refused a record
        console.print(
            "all sent; waiting for the hub to handle the last messages and publish their alerts ...", soft_wrap=True
        )
        timeout_s = max(60.0, traffic.duration_s)
        drained = await _wait_drained(runtime, conn, report.total, timeout_s)
    except BaseException:
        ticking.cancel()
        await asyncio.gather(ticking, return_exceptions=True)
        raise
    stop_clock.set()
    await ticking  # its last tick is at the traffic's last simulated moment, and its alerts must go out too
    drained = drained and await _wait_drained(runtime, conn, report.total, timeout_s)
    return _Feed(traffic.rate, traffic.duration_s, report, time.monotonic() - began, drained)


def _span(seconds: float) -> str:
    hours = seconds / 3600
    return f"{hours:.0f} simulated hours" if hours < 48 else f"{hours / 24:.1f} simulated days"


def _progress(elapsed: float, clock: _SimulatedClock, report: TrafficReport, total: int, runtime: HubRuntime) -> None:
    t, fired = runtime.totals, clock.fired
    console.print(
        f"  {elapsed:5.0f}s  simulated {clock.now().astimezone(clock.clock.timezone):%a %H:%M}  "
        f"sent {report.total:>8,} / {total:,}   hub: {t.records:,} handled, "
        f"{sum(t.alerts.values()):,} alerts, {t.tasks:,} tasks, {t.notifications:,} notifications, "
        f"{sum(t.dead_lettered.values()):,} dead letters   clock: {fired.sla_warnings:,} warnings, "
        f"{sum(fired.sla_breaches.values()):,} breaches, {fired.stale_shipments:,} stale, "
        f"{fired.delivery_overdue:,} overdue",
        soft_wrap=True,
    )


async def _wait_drained(runtime: HubRuntime, conn: asyncpg.Connection, expected: int, timeout_s: float) -> bool:
    """Every published record handled (consumer caught up) and every alert and dead letter relayed."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if runtime.totals.records >= expected and await conn.fetchval(OUTBOX_BACKLOG) == 0:
            return True
        await asyncio.sleep(0.2)
    return False


# ------------------------------------------------------------------------ counting it again


@dataclass
class _Stored:
    """What Postgres holds from this run."""

    events: dict[str, int]  # inbound topic -> history rows (shipment_events, call_logs)
    tasks: dict[str, int]  # department -> tasks
    notifications: dict[str, int]  # kind -> notifications
    dead_letters: dict[str, int]  # reason -> dead letters
    clock_firings: ClockCounts
    dispatch_tasks: int
    failed_notices: int


async def _stored_counts(conn: asyncpg.Connection, since: datetime, call_logs_topic: str) -> _Stored:
    async def grouped(sql: str) -> dict[str, int]:
        return {row[0]: row["n"] for row in await conn.fetch(sql, since)}

    events = await grouped(EVENTS_BY_TOPIC)
    events[call_logs_topic] = await conn.fetchval(CALLS_STORED, since)
    firings = ClockCounts()
    for row in await conn.fetch(CLOCK_FIRINGS, since):
        firings.add(row["timer"], row["level"], row["n"])
    return _Stored(
        events,
        await grouped(TASKS_BY_DEPARTMENT),
        await grouped(NOTIFICATIONS_BY_KIND),
        await grouped(DEAD_LETTERS_BY_REASON),
        firings,
        await conn.fetchval(DISPATCH_TASKS, since),
        await conn.fetchval(FAILED_NOTICES, since),
    )


@dataclass
class _TopicCounts:
    records: dict[str, int] = field(default_factory=dict)  # topic -> records since the start offsets
    alerts: dict[str, dict[str, set[str]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(set)))
    clock_alerts: dict[str, dict[str, set[str]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(set)))
    clock_alerts_by_timer: dict[tuple[str, str], set[str]] = field(default_factory=lambda: defaultdict(set))
    alert_copies: int = 0
    dead_letters: Counter = field(default_factory=Counter)


async def _current_ends(s: Settings, topics: list[str]) -> dict[TopicPartition, int]:
    consumer = await _reader(s)
    try:
        partitions = _partitions(consumer, topics)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        return await fetched_high_watermarks(consumer, partitions)
    finally:
        await consumer.stop()


async def _reader(s: Settings) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        **aiokafka_kwargs(s), group_id=None, enable_auto_commit=False, client_id=f"{s.client_id}-demo-reader"
    )
    await consumer.start()
    return consumer


def _partitions(consumer: AIOKafkaConsumer, topics: list[str]) -> list[TopicPartition]:
    found = []
    for topic in topics:
        partitions = consumer.partitions_for_topic(topic)
        if not partitions:
            raise KafkaError(f"topic {topic} has no partitions in the broker's metadata")
        found += [TopicPartition(topic, p) for p in sorted(partitions)]
    return found


async def _topic_counts(s: Settings, starts: dict[TopicPartition, int], since: datetime) -> _TopicCounts:
    """Read every watched topic from its start offset to its end, counting what this run produced.

    Called once the hub is drained, so nothing is written meanwhile and the ends stay where they are.
    """
    counts = _TopicCounts(records={tp.topic: 0 for tp in starts})
    alert_topics, dead_letter = set(s.alert_topics), s.dead_letter_topic
    consumer = await _reader(s)
    try:
        consumer.assign(list(starts))
        for tp, offset in starts.items():
            consumer.seek(tp, offset)
        deadline = time.monotonic() + 60
        while not await caught_up(consumer, list(starts)):
            if time.monotonic() > deadline:
                raise KafkaError("the topics could not be read back within 60 s")
            batches = await consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    counts.records[tp.topic] += 1
                    if tp.topic in alert_topics:
                        _count_alert(counts, tp.topic, record.value, since)
                    elif tp.topic == dead_letter:
                        _count_dead_letter(counts, record.headers, since)
    finally:
        await consumer.stop()
    return counts


def _count_alert(counts: _TopicCounts, topic: str, value: bytes | None, since: datetime) -> None:
    try:
        alert = Alert.model_validate_json(value or b"")
    except ValidationError:
        return  # not an alert of this contract version; not this run's
    # An earlier run's alert relayed late belongs to that run. (The clock's alerts are created at
    # simulated time, which starts at the wall clock's now and runs ahead of it.)
    if alert.created_at >= since:
        counts.alert_copies += 1
        counts.alerts[topic][alert.severity.value].add(alert.alert_id)
        if isinstance(alert.source, TimerSource):
            counts.clock_alerts[topic][alert.severity.value].add(alert.alert_id)
            level = str(alert.level) if alert.source.timer == Timer.SLA_BREACH else ""
            counts.clock_alerts_by_timer[alert.source.timer, level].add(alert.alert_id)


def _count_dead_letter(counts: _TopicCounts, headers: list | None, since: datetime) -> None:
    try:
        info = DeadLetterHeaders.from_kafka([(k, v or b"") for k, v in headers or ()])
    except (KeyError, ValueError):
        return
    if info.timestamp >= since:
        counts.dead_letters[info.reason.value] += 1


# ------------------------------------------------------------------------------ the summary


def _summary(
    s: Settings,
    seed: int,
    traffic_start: datetime,
    feed: _Feed,
    runtime: HubRuntime,
    busy: _Busy,
    clock: _SimulatedClock,
    stored: _Stored,
    on_topics: _TopicCounts,
    unsent: int,
) -> DemoSummary:
    t = runtime.totals
    inbound = [topic_of(s, kind) for kind in KINDS]
    alert_topic = {queue.value: topic for queue, topic in s.queues.items()}
    hub_alerts: dict[str, dict[str, int]] = defaultdict(dict)
    for (queue, severity), n in t.alerts.items():
        hub_alerts[alert_topic[queue]][severity] = n
    topic_clock_alerts = ClockCounts()
    for (timer, level), ids in on_topics.clock_alerts_by_timer.items():
        topic_clock_alerts.add(timer, level, len(ids))
    return DemoSummary(
        seed=seed,
        rate=feed.rate,
        duration_s=feed.duration_s,
        traffic_start=traffic_start.isoformat(),
        drained=feed.drained,
        sent={topic_of(s, kind): feed.report.sent[kind] for kind in KINDS},
        sent_special=dict(sorted(feed.report.tags.items())),
        records_consumed=t.records,
        processed={topic: t.by_topic.get(topic, 0) for topic in inbound},
        duplicates={topic: t.duplicates_by_topic.get(topic, 0) for topic in inbound},
        dead_lettered={topic: t.dead_lettered_by_topic.get(topic, 0) for topic in inbound},
        dead_letters=dict(t.dead_lettered),
        alerts=_distinct(on_topics.alerts),
        tasks_by_department=stored.tasks,
        notifications_by_kind=stored.notifications,
        elapsed_s=round(feed.elapsed_s, 3),
        events_per_second=round(t.records / feed.elapsed_s, 1) if feed.elapsed_s else 0.0,
        busy_s=round(busy.seconds, 3),
        clock=DemoClock(
            speed=clock.speed,
            timezone=s.timezone,
            simulated_start=traffic_start.isoformat(),
            simulated_end=clock.last.isoformat(),
            ticks=clock.ticks,
            fired=clock.fired,
            alerts=clock.alerts,
            tasks=clock.tasks,
            notifications=clock.notifications,
        ),
        checks=Checks(
            hub_alerts=dict(hub_alerts),
            hub_tasks=t.tasks,
            hub_notifications=t.notifications,
            postgres_events={topic: stored.events.get(topic, 0) for topic in inbound},
            postgres_dead_letters=stored.dead_letters,
            topic_records={topic: on_topics.records.get(topic, 0) for topic in inbound},
            topic_dead_letters=dict(on_topics.dead_letters),
            topic_alert_copies=on_topics.alert_copies,
            outbox_unsent=unsent,
            clock_alerts=_distinct(on_topics.clock_alerts),
            topic_clock_alerts=topic_clock_alerts,
            postgres_clock_firings=stored.clock_firings,
            dispatch_tasks=stored.dispatch_tasks,
            failed_notices=stored.failed_notices,
        ),
    )


def _distinct(alerts: dict[str, dict[str, set[str]]]) -> dict[str, dict[str, int]]:
    return {topic: {sev: len(ids) for sev, ids in by_severity.items()} for topic, by_severity in alerts.items()}


def print_summary(out: Console, s: Settings, summary: DemoSummary) -> None:
    out.rule("[bold]what the hub did[/]")
    out.print(_events_table(summary))
    out.print(_alerts_table(summary, s.alert_topics))
    out.print(_clock_table(summary.clock))
    out.print(_clock_line(summary.clock), soft_wrap=True)
    out.print(_count_table("tasks per department", "department", summary.tasks_by_department))
    out.print(_count_table("customer notifications per kind", "kind", summary.notifications_by_kind))
    if summary.dispatch is not None:
        out.print(dispatch_table(summary.dispatch.by_channel, summary.dispatch.received))
    out.print(_count_table("dead letters per reason", "reason", summary.dead_letters))
    out.print(_special_line(summary), soft_wrap=True)
    out.print(
        f"[bold]{summary.records_consumed:,}[/] events in {summary.elapsed_s:.1f}s: "
        f"[bold]{summary.events_per_second:,.0f} events/s[/] end to end (paced by the simulator); "
        f"the hub was busy {summary.busy_s:.1f}s of it",
        soft_wrap=True,
    )


def _special_line(summary: DemoSummary) -> str:
    tags = summary.sent_special
    return (
        f"the traffic held {tags.get(EXCEPTION, 0):,} incidents, {tags.get(ETA_SLIP, 0):,} ETA slips, "
        f"{tags.get(URGENT, 0):,} urgent shipments and orders, {tags.get(REPEAT_CONTACT, 0):,} repeat contacts, "
        f"{tags.get(LATE, 0):,} late events, {tags.get(DUPLICATE, 0):,} exact duplicates (the hub skipped "
        f"{sum(summary.duplicates.values()):,}) and {tags.get(MALFORMED, 0):,} malformed messages (the hub "
        f"dead-lettered {sum(summary.dead_letters.values()):,})"
    )


def _events_table(summary: DemoSummary) -> Table:
    table = Table(title="events in, per stream")
    for name in ("topic", "sent", "stored", "duplicates skipped", "dead-lettered"):
        table.add_column(name, justify="left" if name == "topic" else "right")
    for topic, sent in summary.sent.items():
        table.add_row(
            topic,
            f"{sent:,}",
            f"{summary.processed.get(topic, 0):,}",
            f"{summary.duplicates.get(topic, 0):,}",
            f"{summary.dead_lettered.get(topic, 0):,}",
        )
    return table


def _alerts_table(summary: DemoSummary, queues: tuple[str, ...]) -> Table:
    table = Table(title="alerts per queue and severity (from the topics: the events' and the clock's)")
    table.add_column("queue")
    for severity in SEVERITIES:
        table.add_column(severity, justify="right")
    table.add_column("total", justify="right")
    for topic in queues:
        row = summary.alerts.get(topic, {})
        table.add_row(topic, *(f"{row.get(sev, 0):,}" for sev in SEVERITIES), f"[bold]{sum(row.values()):,}[/]")
    return table


_OTHER_TIMERS = {
    "delivery_survey": "notification: a survey a day after delivery (key accounts and a sample)",
    "complaint_follow_up": "notification: a survey a day after a complaint closed (key accounts: a visit task too)",
    "monthly_statement": "notification: last month's statement, for each customer with shipments",
}


def _clock_table(clock: DemoClock) -> Table:
    fired = clock.fired
    table = Table(title="the clock: timers fired (at simulated time)")
    table.add_column("timer")
    table.add_column("fired", justify="right")
    table.add_column("what it did")
    rows = [
        ("sla_warning", fired.sla_warnings, "alerts.escalations: a task is due soon (75% of its window)"),
        ("sla_breach level 1", fired.sla_breaches.get("1", 0), "alerts.escalations: past due, to the supervisor"),
        ("sla_breach level 2", fired.sla_breaches.get("2", 0), "alerts.escalations: a window later, to the manager"),
        ("stale_shipment", fired.stale_shipments, "alerts.exceptions + task: no movement for its status' threshold"),
        ("delivery_overdue", fired.delivery_overdue, "alerts.exceptions + task: the promised delivery passed"),
        ("key_account_review", fired.key_account_reviews, "task only: the month's review of each key account"),
        *((timer, n, _OTHER_TIMERS.get(timer, "")) for timer, n in sorted(fired.other.items())),
    ]
    for timer, n, what in rows:
        table.add_row(timer, f"{n:,}", what)
    return table


def _clock_line(clock: DemoClock) -> str:
    zone = ZoneInfo(clock.timezone)
    start = datetime.fromisoformat(clock.simulated_start).astimezone(zone)
    end = datetime.fromisoformat(clock.simulated_end).astimezone(zone)
    per_second = clock.speed / 3600
    pace = f"{per_second:g} simulated hours" if per_second >= 1 else f"{clock.speed / 60:g} simulated minutes"
    return (
        f"simulated time ran {clock.speed:g}x the wall clock ({pace} a second): from {start:%a %m-%d %H:%M} "
        f"to {end:%a %m-%d %H:%M} ({clock.timezone}), {clock.ticks:,} ticks of the clock. On simulated time: "
        f"event times, every task's and alert's due, and created_at of the clock's alerts; on the wall clock: "
        f"created_at of the alerts raised by events, and the seconds above"
    )


def _count_table(title: str, label: str, counts: dict[str, int]) -> Table:
    table = Table(title=title)
    table.add_column(label)
    table.add_column("count", justify="right")
    for name, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        table.add_row(name, f"{n:,}")
    table.add_row("[bold]total[/]", f"[bold]{sum(counts.values()):,}[/]")
    return table
