"""Typed publishers for the three sources, for carrier and warehouse integrations.

    async with CarrierFeed("kafka:9092") as feed:
        await feed.publish(CarrierUpdate(...))          # validated, keyed by shipment_id

Each feed checks the bytes it sends exactly as the hub will (hub.core.decoding.check_value:
size, UTF-8, nesting, version, the model), keys records as the contract says, and raises
`DeliveryError` (naming the event) when the broker does not acknowledge a record.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Generic, TypeVar

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from hub.config import Settings
from hub.core.decoding import Accepted, check_value
from hub.core.topics import CALL_LOGS, CARRIER_UPDATES, SHIPMENT_EVENTS, Stream
from hub.kafka import start_producer
from schemas.inbound import CallLog, CarrierUpdate, InboundEvent, ShipmentEvent

E = TypeVar("E", bound=InboundEvent)


class InvalidEvent(ValueError):
    """The hub would dead-letter this event; nothing was sent. `reason` is the dead-letter reason."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason, self.message = reason, message


class DeliveryError(RuntimeError):
    """The broker did not acknowledge a record; the event was not published."""

    def __init__(self, event_id: str | None, topic: str, cause: BaseException) -> None:
        super().__init__(f"event {event_id or '(raw)'} not delivered to {topic}: {type(cause).__name__}: {cause}")
        self.event_id, self.topic, self.cause = event_id, topic, cause


@dataclass(frozen=True)
class Delivered:
    event_id: str | None
    topic: str
    partition: int
    offset: int


class Feed(Generic[E]):
    """Publishes one source's events. Pass a started producer to share one between feeds."""

    stream: ClassVar[Stream]

    def __init__(
        self,
        bootstrap: str | None = None,
        *,
        settings: Settings | None = None,
        topic: str | None = None,
        producer: AIOKafkaProducer | None = None,
    ) -> None:
        base = settings or Settings()
        self.settings = base.model_copy(update={"kafka_bootstrap": bootstrap}) if bootstrap else base
        self.topic = topic or self.settings.topic(self.stream.topic_setting)
        self._producer = producer
        self._owns_producer = producer is None

    async def __aenter__(self) -> Feed[E]:
        await self.start()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    async def start(self) -> None:
        if self._producer is None:
            self._producer = await start_producer(self.settings, f"starting the producer for {self.topic}")

    async def stop(self) -> None:
        if self._owns_producer and self._producer is not None:
            await self._producer.stop()
            self._producer = None

    def check(self, value: bytes) -> E:
        """The event in `value`, as the hub will read it; InvalidEvent if the hub would dead-letter it."""
        verdict = check_value(value, self.stream.model, self.settings.max_message_bytes, self.topic)
        if not isinstance(verdict, Accepted):
            raise InvalidEvent(verdict.reason.value, verdict.message)
        return verdict.event  # type: ignore[return-value]  # the stream's model, so E

    def encode(self, event: E | Mapping[str, Any]) -> bytes:
        if isinstance(event, InboundEvent):
            return event.model_dump_json(exclude_none=True).encode()
        return orjson.dumps(event)

    async def publish(self, event: E | Mapping[str, Any]) -> Delivered:
        return (await self.publish_many([event]))[0]

    async def publish_many(self, events: Iterable[E | Mapping[str, Any]]) -> list[Delivered]:
        """Check all first (InvalidEvent: nothing sent), then send them pipelined; raises on the first
        undelivered record."""
        values = [self.encode(e) for e in events]
        checked = [(self.check(value), value) for value in values]
        return await self._send_all([(e.event_id, e.key.encode(), value) for e, value in checked])

    async def publish_raw(self, value: bytes, key: bytes | None, event_id: str | None = None) -> Delivered:
        """Send bytes as they are (feed tests and the hub's dead-letter tests use this)."""
        return (await self.publish_raw_many([(event_id, key, value)]))[0]

    async def publish_raw_many(self, items: Iterable[tuple[str | None, bytes | None, bytes]]) -> list[Delivered]:
        """(event_id or None, key, value) triples, sent pipelined and in order."""
        return await self._send_all(list(items))

    async def _send_all(self, items: list[tuple[str | None, bytes | None, bytes]]) -> list[Delivered]:
        if self._producer is None:
            raise RuntimeError("feed not started: use `async with Feed(...)` or await feed.start()")
        futures = []
        for event_id, key, value in items:
            try:
                futures.append((event_id, await self._producer.send(self.topic, value=value, key=key)))
            except KafkaError as exc:
                raise DeliveryError(event_id, self.topic, exc) from exc
        results = []
        for event_id, future in futures:
            try:
                meta = await future
            except (TimeoutError, KafkaError) as exc:
                raise DeliveryError(event_id, self.topic, exc) from exc
            results.append(Delivered(event_id, meta.topic, meta.partition, meta.offset))
        return results


class WarehouseFeed(Feed[ShipmentEvent]):
    """`shipment.events`, keyed by shipment_id."""

    stream = SHIPMENT_EVENTS


class CallCentreFeed(Feed[CallLog]):
    """`call.logs`, keyed by customer_id."""

    stream = CALL_LOGS


class CarrierFeed(Feed[CarrierUpdate]):
    """`carrier.updates`, keyed by shipment_id."""

    stream = CARRIER_UPDATES


FEEDS: dict[str, type[Feed[Any]]] = {feed.stream.name: feed for feed in (WarehouseFeed, CallCentreFeed, CarrierFeed)}
