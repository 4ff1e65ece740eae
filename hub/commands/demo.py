"""`hub demo`: one command to see the hub work.

Starts the embedded broker and Postgres (as `hub run` does), loads the simulator's customers,
runs the hub in-process while `hub simulate`'s traffic flows in, waits until the hub has
handled every message and published every alert, prints what happened, and stops it all.

The numbers cover this run only: rows created since it started, topic records from the
offsets the topics had when it started. Besides the hub's own counters, the summary carries
the same numbers counted again from Postgres and from the topics (`checks`), so a test, or
a sceptical reader of `--json`, can see that they agree.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import orjson
import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from hub.commands._common import console, fail, print_second_terminal_hint, settings
from hub.commands.run import embedded_services
from hub.commands.simulate import TrafficReport, publish_traffic, topic_of
from hub.config import Settings
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
from schemas.outbound import Alert, DeadLetterHeaders

PROGRESS_EVERY_S = 5.0
SEVERITIES = ("P1", "P2", "P3", "P4")

DB_CLOCK = "SELECT clock_timestamp()"
EVENTS_BY_TOPIC = "SELECT topic, count(*) AS n FROM shipment_events WHERE recorded_at >= $1 GROUP BY topic"
CALLS_STORED = "SELECT count(*) FROM call_logs WHERE recorded_at >= $1"
TASKS_BY_DEPARTMENT = """
SELECT department, count(*) AS n FROM coordination_tasks WHERE created_at >= $1 GROUP BY department
"""
NOTIFICATIONS_BY_KIND = "SELECT kind, count(*) AS n FROM customer_notifications WHERE created_at >= $1 GROUP BY kind"
DEAD_LETTERS_BY_REASON = "SELECT reason, count(*) AS n FROM dead_letters WHERE created_at >= $1 GROUP BY reason"


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
    alerts: dict[str, dict[str, int]]  # alert topic -> severity -> distinct alert_ids read back from the topic
    tasks_by_department: dict[str, int]  # from coordination_tasks
    notifications_by_kind: dict[str, int]  # from customer_notifications
    elapsed_s: float  # from the first message published to the last effect published
    events_per_second: float
    busy_s: float  # time the hub spent inside its batches
    checks: Checks

    def to_json(self) -> bytes:
        return orjson.dumps(asdict(self), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)


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
        json_file: Path | None = typer.Option(
            None, "--json", dir_okay=False, help="Also write the summary (and its cross-checks) as JSON"
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
            summary = _run(s, seed, rate, duration)
        print_summary(console, s, summary)
        if json_file is not None:
            json_file.write_bytes(summary.to_json())
            console.print(f"summary written to {json_file}")
        console.print(
            f"stopped the hub, the embedded broker and Postgres (Postgres data kept in {Path(s.data_dir) / 'postgres'})"
        )
        if not summary.drained:
            fail(
                "the hub did not finish handling the traffic in time; the numbers above are partial. "
                "Try a lower --rate, or look for warnings above."
            )


def _print_watch_hint(s: Settings) -> None:
    print_second_terminal_hint(
        s,
        True,
        [("alerts watch", "alerts as they are published"), ("tasks list", "the coordination tasks raised so far")],
    )
    console.print("(both servers stop when the demo ends)")


def _run(s: Settings, seed: int, rate: float, duration: float) -> DemoSummary:
    try:
        applied = asyncio.run(apply_migrations(s.dsn))
        if applied:
            console.print(f"migrated the embedded database: {', '.join(applied)}")
        return asyncio.run(run_demo(s, seed, rate, duration))
    except KeyboardInterrupt:
        fail("interrupted; everything the demo started has been stopped", code=130)
    except (StartupError, KafkaSetupError) as exc:
        fail(str(exc))
    except DeliveryError as exc:
        fail(f"the embedded broker refused traffic ({exc}); look at {Path(s.data_dir) / 'logs' / 'tansu.log'}")
    except (OSError, KafkaError, asyncpg.PostgresError) as exc:
        fail(f"the embedded services stopped answering ({type(exc).__name__}: {exc}); see the logs in {s.data_dir}")


# ------------------------------------------------------------------------------- the run


async def run_demo(s: Settings, seed: int, rate: float, duration: float) -> DemoSummary:
    """Import customers, run the hub and the simulator, wait for the hub to drain, count."""
    conn = await asyncpg.connect(s.dsn)
    try:
        since = await conn.fetchval(DB_CLOCK)
        register = customers(seed)
        await import_customers(conn, register)
        console.print(
            f"imported {len(register)} customers ({sum(c.tier.value == 'key' for c in register)} key accounts)"
        )
        await ensure_topics(s)
        watched = [*s.inbound_topics, *s.alert_topics, s.dead_letter_topic]
        start_offsets = await _current_ends(s, watched)
        traffic_start = datetime.now(UTC).replace(microsecond=0)
        busy = _Busy()
        async with HubRuntime(s, on_batch=busy.on_batch) as runtime:
            feed = await _feed_and_drain(s, runtime, conn, seed, rate, duration, traffic_start)
            stored = await _stored_counts(conn, since, s.topic_call_logs)
            on_topics = await _topic_counts(s, start_offsets, since)
            unsent = await conn.fetchval(OUTBOX_BACKLOG)
        return _summary(s, seed, traffic_start, feed, runtime, busy, stored, on_topics, unsent)
    finally:
        await conn.close()


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
    seed: int,
    rate: float,
    duration: float,
    traffic_start: datetime,
) -> _Feed:
    total = round(rate * duration)
    console.print(f"sending {total:,} messages at {rate:g}/s for {duration:g}s (seed {seed}) ...")
    report = TrafficReport()
    began = time.monotonic()
    sender = asyncio.create_task(publish_traffic(s, generate(seed, rate, duration, start=traffic_start), report))
    while not sender.done():
        await asyncio.wait({sender}, timeout=PROGRESS_EVERY_S)
        _progress(time.monotonic() - began, report, total, runtime)
    await sender  # raises DeliveryError if the broker refused a record
    console.print(
        "all sent; waiting for the hub to handle the last messages and publish their alerts ...", soft_wrap=True
    )
    drained = await _wait_drained(runtime, conn, report.total, timeout_s=max(60.0, duration))
    return _Feed(rate, duration, report, time.monotonic() - began, drained)


def _progress(elapsed: float, report: TrafficReport, total: int, runtime: HubRuntime) -> None:
    t = runtime.totals
    console.print(
        f"  {elapsed:5.0f}s  sent {report.total:>8,} / {total:,}   hub: {t.records:,} handled, "
        f"{sum(t.alerts.values()):,} alerts, {t.tasks:,} tasks, {t.notifications:,} notifications, "
        f"{sum(t.dead_lettered.values()):,} dead letters",
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


async def _stored_counts(conn: asyncpg.Connection, since: datetime, call_logs_topic: str) -> _Stored:
    async def grouped(sql: str) -> dict[str, int]:
        return {row[0]: row["n"] for row in await conn.fetch(sql, since)}

    events = await grouped(EVENTS_BY_TOPIC)
    events[call_logs_topic] = await conn.fetchval(CALLS_STORED, since)
    return _Stored(
        events,
        await grouped(TASKS_BY_DEPARTMENT),
        await grouped(NOTIFICATIONS_BY_KIND),
        await grouped(DEAD_LETTERS_BY_REASON),
    )


@dataclass
class _TopicCounts:
    records: dict[str, int] = field(default_factory=dict)  # topic -> records since the start offsets
    alerts: dict[str, dict[str, set[str]]] = field(default_factory=lambda: defaultdict(lambda: defaultdict(set)))
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
    if alert.created_at >= since:  # an earlier run's alert relayed late belongs to that run
        counts.alert_copies += 1
        counts.alerts[topic][alert.severity.value].add(alert.alert_id)


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
        alerts={
            topic: {sev: len(ids) for sev, ids in by_severity.items()}
            for topic, by_severity in on_topics.alerts.items()
        },
        tasks_by_department=stored.tasks,
        notifications_by_kind=stored.notifications,
        elapsed_s=round(feed.elapsed_s, 3),
        events_per_second=round(t.records / feed.elapsed_s, 1) if feed.elapsed_s else 0.0,
        busy_s=round(busy.seconds, 3),
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
        ),
    )


def print_summary(out: Console, s: Settings, summary: DemoSummary) -> None:
    out.rule("[bold]what the hub did[/]")
    out.print(_events_table(summary))
    out.print(_alerts_table(summary, s.alert_topics))
    out.print(_count_table("tasks per department", "department", summary.tasks_by_department))
    out.print(_count_table("customer notifications per kind", "kind", summary.notifications_by_kind))
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
    table = Table(title="alerts per queue and severity (from the topics)")
    table.add_column("queue")
    for severity in SEVERITIES:
        table.add_column(severity, justify="right")
    table.add_column("total", justify="right")
    for topic in queues:
        row = summary.alerts.get(topic, {})
        table.add_row(topic, *(f"{row.get(sev, 0):,}" for sev in SEVERITIES), f"[bold]{sum(row.values()):,}[/]")
    return table


def _count_table(title: str, label: str, counts: dict[str, int]) -> Table:
    table = Table(title=title)
    table.add_column(label)
    table.add_column("count", justify="right")
    for name, n in sorted(counts.items(), key=lambda item: (-item[1], item[0])):
        table.add_row(name, f"{n:,}")
    table.add_row("[bold]total[/]", f"[bold]{sum(counts.values()):,}[/]")
    return table
