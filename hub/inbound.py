"""Consumed batches through the pipeline, committed in order: the hub's side of the Kafka consumer.

getmany (consumers/inbound.py; at most HUB_BATCH_STEADY_RECORDS while keeping up,
         HUB_BATCH_MAX_RECORDS through a backlog)
  -> decode each record                  (while the previous batch is in Postgres)
  -> Pipeline.store: one transaction     (at most HUB_BATCH_PIPELINE_DEPTH batches in flight)
  -> commit {partition: last offset + 1} in batch order, each only after its transaction committed
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiokafka import ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError

from hub.core.decoding import Record
from hub.core.outcome import BatchOutcome
from hub.pipeline import InboxTurn, Pipeline, Stopping

log = logging.getLogger("hub.consumer")
BACKLOG_POLLS = 2  # records read in full polls, in HUB_BATCH_MAX_RECORDS, that make a backlog


Spans = dict[tuple[str, int], tuple[int, int]]  # (topic, partition) -> (first, last offset) of a batch


@dataclass
class _InFlight:
    # Offsets only: a batch's raw records are let go once decoded, so a backlog in flight costs
    # its decoded events and not their Kafka records as well (see README, "Memory").
    task: asyncio.Task
    spans: Spans
    count: int
    started: float


class InboundBatches:
    """Stores batches concurrently (per-shipment locks in Postgres keep them consistent) and
    commits their offsets strictly in the order the batches were read."""

    def __init__(
        self,
        pipeline: Callable[[], Pipeline],
        depth: int,
        on_batch: Callable[[BatchOutcome, float], None] | None = None,
        *,
        max_records: int,
        steady_records: int = 0,
    ) -> None:
        self._pipeline = pipeline
        self._depth = max(1, depth)
        self._on_batch = on_batch
        self._max_records = max_records
        self._steady_records = min(steady_records, self._max_records) or self._max_records
        self.poll_size = self._steady_records  # most records the next poll may return
        self._read_in_full_polls = 0
        self._in_flight: deque[_InFlight] = deque()
        self._last_turn: InboxTurn | None = None  # the inbox claim of the batch read last
        self._lock = asyncio.Lock()
        self._background: set[asyncio.Task] = set()
        self.stopping = False

    def _adapt_poll_size(self, polled: int) -> None:
        """A poll short of its limit read everything there was: the hub keeps up, and polls of
        HUB_BATCH_STEADY_RECORDS bound what it holds in flight when the broker delivers in bursts.
        Full polls adding up to BACKLOG_POLLS x HUB_BATCH_MAX_RECORDS are a backlog, drained fastest
        in batches of HUB_BATCH_MAX_RECORDS until a poll comes back short again."""
        if polled < self.poll_size:
            self._read_in_full_polls, self.poll_size = 0, self._steady_records
            return
        self._read_in_full_polls += polled
        if self._read_in_full_polls >= BACKLOG_POLLS * self._max_records:
            self.poll_size = self._max_records

    async def handle(self, records: tuple, consumer: Any) -> None:
        self._adapt_poll_size(len(records))
        if not records or self.stopping:
            return  # not stored, not committed: read again after the restart
        pipeline = self._pipeline()
        started = time.perf_counter()
        decoded = pipeline.decode([_record(r) for r in records])
        turn = self._last_turn = InboxTurn(self._last_turn)
        task = asyncio.create_task(pipeline.store(*decoded, turn=turn), name="store-batch")
        task.add_done_callback(lambda _: turn.claimed())  # however it ends, even cancelled before it ran
        self._in_flight.append(_InFlight(task, _spans(records), len(records), started))
        # Commit as soon as it is stored, even if no further batch arrives to wait on it.
        task.add_done_callback(lambda _: self._background.add(asyncio.create_task(self._settle_done(consumer))))
        await self.settle(consumer, keep=0 if self.stopping else self._depth - 1)

    async def _settle_done(self, consumer: Any) -> None:
        await self.settle(consumer, keep=0, only_done=True)
        self._background.discard(asyncio.current_task())

    async def settle(self, consumer: Any, keep: int = 0, only_done: bool = False) -> None:
        """Wait for the oldest batches until at most `keep` are in flight, committing each in order.

        With `only_done`, commit just the leading batches that are already stored, without waiting.
        """
        async with self._lock:
            while len(self._in_flight) > keep and not (only_done and not self._in_flight[0].task.done()):
                batch = self._in_flight[0]
                try:
                    outcome = await asyncio.shield(batch.task)
                except Stopping as exc:
                    self._abandon(consumer, f"{exc}")
                    return
                except Exception:  # never skip a batch: rewind and read it again
                    log.exception("batch of %d records failed unexpectedly; rewinding to retry it", batch.count)
                    self._abandon(consumer, "rewound after an unexpected error")
                    await asyncio.sleep(1.0)
                    return
                self._in_flight.popleft()
                await _commit(consumer, batch.spans)
                self._report(batch, outcome)

    def _abandon(self, consumer: Any, why: str) -> None:
        """Drop every batch from the failed one on: none of their offsets may be committed, and the
        consumer re-reads from the failed batch's first records (stored ones become duplicates)."""
        abandoned = list(self._in_flight)
        self._in_flight.clear()
        for batch in abandoned:
            batch.task.cancel()
        if not self.stopping:
            _rewind(consumer, [batch.spans for batch in abandoned])
        log.warning("%s; %d records left uncommitted, to be read again", why, sum(b.count for b in abandoned))

    def _report(self, batch: _InFlight, outcome: BatchOutcome) -> None:
        elapsed = time.perf_counter() - batch.started
        # One line per batch at DEBUG; at INFO, hub.observability.ActivityLog sums them up every 10 s.
        if log.isEnabledFor(logging.DEBUG):  # the extra fields are built only when logged
            log.debug(
                "batch: %d records, %d processed, %d duplicates, %d dead-lettered, %d alerts, %d tasks, "
                "%d notifications in %.0f ms",
                batch.count,
                outcome.processed,
                outcome.duplicates,
                sum(outcome.dead_lettered.values()),
                sum(outcome.alerts.values()),
                outcome.tasks,
                outcome.notifications,
                elapsed * 1000,
                extra={"batch": _batch_fields(batch)},
            )
        if self._on_batch is not None:
            self._on_batch(outcome, elapsed)


