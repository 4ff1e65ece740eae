"""Publish outbox rows (alerts, dead letters) to Kafka, in order, and mark them sent.

One relay is active per database at a time (a session advisory lock), so rows of one key are
published in the order they were written. It is woken by NOTIFY when a batch commits and
polls as a fallback. At-least-once: a crash between publish and mark re-sends a row with the
same id, which handler-queue consumers drop by `alert_id`.

Where its time went, and what it does instead (see bench/README.md, "The outbox relay"):
- a batch of rows goes to the producer as one closed record batch per partition (`_publish`), not
  row by row through `send()`, which waited a broker round trip whenever a partition's 16 KiB
  batch filled;
- it reads on while the broker acknowledges (up to `max_in_flight` batches), marks what was
  acknowledged in the same statement as the next read, and reads more at once while behind
  (`_relay`): each round trip also waits for an event loop a hub worker's consumer keeps busy;
- marks do not wait for the WAL flush, and plans are never generic (`RELAY_SESSION`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
from collections import defaultdict, deque
from dataclasses import dataclass, field

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError
from aiokafka.producer.message_accumulator import BatchBuilder

log = logging.getLogger("hub.relay")

_LEADER_LOCK = 0x6875625F72656C  # "hub_rel"
# $2: the rows of the batch still in flight (published, not yet marked sent).
SELECT_UNSENT = """
SELECT id, topic, key, value, headers FROM outbox WHERE sent_at IS NULL AND id <> ALL($2::bigint[]) ORDER BY id LIMIT $1
"""
MARK_SENT = "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])"
# Marks $3 sent and reads on, in one round trip. The read does not see the mark (one snapshot), so
# it skips $3, the rows still in flight, and (while a backlog lasts, see `_relay`) all ids up to $4.
MARK_AND_SELECT = """
WITH marked AS (UPDATE outbox SET sent_at = now() WHERE id = ANY($3::bigint[]))
SELECT id, topic, key, value, headers FROM outbox
WHERE sent_at IS NULL AND id > $4 AND id <> ALL($2::bigint[]) ORDER BY id LIMIT $1
"""
# A lost mark (Postgres crashed before flushing it) only re-sends identical rows, which the relay
# allows anyway; waiting for each mark's WAL flush cost the relay a third of its time. Generic plans
# for `id = ANY($n)` (chosen after five executions) scanned the whole outbox: seconds per statement.
# Each mark leaves a dead entry in `outbox_unsent` until a vacuum. A bitmap scan visits them all on
# every read and never marks them dead (4.7 ms a read after 60,000 alerts in 30 s); a plain index
# scan marks them once, and later reads skip them (0.6 ms flat).
RELAY_SESSION = "SET synchronous_commit = off; SET plan_cache_mode = force_custom_plan; SET enable_bitmapscan = off"
# Bytes per record batch (one per partition per relay batch); a record larger than this still goes,
# alone. The producer's own max_batch_size (16 KiB) filled after ~25 alerts, and `send()` then waited
# a broker round trip for that partition, one partition after another.
RECORD_BATCH_BYTES = 512 * 1024
# Behind (a read came back full), the relay reads up to this many times `batch_size` rows at once:
# each round waits several times for the event loop it shares with a hub worker's consumer, so a
# busy worker capped the relay at a few rounds a second, of `batch_size` rows each.
BATCH_GROWTH = 8


@dataclass
class _InFlight:
    ids: list[int]
    acknowledged: asyncio.Future


@dataclass
class OutboxRelay:
    dsn: str
    producer: AIOKafkaProducer
    batch_size: int = 500
    poll_interval_s: float = 1.0
    connect_kwargs: dict = field(default_factory=dict)
    record_batch_bytes: int = RECORD_BATCH_BYTES
    max_in_flight: int = 2  # relay batches published and not yet acknowledged
    published: int = 0
    _wake: asyncio.Event = field(default_factory=asyncio.Event)
    _stop: asyncio.Event = field(default_factory=asyncio.Event)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    async def run(self) -> None:
        """Relay until stopped; survives Postgres and broker outages by reconnecting."""
        delay = 0.5
        while not self._stop.is_set():
            try:
                await self._lead()
                delay = 0.5
            except (TimeoutError, OSError, KafkaError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("outbox relay interrupted (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay)
                await self._sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _lead(self) -> None:
        conn = await asyncpg.connect(self.dsn, **self.connect_kwargs)
        try:
            while not await conn.fetchval("SELECT pg_try_advisory_lock($1)", _LEADER_LOCK):
                await self._sleep(self.poll_interval_s * 2)  # another hub relays; take over if it dies
                if self._stop.is_set():
                    return
            await conn.execute(RELAY_SESSION)
            await conn.add_listener("hub_outbox", lambda *_: self._wake.set())
            await self._relay(conn)
            # A graceful stop publishes what the last batches wrote, so their alerts are not held
            # until the next start (bounded by the runtime's wait for this task).
            while await self.drain_once(conn) == self.batch_size:
                pass
        finally:
            await conn.close(timeout=2)

    async def _relay(self, conn: asyncpg.Connection) -> None:
        """Read, publish, read again while the broker acknowledges; mark what it acknowledged.

        Up to `max_in_flight` batches are published and unacknowledged at a time (their rows are
        left out of the next read). The rows of acknowledged batches are marked sent by the next
        read's own statement, in the order published, so a round costs one Postgres round trip.
        """
        in_flight: deque[_InFlight] = deque()
        acknowledged: list[int] = []  # rows of batches the broker acknowledged, not yet marked sent
        limit = self.batch_size
        full = False
        loop = asyncio.get_running_loop()
        looked_back = loop.time()  # the last read that also looked below the rows in flight
        try:
            while not self._stop.is_set():
                # Cleared before reading, so a NOTIFY that lands while we publish is not lost
                # (it would otherwise wait for the next poll, up to HUB_OUTBOX_POLL_INTERVAL_S).
                self._wake.clear()
                acknowledged = _take_acknowledged(in_flight)
                if in_flight and in_flight[0].acknowledged.done():
                    in_flight[0].acknowledged.result()  # the broker refused it: raises, its rows stay unsent
                if full and in_flight and loop.time() - looked_back < self.poll_interval_s:
                    # A backlog: read on after the newest row in flight. Skipping the rows in flight
                    # one by one cost more than reading the new ones; a row committed late below them
                    # (another worker's transaction) waits for the next full read, within a poll interval.
                    rows = await conn.fetch(MARK_AND_SELECT, limit, [], acknowledged, in_flight[-1].ids[-1])
                else:
                    looked_back = loop.time()
                    rows = await conn.fetch(MARK_AND_SELECT, limit, [*_ids(in_flight), *acknowledged], acknowledged, 0)
                self.published, acknowledged = self.published + len(acknowledged), []
                if rows:
                    in_flight.append(await self._publish(rows))
                full = len(rows) == limit
                limit = min(limit * 2, self.batch_size * BATCH_GROWTH) if full else self.batch_size
                if len(in_flight) >= self.max_in_flight:
                    await self._wait_for(in_flight[0].acknowledged, new_rows=False)
                elif full:
                    continue  # a backlog: read on while the broker acknowledges
                elif in_flight:
                    await self._wait_for(in_flight[0].acknowledged, new_rows=True)
                else:
                    await self._wait_for_work()
            while in_flight:  # stopping: what is published is marked once acknowledged
                await in_flight[0].acknowledged
                acknowledged += in_flight.popleft().ids
            await self._mark(conn, acknowledged)
        except KafkaError:
            # Refused: what the broker took before is marked; the refused batch and those after it
            # stay unsent and the next lead reads and publishes them again.
            await self._mark(conn, acknowledged + _take_acknowledged(in_flight))
            raise
        finally:
            for batch in in_flight:
                _discard(batch.acknowledged)

    async def drain_once(self, conn: asyncpg.Connection) -> int:
        """Publish one batch of unsent rows and mark it sent; returns how many there were."""
        rows = await conn.fetch(SELECT_UNSENT, self.batch_size, [])
        if rows:
            await self._mark_sent(conn, await self._publish(rows))
        return len(rows)

    async def _publish(self, rows: list[asyncpg.Record]) -> _InFlight:
        """Hand the rows to the producer as one closed record batch per partition, in id order.

        Closed batches are sent at once (no linger) and all partitions' batches of one relay batch
        travel in one produce request. Returns once every batch is queued in the producer, so the
        next call's batches queue behind these: a key's rows reach its partition in id order.
        """
        partitions = {
            topic: sorted(await self.producer.partitions_for(topic)) for topic in {row["topic"] for row in rows}
        }
        builders: dict[tuple[str, int], list[BatchBuilder]] = defaultdict(list)
        for row in rows:
            topic, key, value = row["topic"], row["key"], row["value"]
            partition = partition_for(key, partitions[topic])
            headers = [(k, bytes.fromhex(v)) for k, v in orjson.loads(row["headers"])]
            chunks = builders[(topic, partition)]
            if not chunks or chunks[-1].append(timestamp=None, key=key, value=value, headers=headers) is None:
                chunks.append(self._builder())  # a new builder takes any one record, however large
                chunks[-1].append(timestamp=None, key=key, value=value, headers=headers)
        futures = []
        for (topic, partition), chunks in builders.items():
            for chunk in chunks:  # a second chunk waits until the first is on its way (> record_batch_bytes)
                chunk.close()
                futures.append(await self.producer.send_batch(chunk, topic, partition=partition))
        return _InFlight([row["id"] for row in rows], asyncio.gather(*futures))

    def _builder(self) -> BatchBuilder:
        """A record batch builder like the producer's own (`create_batch()`), but `record_batch_bytes` large."""
        accumulator = self.producer._message_accumulator
        txn = accumulator._txn_manager
        return BatchBuilder(
            self.record_batch_bytes,
            accumulator._compression_type,
            is_transactional=txn is not None and txn.transactional_id is not None,
        )

    async def _mark_sent(self, conn: asyncpg.Connection, batch: _InFlight) -> None:
        await batch.acknowledged  # a failed send raises here: the rows stay unsent and are read again
        await self._mark(conn, batch.ids)

    async def _mark(self, conn: asyncpg.Connection, ids: list[int]) -> None:
        if ids:
            await conn.execute(MARK_SENT, ids)
            self.published += len(ids)

    async def _wait_for(self, acknowledged: asyncio.Future, *, new_rows: bool) -> None:
        """Until the batch is acknowledged (or refused) or a stop; with `new_rows`, also until rows
        are notified or the poll interval passes (without, no more may be published meanwhile)."""
        woken = asyncio.ensure_future((self._wake if new_rows else self._stop).wait())
        try:
            await asyncio.wait(
                [woken, acknowledged],
                timeout=self.poll_interval_s if new_rows else None,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            woken.cancel()

    async def _wait_for_work(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)


def _ids(batches) -> list[int]:
    return [i for batch in batches for i in batch.ids]


def _take_acknowledged(in_flight: deque) -> list[int]:
    """Pop the batches the broker has acknowledged, oldest first, up to the first one still waiting
    or refused (which stays); their row ids."""
    ids: list[int] = []
    while (
        in_flight
        and in_flight[0].acknowledged.done()
        and not in_flight[0].acknowledged.cancelled()
        and in_flight[0].acknowledged.exception() is None
    ):
        ids += in_flight.popleft().ids
    return ids


def _discard(acknowledged: asyncio.Future) -> None:
    """Stop waiting for a batch's acknowledgement (its records may still arrive; the rows stay unsent)."""
    if acknowledged.done():
        if not acknowledged.cancelled():
            acknowledged.exception()  # retrieved: no "exception was never retrieved" at exit
    else:
        acknowledged.cancel()


def partition_for(key: bytes | None, partitions: list[int]) -> int:
    """The partition aiokafka's DefaultPartitioner (and the Java client) picks for `key` among all of a
    topic's `partitions` (sorted); a record without a key goes to any."""
    if key is None:
        return random.choice(partitions)
    return partitions[(murmur2(key) & 0x7FFFFFFF) % len(partitions)]


_M = 0x5BD1E995


def murmur2(data: bytes) -> int:
    """Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), equal to aiokafka's
    `aiokafka.partitioner.murmur2` but a third cheaper: it read the key byte by byte and took a
    fifth of the relay's CPU."""
    length = len(data)
    h = 0x9747B28C ^ length
    words = length >> 2
    if words:
        for k in struct.unpack_from(f"<{words}I", data):
            k = (k * _M) & 0xFFFFFFFF
            k ^= k >> 24
            h = ((h * _M) & 0xFFFFFFFF) ^ ((k * _M) & 0xFFFFFFFF)
    tail = length & 3
    if tail:
        base = length & ~3
        if tail == 3:
            h ^= data[base + 2] << 16
        if tail >= 2:
            h ^= data[base + 1] << 8
        h = ((h ^ data[base]) * _M) & 0xFFFFFFFF
    h ^= h >> 13
    h = (h * _M) & 0xFFFFFFFF
    return h ^ (h >> 15)
