"""Health checks and Prometheus metrics over HTTP, served by `hub run` itself.

    GET /health/live   200 while the process (and its event loop) answers
    GET /health/ready  200 when Postgres answers, the broker answers and partitions are
                       assigned; else 503 with a JSON body naming the failing check
    GET /metrics       Prometheus text format, from the hub's own registry

`Observability` is a `HubRuntime` extension (see hub/runtime.py): it counts each batch's
outcome, refreshes consumer lag and the outbox backlog every few seconds, and serves the
three paths on HUB_HTTP_HOST:HUB_HTTP_PORT (port 0: no server, counting only).

Labels come only from fixed sets (streams, queues, severities, reasons, topic names and
partition numbers): never from message content, so no personal data reaches a label.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

import orjson
from aiokafka import TopicPartition
from aiokafka.errors import IllegalStateError, KafkaError
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest

from hub.clock.engine import TickReport
from hub.config import Settings
from hub.core.clock import Timer
from hub.core.outcome import BatchOutcome
from hub.core.topics import Queue
from hub.dispatch.dispatcher import RoundReport
from hub.store.queries import OUTBOX_BACKLOG, TASK_GAUGES
from schemas.enums import DeadLetterReason, Department, NotificationChannel, Severity

log = logging.getLogger("hub.observability")

# The text format generate_latest() writes (prometheus_client's CONTENT_TYPE_LATEST announces 1.0.0).
METRICS_CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
OUTCOMES = ("processed", "duplicate", "dead_lettered")
CHECK_TIMEOUT_S = 2.0
REQUEST_TIMEOUT_S = 5.0

PING = "SELECT 1"


class EndpointUnavailable(RuntimeError):
    """The health and metrics port cannot be bound; the message says what to change."""


# --------------------------------------------------------------------------------------------- metrics


class HubMetrics:
    """The hub's metrics in their own registry (nothing leaks in from the process-wide default one)."""

    def __init__(self, streams: Mapping[str, str]) -> None:
        self.streams = dict(streams)
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter("hub_events", "Inbound events by stream and outcome", ["stream", "outcome"], registry=r)
        self.alerts = Counter("hub_alerts", "Alerts queued for the handler queues", ["queue", "severity"], registry=r)
        self.tasks = Counter("hub_tasks_written", "Coordination tasks written", registry=r)
        self.notifications = Counter("hub_notifications_written", "Customer notifications written", registry=r)
        self.dead_letters = Counter("hub_dead_letters", "Records sent to the dead-letter topic", ["reason"], registry=r)
        self.batch_size = Histogram(
            "hub_batch_size",
            "Records per consumed batch",
            registry=r,
            buckets=(1, 5, 10, 25, 50, 100, 250, 500, 1000, 2000, 5000),
        )
        self.batch_seconds = Histogram(
            "hub_batch_seconds",
            "Time to store one batch in Postgres",
            registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.lag = Gauge(
            "hub_consumer_lag",
            "Records on the broker not yet handed to the hub, per partition",
            ["topic", "partition"],
            registry=r,
        )
        self.outbox_backlog = Gauge(
            "hub_outbox_backlog", "Outbox rows (alerts, dead letters) not yet published", registry=r
        )
        self.outbox_age = Gauge("hub_outbox_oldest_age_seconds", "Age of the oldest unpublished outbox row", registry=r)
        # the clock (counted by the replica that evaluates it; the task gauges by every replica: use max())
        self.timers_fired = Counter("hub_clock_timers_fired", "Timers the clock fired", ["timer"], registry=r)
        self.clock_lag = Gauge(
            "hub_clock_lag_seconds", "At the last tick: now minus the oldest due moment not yet fired", registry=r
        )
        self.tick_seconds = Histogram(
            "hub_clock_tick_seconds",
            "Time one tick of the clock took",
            registry=r,
            buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.clock_leader = Gauge("hub_clock_leader", "1 when this replica evaluates the clock", registry=r)
        self.tasks_open = Gauge("hub_tasks_open", "Open and in-progress tasks", ["department", "severity"], registry=r)
        self.tasks_overdue = Gauge(
            "hub_tasks_overdue", "Open and in-progress tasks past due_at", ["department", "severity"], registry=r
        )
        self.tasks_escalated = Gauge(
            "hub_tasks_escalated", "Open and in-progress tasks by escalation level", ["level"], registry=r
        )
        # dispatch (each replica counts what it sent; lag and circuits: use max())
        self.notes_sent = Counter("hub_notifications_sent", "Notifications delivered", ["channel"], registry=r)
        self.notes_failed = Counter("hub_notifications_failed", "Notifications given up on", ["channel"], registry=r)
        self.notes_retried = Counter(
            "hub_notifications_retried", "Tries that will be tried again", ["channel"], registry=r
        )
        self.dispatch_lag = Gauge("hub_dispatch_lag_seconds", "Age of the oldest due, unsent notification", registry=r)
        self.open_circuits = Gauge("hub_dispatch_open_circuits", "Endpoints whose circuit breaker is open", registry=r)
        ProcessCollector(registry=r)  # memory, CPU, open files of this replica
        self._zero_series()

    def _zero_series(self) -> None:
        # Every fixed label combination exists from the start, so rate() and dashboards see 0, not "no data".
        for stream in self.streams.values():
            for outcome in OUTCOMES:
                self.events.labels(stream, outcome)
        for queue in Queue:
            for severity in Severity:
                self.alerts.labels(queue.value, severity.value)
        for reason in DeadLetterReason:
            self.dead_letters.labels(reason.value)
        for timer in Timer:
            self.timers_fired.labels(timer.value)
        for level in ("1", "2"):
            self.tasks_escalated.labels(level)
        for channel in NotificationChannel:
            for counter in (self.notes_sent, self.notes_failed, self.notes_retried):
                counter.labels(channel.value)

    def record_batch(self, outcome: BatchOutcome, elapsed_s: float) -> None:
        for column, outcome_label in (
            (outcome.by_topic, "processed"),
            (outcome.duplicates_by_topic, "duplicate"),
            (outcome.dead_lettered_by_topic, "dead_lettered"),
        ):
            for topic, count in column.items():
                if topic in self.streams and count:
                    self.events.labels(self.streams[topic], outcome_label).inc(count)
        for (queue, severity), count in outcome.alerts.items():
            if count:
                self.alerts.labels(queue, severity).inc(count)
        for reason, count in outcome.dead_lettered.items():
            if count:
                self.dead_letters.labels(reason).inc(count)
        self.tasks.inc(outcome.tasks)
        self.notifications.inc(outcome.notifications)
        self.batch_size.observe(outcome.records)
        self.batch_seconds.observe(elapsed_s)

    def set_lags(self, lags: Mapping[TopicPartition, int]) -> None:
        """Replace all lag series: partitions revoked by a rebalance disappear from this replica."""
        self.lag.clear()
        for tp, lag in lags.items():
            self.lag.labels(tp.topic, str(tp.partition)).set(lag)

    def record_tick(self, report: TickReport) -> None:
        for firing in report.fired:
            self.timers_fired.labels(firing.timer.value).inc()
        self.clock_lag.set(report.lag_s)
        self.tick_seconds.observe(report.duration_s)

    def record_dispatch(self, report: RoundReport) -> None:
        for counter, counts in (
            (self.notes_sent, report.sent),
            (self.notes_failed, report.failed),
            (self.notes_retried, report.retried),
        ):
            for channel, n in counts.items():
                counter.labels(channel).inc(n)
        self.dispatch_lag.set(report.lag_s)
        self.open_circuits.set(report.open_circuits)

    def set_tasks(self, rows: list[Any]) -> None:
        """Replace the task gauges from TASK_GAUGES rows: combinations with no task left read 0."""
        for gauge in (self.tasks_open, self.tasks_overdue):
            gauge.clear()
        levels = {"1": 0, "2": 0}
        for department in Department:
            for severity in Severity:
                self.tasks_open.labels(department.value, severity.value)
                self.tasks_overdue.labels(department.value, severity.value)
        for row in rows:
            self.tasks_open.labels(row["department"], row["severity"]).set(row["open"])
            self.tasks_overdue.labels(row["department"], row["severity"]).set(row["overdue"])
            levels["1"] += row["level_1"]
            levels["2"] += row["level_2"]
        for level, count in levels.items():
            self.tasks_escalated.labels(level).set(count)

    def set_outbox(self, rows: int, oldest_age_s: float) -> None:
        self.outbox_backlog.set(rows)
        self.outbox_age.set(oldest_age_s)

    def render(self) -> bytes:
        return generate_latest(self.registry)


async def partition_lags(consumer: Any) -> dict[TopicPartition, int]:
    """highwater - position for each assigned partition that has been fetched at least once.

    Both come from the consumer's own fetch responses (no extra broker request). `position` is the
    next offset handed to the hub, so records already in the batch being stored are not counted.
    The highwater mark rather than the last stable offset, which is -1 under the default
    read_uncommitted isolation. It is only as good as the broker's: the embedded test broker
    (Tansu) can report an end offset that trails records written in one produce batch, so the
    gauge is clamped at 0.
    """
    lags = {}
    for tp in consumer.assignment():
        try:
            high = consumer.highwater(tp)
            if high is None:
                continue
            position = await asyncio.wait_for(consumer.position(tp), CHECK_TIMEOUT_S)
        except (TimeoutError, AssertionError, IllegalStateError):
            continue  # revoked meanwhile, or no position yet right after an assignment
        lags[tp] = max(0, high - position)
    return lags


# ---------------------------------------------------------------------------------------------- health


async def check_postgres(pool: Any) -> str | None:
    """None when the runtime's pool answers `SELECT 1`, else what is wrong."""
    if pool is None:
        return "no connection pool yet"
    try:
        await asyncio.wait_for(pool.fetchval(PING), CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"SELECT 1 took longer than {CHECK_TIMEOUT_S:.0f}s"
    except Exception as exc:  # noqa: BLE001 - any failure means not ready; the name says which
        return f"{type(exc).__name__}: {exc}"
    return None


async def check_kafka(consumer: Any, topics: tuple[str, ...]) -> str | None:
    """None when a fresh metadata request succeeds and lists the inbound topics."""
    if consumer is None:
        return "consumer not started"
    try:
        known = await asyncio.wait_for(consumer.topics(), CHECK_TIMEOUT_S)
    except TimeoutError:
        return f"no metadata from the brokers within {CHECK_TIMEOUT_S:.0f}s"
    except (KafkaError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"
    missing = [t for t in topics if t not in known]
    return f"topics missing on the broker: {', '.join(missing)}" if missing else None


def check_assignment(consumer: Any) -> str | None:
    """None when this replica owns at least one partition (a replica beyond the partition count owns none)."""
    if consumer is None:
        return "consumer not started"
    return None if consumer.assignment() else "no partitions assigned (group joining or rebalancing)"


async def readiness(runtime: Any) -> dict[str, str]:
    """Check name -> 'ok' or the reason it fails."""
    consumer = runtime.consumer
    postgres, kafka = await asyncio.gather(
        check_postgres(runtime.pool), check_kafka(consumer, tuple(runtime.settings.inbound_topics))
    )
    results = {"postgres": postgres, "kafka": kafka, "assignment": check_assignment(consumer)}
    return {name: problem or "ok" for name, problem in results.items()}


# ------------------------------------------------------------------------------------------------ http

Response = tuple[int, str, bytes]  # status, content type, body
Handler = Callable[[], Awaitable[Response]]


def json_response(status: int, doc: Any) -> Response:
    return status, "application/json", orjson.dumps(doc)


class HttpEndpoint:
    """A minimal HTTP/1.1 server for GET/HEAD of fixed paths: one request per connection.

    Enough for probes and Prometheus, and no web framework in the image.
    """

    def __init__(self, routes: Mapping[str, Handler]) -> None:
        self.routes = dict(routes)
        self._server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self._server = await asyncio.start_server(self._serve, host, port)
        return self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            method, path = await asyncio.wait_for(_read_request(reader), REQUEST_TIMEOUT_S)
            status, content_type, body = await self._respond(method, path)
            writer.write(_head(status, content_type, len(body)) + (b"" if method == "HEAD" else body))
            await writer.drain()
        except (TimeoutError, ValueError, ConnectionError):
            pass  # a slow, malformed or vanished client: just hang up
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    async def _respond(self, method: str, path: str) -> Response:
        handler = self.routes.get(path)
        if handler is None:
            return json_response(404, {"error": f"no such path; try {', '.join(sorted(self.routes))}"})
        if method not in ("GET", "HEAD"):
            return json_response(405, {"error": "only GET and HEAD"})
        try:
            return await handler()
        except Exception:  # one failing handler must not take the endpoint down
            log.exception("%s failed", path)
            return json_response(500, {"error": "internal error; see the hub's log"})


async def _read_request(reader: asyncio.StreamReader) -> tuple[str, str]:
    method, target, _version = (await reader.readline()).decode("latin-1").split(" ", 2)
    while (await reader.readline()).strip():
        pass  # headers: nothing here depends on them
    return method, target.split("?", 1)[0]


def _head(status: int, content_type: str, length: int) -> bytes:
    return (
        f"HTTP/1.1 {status} {HTTPStatus(status).phrase}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {length}\r\nCache-Control: no-store\r\nConnection: close\r\n\r\n"
    ).encode("latin-1")


# ------------------------------------------------------------------------------------------- extension


class Periodic:
    """`work()` every `interval_s` in a task of its own, until `stop()`.

    `stop()` raises a flag before it cancels, and the loop reads it after each work: on Python 3.11,
    asyncio.wait_for (the works' queries use it) can swallow a cancellation that arrives as its
    inner call completes, and a loop that relied on cancellation alone ran on while `stop()` waited
    for it forever (seen: a stop that never returned, in a test that hung for 10 minutes)."""

    def __init__(self, name: str, interval_s: float, work: Callable[[], Awaitable[None]], *, wait_first: bool) -> None:
        self.name, self.interval_s, self.work, self.wait_first = name, interval_s, work, wait_first
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def start(self) -> None:
        self._stopping = False
        self._task = asyncio.create_task(self._run(), name=self.name)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._stopping = True
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        self._task = None

    async def _run(self) -> None:
        if self.wait_first:
            await asyncio.sleep(self.interval_s)
        while not self._stopping:
            await self.work()
            if self._stopping:
                return
            await asyncio.sleep(self.interval_s)


class Observability:
    """HubRuntime extension: `HubRuntime(settings, extensions=[Observability(settings)])`."""

    def __init__(self, settings: Settings, refresh_interval_s: float = 5.0) -> None:
        self.settings = settings
        self.metrics = HubMetrics({topic: stream.name for topic, stream in settings.streams.items()})
        self.port: int | None = None  # the bound port once serving
        self._runtime: Any = None
        self._http = HttpEndpoint({"/health/live": self._live, "/health/ready": self._ready, "/metrics": self._metrics})
        self._refresher = Periodic("metrics-refresh", refresh_interval_s, self._refresh_logged, wait_first=False)
        self._refresh_failing = False

    async def start(self, runtime: Any) -> None:
        self._runtime = runtime
        self._refresher.start()
        if self.settings.http_port == 0:
            log.info("health and metrics endpoint off (HUB_HTTP_PORT=0)")
            return
        try:
            self.port = await self._http.start(self.settings.http_host, self.settings.http_port)
        except OSError as exc:
            await self.stop()
            raise EndpointUnavailable(
                f"cannot serve health and metrics on {self.settings.http_host}:{self.settings.http_port} "
                f"({exc.strerror or exc}); set HUB_HTTP_PORT to a free port, or 0 to turn the endpoint off"
            ) from exc
        log.info(
            "health and metrics on http://%s:%d (/health/live, /health/ready, /metrics)",
            self.settings.http_host,
            self.port,
        )

    def on_batch(self, outcome: BatchOutcome, elapsed_s: float) -> None:
        self.metrics.record_batch(outcome, elapsed_s)

    def on_tick(self, report: TickReport) -> None:
        self.metrics.record_tick(report)

    def on_dispatch(self, report: RoundReport) -> None:
        self.metrics.record_dispatch(report)

    async def stop(self) -> None:
        await self._http.stop()
        await self._refresher.stop()

    async def refresh(self) -> None:
        """Update the gauges that are read rather than counted: consumer lag and the outbox backlog."""
        consumer = self._runtime.consumer
        if consumer is not None:
            self.metrics.set_lags(await partition_lags(consumer))
        pool = self._runtime.pool
        if pool is not None:
            row = await asyncio.wait_for(pool.fetchrow(OUTBOX_BACKLOG), CHECK_TIMEOUT_S)
            self.metrics.set_outbox(row["rows"], row["oldest_age_s"])
            self.metrics.set_tasks(await asyncio.wait_for(pool.fetch(TASK_GAUGES), CHECK_TIMEOUT_S))
        scheduler = self._runtime.scheduler
        self.metrics.clock_leader.set(1 if scheduler is not None and scheduler.leading else 0)

    async def _refresh_logged(self) -> None:
        try:
            await self.refresh()
            if self._refresh_failing:
                log.info("metrics refresh works again")
            self._refresh_failing = False
        except Exception as exc:  # noqa: BLE001 - an outage: keep the last values, say so once
            if not self._refresh_failing:
                log.warning("cannot refresh lag/outbox metrics (%s); keeping the last values", type(exc).__name__)
            self._refresh_failing = True

    async def _live(self) -> Response:
        return json_response(200, {"status": "alive"})

    async def _ready(self) -> Response:
        checks = await readiness(self._runtime)
        ready = all(v == "ok" for v in checks.values())
        return json_response(200 if ready else 503, {"status": "ready" if ready else "not ready", "checks": checks})

    async def _metrics(self) -> Response:
        return 200, METRICS_CONTENT_TYPE, self.metrics.render()


# ---------------------------------------------------------------------------------------------- the log


SUMMARY_EVERY_S = 10.0
summary_log = logging.getLogger("hub.summary")


class Activity:
    """What happened since the last summary line: inbound batches, the clock's ticks, dispatch rounds."""

    def __init__(self) -> None:
        self.events = BatchOutcome()
        self.batches = 0
        self.clock_fired = self.clock_alerts = self.clock_tasks = self.clock_notifications = 0
        self.sent = self.failed = 0

    def add_batch(self, outcome: BatchOutcome) -> None:
        self.events.merge(outcome)
        self.batches += 1

    def add_tick(self, report: TickReport) -> None:
        self.clock_fired += len(report.fired)
        self.clock_alerts += report.alerts
        self.clock_tasks += report.tasks
        self.clock_notifications += report.notifications

    def add_round(self, report: RoundReport) -> None:
        self.sent += sum(report.sent.values())
        self.failed += sum(report.failed.values())

    @property
    def happened(self) -> bool:
        return bool(self.batches or self.clock_fired or self.sent or self.failed)


def summary_line(a: Activity, seconds: float, lags: Mapping[str, int] | None) -> str:
    """One line for the last `seconds`: events, alerts, tasks, notifications, dead letters, lag per topic."""
    e = a.events
    dead = sum(e.dead_lettered.values())
    parts = [
        f"{e.records:,} events in {seconds:.0f}s ({e.processed:,} processed, {e.duplicates:,} duplicates, "
        f"{dead:,} dead-lettered)",
        f"{sum(e.alerts.values()) + a.clock_alerts:,} alerts",
        f"{e.tasks + a.clock_tasks:,} tasks",
        f"{e.notifications + a.clock_notifications:,} notifications",
    ]
    if a.clock_fired:
        parts.append(f"clock: {a.clock_fired:,} timers fired")
    if a.sent or a.failed:
        parts.append(f"dispatch: {a.sent:,} sent, {a.failed:,} failed")
    if dead:
        parts.append("dead letters: " + ", ".join(f"{n:,} {reason}" for reason, n in e.dead_lettered.most_common()))
    if lags is not None:
        total = sum(lags.values())
        per_topic = ", ".join(f"{topic} {n:,}" for topic, n in sorted(lags.items()) if n)
        parts.append(f"lag {total:,}" + (f" ({per_topic})" if per_topic else ""))
    return "; ".join(parts)


def summary_fields(a: Activity, lags: Mapping[str, int] | None) -> dict[str, Any]:
    """The same figures for JSON logs."""
    e = a.events
    return {
        "events": e.records,
        "processed": e.processed,
        "duplicates": e.duplicates,
        "dead_lettered": dict(e.dead_lettered),
        "alerts": sum(e.alerts.values()) + a.clock_alerts,
        "tasks": e.tasks + a.clock_tasks,
        "notifications": e.notifications + a.clock_notifications,
        "timers_fired": a.clock_fired,
        "sent": a.sent,
        "failed": a.failed,
        "lag": dict(lags) if lags is not None else None,
    }


class ActivityLog:
    """HubRuntime extension: at INFO, one summary line every `every_s` seconds in which something
    happened (or records wait: lag), instead of a line per batch (those are DEBUG)."""

    def __init__(self, every_s: float = SUMMARY_EVERY_S) -> None:
        self._runtime: Any = None
        self._activity = Activity()
        self._since = 0.0
        self._summaries = Periodic("activity-log", every_s, self._flush_logged, wait_first=True)

    async def start(self, runtime: Any) -> None:
        self._runtime = runtime
        self._since = asyncio.get_running_loop().time()
        self._summaries.start()

    def on_batch(self, outcome: BatchOutcome, elapsed_s: float) -> None:
        self._activity.add_batch(outcome)

    def on_tick(self, report: TickReport) -> None:
        self._activity.add_tick(report)

    def on_dispatch(self, report: RoundReport) -> None:
        self._activity.add_round(report)

    async def stop(self) -> None:
        await self._summaries.stop()
        if self._activity.happened:
            await self.flush(with_lag=False)  # the consumer is about to stop: its lag means nothing now

    async def _flush_logged(self) -> None:
        try:
            await self.flush()
        except Exception:  # a summary must never stop the hub (logged, exc_info, at DEBUG)
            log.debug("activity summary failed", exc_info=True)

    async def flush(self, with_lag: bool = True) -> None:
        """Log what happened since the last line, if anything did (or records are waiting)."""
        now = asyncio.get_running_loop().time()
        activity, seconds = self._activity, now - self._since
        lags = await self._lags() if with_lag else None
        if not activity.happened and not (lags and sum(lags.values())):
            return
        self._activity, self._since = Activity(), now
        summary_log.info("%s", summary_line(activity, seconds, lags), extra={"summary": summary_fields(activity, lags)})

    async def _lags(self) -> dict[str, int] | None:
        consumer = self._runtime.consumer if self._runtime is not None else None
        if consumer is None:
            return None
        per_topic: dict[str, int] = {}
        for tp, lag in (await partition_lags(consumer)).items():
            per_topic[tp.topic] = per_topic.get(tp.topic, 0) + lag
        return per_topic