def _spans(records: tuple) -> Spans:
    spans: Spans = {}
    for r in records:
        key = (r.topic, r.partition)
        first, last = spans.get(key, (r.offset, r.offset))
        spans[key] = (min(first, r.offset), max(last, r.offset))
    return spans


def _batch_fields(batch: _InFlight) -> dict[str, Any]:
    """Where the batch came from, for JSON logs: first and last offset per topic-partition."""
    return {"records": batch.count, "offsets": {f"{t}/{p}": list(span) for (t, p), span in batch.spans.items()}}


def _record(raw: Any) -> Record:
    headers = tuple((k, v if v is not None else b"") for k, v in raw.headers) if raw.headers else ()
    return Record(raw.topic, raw.partition, raw.offset, raw.key, raw.value, headers)


async def _commit(consumer: Any, spans: Spans) -> None:
    try:
        await consumer.commit({TopicPartition(t, p): last + 1 for (t, p), (_first, last) in spans.items()})
    except (CommitFailedError, IllegalStateError, KafkaError) as exc:
        # The group rebalanced under us: the new owner re-reads these records and the inbox
        # turns them into duplicates, so nothing is lost or doubled.
        log.warning(
            "offsets not committed (%s); the records will be redelivered and skipped as duplicates", type(exc).__name__
        )


def _rewind(consumer: Any, batches: list[Spans]) -> None:
    first: dict[TopicPartition, int] = {}
    for spans in batches:
        for (topic, partition), (offset, _last) in spans.items():
            tp = TopicPartition(topic, partition)
            first[tp] = min(first.get(tp, offset), offset)
    for tp, offset in first.items():
        # no longer ours after a rebalance: the new owner reads from the committed offset
        with contextlib.suppress(IllegalStateError, KafkaError, AssertionError):
            consumer.seek(tp, offset)


class AssignmentLog(ConsumerRebalanceListener):
    """One short INFO line per rebalance, partitions counted per topic (FastStream's own line lists
    every partition, 1,300 characters for the three topics; hub.logs drops it)."""

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        if revoked:
            log.debug("partitions revoked: %s", partition_counts(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        log.info(
            "partitions assigned: %s",
            partition_counts(assigned) or "none (more consumers than partitions, or the group is rebalancing)",
            extra={"partitions": _per_topic(assigned)},
        )


def _per_topic(partitions: set[TopicPartition]) -> dict[str, int]:
    return dict(Counter(tp.topic for tp in partitions))


def partition_counts(partitions: set[TopicPartition]) -> str:
    """'9: call.logs 3, carrier.updates 3, shipment.events 3'"""
    per_topic = _per_topic(partitions)
    if not per_topic:
        return ""
    return f"{len(partitions)}: " + ", ".join(f"{topic} {n}" for topic, n in sorted(per_topic.items()))
