"""Wire the hub together and run it: pool, rules, pipeline, subscriber, outbox relay.

`HubRuntime` is what `hub run` starts; tests start it in-process too.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass, field
from typing import Protocol

import asyncpg
from aiokafka import AIOKafkaProducer
from faststream.kafka import KafkaBroker

from consumers.inbound import subscribe_inbound
from hub.clock.engine import Clock, TickReport
from hub.clock.scheduler import Scheduler
from hub.config import Settings
from hub.core.outcome import BatchOutcome
from hub.core.rules import Rules, load_rules
from hub.dispatch.dispatcher import Dispatcher, RoundReport
from hub.inbound import InboundBatches
from hub.kafka import ensure_topics, faststream_security, start_producer
from hub.logs import faststream_logger
from hub.migrate import pending_migrations
from hub.ops.lifecycle import Purger, Retention
from hub.pipeline import Pipeline
from hub.relay import OutboxRelay

log = logging.getLogger("hub.runtime")
GC_FIRST_GENERATION = 10_000  # allocations between collections of the youngest generation (Python's default: 700)


class StartupError(RuntimeError):
    """`hub run` could not start; the message names the step, the cause and what to do."""


class SchemaNotReady(StartupError):
    pass


async def _keep_session(conn: asyncpg.Connection) -> None:
    """The pool's per-release reset query is a round trip per batch the hub does not need: its
    transactions leave no session state (advisory locks are transaction-scoped, LISTEN happens
    on the relay's own connection). asyncpg still rolls back an unfinished transaction."""


def build_pipeline(
    settings: Settings, pool: asyncpg.Pool, rules: Rules, stopping: Callable[[], bool] = lambda: False
) -> Pipeline:
    models = {topic: stream.model for topic, stream in settings.streams.items()}
    return Pipeline(
        pool,
        rules,
        models,
        settings.destinations,
        settings.max_message_bytes,
        settings.retry_backoff_max_s,
        stopping=stopping,
    )


def build_broker(settings: Settings) -> KafkaBroker:
    return KafkaBroker(
        settings.bootstrap,
        client_id=settings.client_id,
        security=faststream_security(settings),
        graceful_timeout=settings.graceful_timeout_s,
        enable_idempotence=settings.kafka_idempotence,
        logger=faststream_logger(),
        log_level=logging.DEBUG,  # the hub logs its own summary (hub.observability.ActivityLog)
    )


class Extension(Protocol):
    """Something that lives as long as the runtime (e.g. the health and metrics endpoint)."""

    async def start(self, runtime: HubRuntime) -> None: ...
    def on_batch(self, outcome: BatchOutcome, elapsed_s: float) -> None: ...
    def on_tick(self, report: TickReport) -> None: ...
    def on_dispatch(self, report: RoundReport) -> None: ...
    async def stop(self) -> None: ...


@dataclass
class HubRuntime:
    settings: Settings
    rules: Rules | None = None
    on_batch: Callable[[BatchOutcome, float], None] | None = None
    extensions: list[Extension] = field(default_factory=list)
    pool: asyncpg.Pool | None = None
    broker: KafkaBroker | None = None
    relay: OutboxRelay | None = None
    _producer: AIOKafkaProducer | None = None
    _relay_task: asyncio.Task | None = None
    scheduler: Scheduler | None = None
    _scheduler_task: asyncio.Task | None = None
    dispatcher: Dispatcher | None = None
    _dispatcher_task: asyncio.Task | None = None
    purger: Purger | None = None
    _purger_task: asyncio.Task | None = None
    _stopping: bool = False
    totals: BatchOutcome = field(default_factory=BatchOutcome)
    subscriber: object | None = None
    _batches: InboundBatches | None = None
    _started_extensions: list[Extension] = field(default_factory=list)

    async def start(self) -> None:
        try:
            await self._start()
        except BaseException:
            await self.stop()  # whatever did start (pool, producer, relay, broker) must not leak
            raise

    async def _start(self) -> None:
        s = self.settings
        self.rules = self.rules or load_rules(s.rules_file)
        dsn = s.dsn
        log.info("hub starting: Kafka at %s, group %r", s.bootstrap, s.consumer_group)
        await ensure_topics(s)
        try:
            self.pool = await asyncpg.create_pool(
                dsn, min_size=1, max_size=s.db_pool_size, command_timeout=60, reset=_keep_session
            )
        except (TimeoutError, OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise StartupError(
                f"connecting to Postgres: {type(exc).__name__}: {exc}; check HUB_DATABASE_URL and that the server is up"
            ) from exc
        async with self.pool.acquire() as conn:
            missing = await pending_migrations(conn)
        if missing:
            raise SchemaNotReady(f"the database lacks migrations {', '.join(missing)}: run `hub migrate` first")
        self._pipeline = build_pipeline(s, self.pool, self.rules, stopping=lambda: self._stopping)
        self._producer = await start_producer(s, "starting the outbox relay's producer")
        self.relay = OutboxRelay(dsn, self._producer, s.outbox_batch_size, s.outbox_poll_interval_s)
        self._relay_task = asyncio.create_task(self.relay.run(), name="outbox-relay")
        if s.scheduler_interval_s > 0:
            clock = Clock.of(s, self.rules)
            self.scheduler = Scheduler(dsn, clock, s.scheduler_interval_s, on_tick=self._ticked)
            self._scheduler_task = asyncio.create_task(self.scheduler.run(), name="clock")
        if s.dispatch_enabled:
            self.dispatcher = Dispatcher(s, self.rules, s.destinations, on_round=self._dispatched)
            self._dispatcher_task = asyncio.create_task(self.dispatcher.run(), name="dispatch")
        if s.purge_interval_s > 0:
            self.purger = Purger(dsn, Retention.of(s), s.purge_batch, s.purge_interval_s)
            self._purger_task = asyncio.create_task(self.purger.run(), name="purge")
        self.broker = build_broker(s)
        self._batches = InboundBatches(
            lambda: self._pipeline,
            s.batch_pipeline_depth,
            self._count,
            max_records=s.batch_max_records,
            steady_records=s.batch_steady_records,
        )
        self.subscriber = subscribe_inbound(self.broker, s, self._batches)
        await self.broker.start()
        for extension in self.extensions:
            await extension.start(self)
            self._started_extensions.append(extension)
        log.info("hub running: group %r reading %s", s.consumer_group, ", ".join(s.inbound_topics))

    def _count(self, outcome: BatchOutcome, elapsed: float) -> None:
        self.totals.merge(outcome)
        for extension in self._started_extensions:
            extension.on_batch(outcome, elapsed)
        if self.on_batch is not None:
            self.on_batch(outcome, elapsed)

    def _dispatched(self, report: RoundReport) -> None:
        for extension in self._started_extensions:
            extension.on_dispatch(report)

    def _ticked(self, report: TickReport) -> None:
        for extension in self._started_extensions:
            extension.on_tick(report)

    @property
    def consumer(self):
        """The subscriber's aiokafka consumer (assignment, positions, highwater marks), once started."""
        return getattr(self.subscriber, "consumer", None)

    async def stop(self) -> None:
        """Finish the batch in hand, commit it, flush the outbox relay, close everything."""
        self._stopping = True
        while self._started_extensions:
            await self._started_extensions.pop().stop()
        if self._batches is not None and self.consumer is not None:
            self._batches.stopping = True
            await self._batches.settle(self.consumer)  # commit what is in flight while the consumer runs
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None
        for job, task in ((self.dispatcher, self._dispatcher_task),):
            if job is not None:
                job.stop()
            if task is not None:
                with suppress(asyncio.CancelledError, asyncio.TimeoutError):
                    await asyncio.wait_for(task, timeout=self.settings.webhook_timeout_s + 5)
        self._dispatcher_task = None
        if self.purger is not None:
            self.purger.stop()
        if self._purger_task is not None:
            with suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(self._purger_task, timeout=5)  # a batch in hand finishes first
            self._purger_task = None
        if self.scheduler is not None:
            self.scheduler.stop()
        if self._scheduler_task is not None:
            with suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(self._scheduler_task, timeout=5)
            self._scheduler_task = None
        if self.relay is not None:
            self.relay.stop()
        if self._relay_task is not None:
            with suppress(asyncio.CancelledError, asyncio.TimeoutError):
                await asyncio.wait_for(self._relay_task, timeout=5)
            self._relay_task = None
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None
        if self.pool is not None:
            await self.pool.close()
            self.pool = None

    async def __aenter__(self) -> HubRuntime:
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.stop()


def tune_garbage_collector() -> None:
    """Spare the hot path the cyclic garbage collector's walks (about a third of routing's time).

    What start-up allocated (modules, pydantic schemas, rules) lives as long as the process, so it
    is frozen out of every collection. A batch allocates tens of thousands of short-lived objects
    that reference counting frees; a larger first generation collects them less often.
    """
    gc.freeze()
    gc.set_threshold(GC_FIRST_GENERATION, 20, 20)


async def run_until_signalled(settings: Settings, extensions: Sequence[Extension] = ()) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    runtime = HubRuntime(settings, extensions=list(extensions))
    # Start-up can wait a long time (a group join against a broker that went away): a signal
    # during it cancels the start, which stops whatever had started.
    starting = asyncio.create_task(runtime.start())
    stopping = asyncio.create_task(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    if not starting.done():
        log.info("stop requested during start-up")
        starting.cancel()
        with suppress(asyncio.CancelledError):
            await starting
        return
    stopping.cancel()
    starting.result()  # a failed start raises here, after cleaning up
    tune_garbage_collector()
    try:
        await stop.wait()
        log.info("stopping: finishing the batch in hand (at most %.0fs)", settings.graceful_timeout_s)
    finally:
        await runtime.stop()
