"""The handler queues as a stream of alerts, read without a consumer group, and the board that counts them."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import ValidationError

from hub.config import Settings
from hub.kafka import aiokafka_kwargs, caught_up, fetched_high_watermarks
from hub.ops.db import OpsError
from schemas.outbound import Alert


@dataclass(frozen=True)
class SeenAlert:
    queue: str  # a hub.core.topics.Queue value
    alert: Alert


@dataclass
class AlertBoard:
    """What the watch screen shows: distinct alerts (by alert_id), counted, the newest kept.

    Filters apply before counting, so the counts describe what is on screen.
    """

    keep: int = 20
    queue: str | None = None
    severity: str | None = None
    newest: list[SeenAlert] = field(default_factory=list)
    counts: Counter = field(default_factory=Counter)  # (queue, severity) -> distinct alerts
    _seen: set[str] = field(default_factory=set)

    def wants(self, seen: SeenAlert) -> bool:
        return (self.queue is None or seen.queue == self.queue) and (
            self.severity is None or seen.alert.severity.value == self.severity
        )

    def add(self, batch: Iterable[SeenAlert]) -> int:
        """Take new alerts; returns how many were new. A re-sent alert (same alert_id) counts once."""
        added = 0
        for seen in batch:
            if not self.wants(seen) or seen.alert.alert_id in self._seen:
                continue
            self._seen.add(seen.alert.alert_id)
            self.counts[(seen.queue, seen.alert.severity.value)] += 1
            self.newest.append(seen)
            added += 1
        if added:
            self.newest.sort(key=lambda s: (s.alert.created_at, s.alert.alert_id), reverse=True)
            del self.newest[self.keep :]
        return added

    @property
    def total(self) -> int:
        return sum(self.counts.values())


SKIP_TO_NOW_TIMEOUT_S = 10.0


class AlertStream:
    """Reads the alert topics (every handler queue) on every partition, without a consumer group.

    A watcher needs every partition anyway, so it assigns them itself: no group join to wait
    for (about 5 s on some brokers), no rebalancing, and no abandoned groups left on the
    cluster after each run. It commits nothing; each run starts from the beginning or the end.
    """

    def __init__(self, settings: Settings, from_beginning: bool) -> None:
        self.settings = settings
        self.queues = {topic: queue.value for queue, topic in settings.queues.items()}  # topic -> queue
        self.from_beginning = from_beginning
        self.missing_topics: list[str] = []
        self.unreadable = 0
        self._consumer = AIOKafkaConsumer(
            **aiokafka_kwargs(settings),
            group_id=None,
            enable_auto_commit=False,
            client_id=f"{settings.client_id}-alerts-watch",
            auto_offset_reset="earliest" if from_beginning else "latest",
        )
        self._partitions: list[TopicPartition] = []

    async def __aenter__(self) -> AlertStream:
        try:
            await self._consumer.start()
            existing = await self._consumer.topics()
            self.missing_topics = [t for t in self.queues if t not in existing]
            self._partitions = [
                TopicPartition(t, p)
                for t in self.queues
                if t in existing
                for p in sorted(self._consumer.partitions_for_topic(t) or ())
            ]
            self._consumer.assign(self._partitions)
            if self._partitions and self.from_beginning:
                await self._consumer.seek_to_beginning(*self._partitions)
            elif self._partitions:
                await self._skip_to_now()
        except KafkaError as exc:
            await self._consumer.stop()
            raise OpsError(
                f"cannot read the alert topics ({type(exc).__name__}: {exc}); check HUB_KAFKA_BOOTSTRAP"
            ) from exc
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self._consumer.stop()

    async def _skip_to_now(self) -> None:
        """Start after the last alert already on each partition.

        Not seek_to_end(): see hub.kafka.fetched_high_watermarks (older alerts would show as new).
        """
        await self._consumer.seek_to_end(*self._partitions)
        try:
            ends = await fetched_high_watermarks(self._consumer, self._partitions, SKIP_TO_NOW_TIMEOUT_S)
        except KafkaError:
            return  # some partition never answered: start where seek_to_end put it
        for tp, high in ends.items():
            if high > await self._consumer.position(tp):
                self._consumer.seek(tp, high)

    def _decode(self, topic: str, value: bytes | None) -> SeenAlert | None:
        # A tolerant reader: fields a later contract version adds are ignored, not fatal.
        try:
            document = orjson.loads(value or b"")
            known = {k: v for k, v in document.items() if k in Alert.model_fields}
            return SeenAlert(self.queues[topic], Alert.model_validate(known))
        except (orjson.JSONDecodeError, AttributeError, ValidationError):
            self.unreadable += 1
            return None

    async def poll(self, timeout_s: float) -> list[SeenAlert]:
        if not self._partitions:
            await asyncio.sleep(timeout_s)
            return []
        batches = await self._consumer.getmany(timeout_ms=int(timeout_s * 1000))
        return [
            seen
            for records in batches.values()
            for r in records
            if (seen := self._decode(r.topic, r.value)) is not None
        ]

    async def drain(self, timeout_s: float = 30.0) -> list[SeenAlert]:
        """Everything up to the end of each partition as of now (for a one-off snapshot)."""
        if not self._partitions:
            return []
        found: list[SeenAlert] = []
        deadline = time.monotonic() + timeout_s
        while True:
            found += await self.poll(0.5)
            if await caught_up(self._consumer, self._partitions):
                return found
            if time.monotonic() > deadline:
                raise OpsError(
                    f"the alert topics did not finish reading within {timeout_s:.0f}s; "
                    "the broker may be overloaded, try again"
                )
