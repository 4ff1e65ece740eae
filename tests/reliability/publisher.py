"""Publish a ledger to the inbound topics, one record per produce batch, recording positions.

Tansu 0.6 (memory engine) returns nothing for a fetch offset inside a multi-record batch, so a
consumer whose committed offset lands mid-batch would poll empty forever (fixed upstream after
0.6.0, commit 87db6ea). Every record here is its own batch: one send in flight per partition,
`linger_ms=0`. A dispatcher walks the ledger in order at the requested rate and hands each
record to its partition's sender, so each partition receives its records in ledger order.

A send the broker does not acknowledge is retried until it is (the scenario's faults may hit the
publisher too); an unacknowledged copy that did land is just one more duplicate for the hub.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.partitioner import DefaultPartitioner

from hub.config import Settings
from hub.kafka import aiokafka_kwargs
from tests.reliability.generator import Ledger, Publication
from tests.reliability.oracle import CALL, CARRIER, SHIPMENT

log = logging.getLogger("reliability.publisher")
RETRY_FOR_S = 180.0
MAX_REQUEST_BYTES = 4 * 1024 * 1024  # room for the over-limit records of the oversized scenario


def stream_topics(settings: Settings) -> dict[str, str]:
    return {
        SHIPMENT: settings.topic_shipment_events,
        CARRIER: settings.topic_carrier_updates,
        CALL: settings.topic_call_logs,
    }


class Pacer:
    """Hands out send slots at `rate` per second (None: as fast as possible)."""

    def __init__(self, rate: float | None) -> None:
        self.interval = 1.0 / rate if rate else 0.0
        self._next = time.monotonic()

    async def wait(self) -> None:
        if not self.interval:
            return
        now = time.monotonic()
        self._next = max(self._next + self.interval, now - 1.0)  # never bank more than 1 s of slots
        if self._next > now:
            await asyncio.sleep(self._next - now)


@dataclass
class Publisher:
    settings: Settings
    ledger: Ledger
    rate: float | None = None
    published: int = 0
    retries: int = 0
    started_at: float = 0.0
    finished_at: float = 0.0
    _producer: AIOKafkaProducer | None = None
    _queues: dict = field(default_factory=dict)

    async def run(self, publications: list[Publication] | None = None) -> None:
        """Publish (a slice of) the ledger; returns when every record is acknowledged."""
        items = self.ledger.publications if publications is None else publications
        self._producer = AIOKafkaProducer(
            **aiokafka_kwargs(self.settings),
            linger_ms=0,
            acks="all",
            enable_idempotence=False,
            max_request_size=MAX_REQUEST_BYTES,
            request_timeout_ms=20_000,
        )
        await self._producer.start()
        self.started_at = time.monotonic()
        try:
            await self._dispatch(items)
        finally:
            self.finished_at = time.monotonic()
            await self._producer.stop()

    async def _dispatch(self, items: list[Publication]) -> None:
        topics = stream_topics(self.settings)
        partitions = self.settings.topic_partitions
        choose = DefaultPartitioner()
        senders: dict[tuple[str, int], asyncio.Queue] = {}
        tasks = []
        pacer = Pacer(self.rate)
        for index, pub in enumerate(items):
            topic = topics[pub.item.stream]
            partition = self._partition(pub, index, partitions, choose)
            queue = senders.get((topic, partition))
            if queue is None:
                queue = senders[(topic, partition)] = asyncio.Queue()
                tasks.append(asyncio.create_task(self._sender(topic, partition, queue)))
            await pacer.wait()
            queue.put_nowait(pub)
            if index % 256 == 0:
                await asyncio.sleep(0)  # let the senders run when there is no pacing
        for queue in senders.values():
            queue.put_nowait(None)
        await asyncio.gather(*tasks)

    @staticmethod
    def _partition(pub: Publication, index: int, partitions: int, choose: DefaultPartitioner) -> int:
        key = pub.item.key
        home = choose(key, list(range(partitions)), list(range(partitions))) if key else index % partitions
        if pub.partition == -1:
            return (home + 1) % partitions
        return home if pub.partition is None else pub.partition

    async def _sender(self, topic: str, partition: int, queue: asyncio.Queue) -> None:
        while (pub := await queue.get()) is not None:
            pub.position = await self._send(topic, partition, pub)
            self.published += 1

    async def _send(self, topic: str, partition: int, pub: Publication) -> tuple[int, int]:
        deadline = time.monotonic() + RETRY_FOR_S
        while True:
            try:
                meta = await self._producer.send_and_wait(topic, value=pub.value, key=pub.item.key, partition=partition)
                return meta.partition, meta.offset
            except (TimeoutError, KafkaError) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"the broker did not acknowledge a record for {RETRY_FOR_S:.0f}s: {type(exc).__name__}: {exc}"
                    ) from exc
                self.retries += 1
                await asyncio.sleep(0.5)
