"""The hub's FastStream subscriber: the three inbound topics, one consumer group, batches.

    getmany (FastStream batch subscriber, AckPolicy.MANUAL)
      -> Pipeline.process(records)          one Postgres transaction per batch
      -> commit {partition: last offset + 1} only after that transaction committed

A new consumer group starts from the earliest offset, so nothing published before the hub's
first start is missed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from faststream import AckPolicy
from faststream.kafka import KafkaBroker, KafkaMessage

from hub.config import Settings
from hub.decoding import Record
from hub.pipeline import Pipeline, Stopping
from hub.store import BatchOutcome

log = logging.getLogger("hub.consumer")
MAX_FETCH_BYTES = 8 * 1024 * 1024  # above the 1 MiB limit, so oversized records reach the dead-letter topic


def _raw(message: Any) -> Any:
    # The pipeline decodes each record itself; skip FastStream's JSON decoding of the batch.
    return None


def subscribe_inbound(broker: KafkaBroker, settings: Settings, pipeline: Callable[[], Pipeline],
                      on_batch: Callable[[BatchOutcome, float], None] | None = None) -> Any:
    """Register the batch handler; returns the subscriber (its `.consumer` is the aiokafka consumer)."""
    subscriber = broker.subscriber(
        *settings.inbound_topics,
        group_id=settings.consumer_group,
        batch=True,
        max_records=settings.batch_max_records,
        batch_timeout_ms=settings.batch_timeout_ms,
        ack_policy=AckPolicy.MANUAL,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=MAX_FETCH_BYTES,
        fetch_max_wait_ms=100,
        session_timeout_ms=settings.kafka_session_timeout_ms,
        max_poll_interval_ms=settings.kafka_max_poll_interval_ms,
        decoder=_raw,
        include_in_schema=False,
    )

    @subscriber
    async def handle_inbound_batch(body: Any, msg: KafkaMessage) -> None:
        records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        if not records:
            return
        started = time.perf_counter()
        try:
            outcome = await pipeline().process([_record(r) for r in records])
        except Stopping as exc:
            log.warning("%s; %d records left uncommitted for the next start", exc, len(records))
            return
        except Exception:  # noqa: BLE001 - never skip a batch: rewind and try again
            log.exception("batch of %d records failed unexpectedly; rewinding to retry it", len(records))
            _rewind(msg.consumer, records)
            await asyncio.sleep(1.0)
            return
        await _commit(msg.consumer, records)
        elapsed = time.perf_counter() - started
        log.info("batch: %d records, %d processed, %d duplicates, %d dead-lettered, %d alerts, %d tasks, "
                 "%d notifications in %.0f ms", len(records), outcome.processed, outcome.duplicates,
                 sum(outcome.dead_lettered.values()), sum(outcome.alerts.values()), outcome.tasks,
                 outcome.notifications, elapsed * 1000, extra={"batch": _batch_fields(records)})
        if on_batch is not None:
            on_batch(outcome, elapsed)

    return subscriber


def _batch_fields(records: tuple) -> dict[str, Any]:
    """Where the batch came from, for JSON logs: first and last offset per topic-partition."""
    spans: dict[str, list[int]] = {}
    for r in records:
        span = spans.setdefault(f"{r.topic}/{r.partition}", [r.offset, r.offset])
        span[0], span[1] = min(span[0], r.offset), max(span[1], r.offset)
    return {"records": len(records), "offsets": spans}


def _record(raw: Any) -> Record:
    return Record(raw.topic, raw.partition, raw.offset, raw.key, raw.value,
                  tuple((k, v if v is not None else b"") for k, v in (raw.headers or ())))


def _next_offsets(records: tuple) -> dict[TopicPartition, int]:
    offsets: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        offsets[tp] = max(offsets.get(tp, 0), r.offset + 1)
    return offsets


async def _commit(consumer: Any, records: tuple) -> None:
    try:
        await consumer.commit(_next_offsets(records))
    except (CommitFailedError, IllegalStateError, KafkaError) as exc:
        # The group rebalanced under us: the new owner re-reads these records and the inbox
        # turns them into duplicates, so nothing is lost or doubled.
        log.warning("offsets not committed (%s); the records will be redelivered and skipped as duplicates",
                    type(exc).__name__)


def _rewind(consumer: Any, records: tuple) -> None:
    first: dict[TopicPartition, int] = {}
    for r in records:
        tp = TopicPartition(r.topic, r.partition)
        first[tp] = min(first.get(tp, r.offset), r.offset)
    for tp, offset in first.items():
        try:
            consumer.seek(tp, offset)
        except (IllegalStateError, KafkaError, AssertionError):
            pass  # no longer ours after a rebalance; the new owner reads from the committed offset
