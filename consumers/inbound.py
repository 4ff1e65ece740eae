"""The hub's FastStream subscriber: the three inbound topics, one consumer group, batches.

FastStream polls (a batch subscriber, AckPolicy.MANUAL) and hands each poll to
hub.inbound.InboundBatches, which decodes, stores and commits it. A new consumer group starts
from the earliest offset, so nothing published before the hub's first start is missed.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka.coordinator.assignors.range import RangePartitionAssignor
from aiokafka.coordinator.assignors.roundrobin import RoundRobinPartitionAssignor
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from hub.config import Settings
from hub.inbound import AssignmentLog, InboundBatches

MAX_FETCH_BYTES = 8 * 1024 * 1024  # above the 1 MiB limit, so oversized records reach the dead-letter topic


def _raw(message: Any) -> Any:
    # The pipeline decodes each record itself; skip FastStream's JSON decoding of the batch.
    return None


def _batch_parser(consumer: Callable[[], Any]) -> Callable[[tuple], Awaitable[KafkaMessage]]:
    """Wrap a fetched batch as it is. FastStream's own batch parser decodes every header value as
    UTF-8, so a single record with a binary header (tracing systems send them) would fail its whole
    batch before the hub saw it. The hub reads each record's bytes itself (hub.core.decoding.Record).
    A plain KafkaMessage, not FastStream's ackable one: only InboundBatches commits offsets."""

    async def parse_batch(records: tuple) -> KafkaMessage:  # FastStream passes only non-empty batches
        first = records[0]
        return KafkaMessage(
            records, None, message_id=f"{first.topic}-{first.partition}-{first.offset}", consumer=consumer()
        )

    return parse_batch


def subscribe_inbound(broker: KafkaBroker, settings: Settings, batches: InboundBatches) -> Any:
    """Register the batch handler; returns the subscriber (its `.consumer` is the aiokafka consumer)."""
    subscriber = broker.subscriber(
        *settings.inbound_topics,
        group_id=settings.consumer_group,
        batch=True,
        max_records=batches.poll_size,
        batch_timeout_ms=settings.batch_timeout_ms,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=MAX_FETCH_BYTES,
        fetch_max_wait_ms=settings.kafka_fetch_max_wait_ms,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
        # Range gives partition N of every topic to the same member: shipment events and carrier
        # updates of one shipment (same key, same partition number) meet in one hub process
        # instead of contending for its lock across processes. Round robin (the client's
        # default) stays listed so a group of older hubs can still be joined during an upgrade.
        partition_assignment_strategy=(RangePartitionAssignor, RoundRobinPartitionAssignor),
        listener=AssignmentLog(),  # partitions counted per topic, on one short line
        parser=_batch_parser(lambda: subscriber.consumer),  # bound once the subscriber exists
        decoder=_raw,
        include_in_schema=False,
    )

    @subscriber
    async def handle_inbound_batch(body: Any, msg: KafkaMessage) -> None:
        records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        await batches.handle(records, msg.consumer)
        subscriber.max_records = batches.poll_size  # FastStream's batch subscriber reads it on every poll

    return subscriber
