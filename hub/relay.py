"""Publish outbox rows (alerts, dead letters) to Kafka, in order, and mark them sent.

One relay is active per database at a time (a session advisory lock), so rows of one key are
published in the order they were written. It is woken by NOTIFY when a batch commits and
polls as a fallback. At-least-once: a crash between publish and mark re-sends a row with the
same id, which handler-queue consumers drop by `alert_id`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from dataclasses import dataclass, field

import asyncpg
import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

log = logging.getLogger("hub.relay")

_LEADER_LOCK = 0x6875625F72656C  # "hub_rel"
# $2: the rows of the batch still in flight (published, not yet marked sent).
SELECT_UNSENT = """
SELECT id, topic, key, value, headers FROM outbox WHERE sent_at IS NULL AND id <> ALL($2::bigint[]) ORDER BY id LIMIT $1
"""
MARK_SENT = "UPDATE outbox SET sent_at = now() WHERE id = ANY($1::bigint[])"
OUTBOX_BACKLOG = "SELECT count(*) AS rows, min(created_at) AS oldest FROM outbox WHERE sent_at IS NULL"


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
            await conn.add_listener("hub_outbox", lambda *_: self._wake.set())
            await self._relay(conn)
            # A graceful stop publishes what the last batches wrote, so their alerts are not held
            # until the next start (bounded by the runtime's wait for this task).
            while await self.drain_once(conn) == self.batch_size:
                pass
        finally:
            await conn.close(timeout=2)

    async def _relay(self, conn: asyncpg.Connection) -> None:
        """Publish batch k+1 while the broker acknowledges batch k, then mark k sent.

        Waiting for acknowledgements and marking rows took half of each round when done one
        batch at a time, which capped the relay below the hub's own rate.
        """
        in_flight: _InFlight | None = None
        while not self._stop.is_set():
            # Cleared before reading, so a NOTIFY that lands while we publish is not lost
            # (it would otherwise wait for the next poll, up to HUB_OUTBOX_POLL_INTERVAL_S).
            self._wake.clear()
            rows = await conn.fetch(SELECT_UNSENT, self.batch_size, in_flight.ids if in_flight else [])
            sending = await self._publish(rows) if rows else None
            if in_flight is not None:
                await self._mark_sent(conn, in_flight)
            in_flight = sending
            if in_flight is None:
                await self._wait_for_work()
        if in_flight is not None:
            await self._mark_sent(conn, in_flight)

    async def drain_once(self, conn: asyncpg.Connection) -> int:
        """Publish one batch of unsent rows and mark it sent; returns how many there were."""
        rows = await conn.fetch(SELECT_UNSENT, self.batch_size, [])
        if rows:
            await self._mark_sent(conn, await self._publish(rows))
        return len(rows)

    async def _publish(self, rows: list[asyncpg.Record]) -> _InFlight:
        sends = [
            await self.producer.send(
                row["topic"],
                value=bytes(row["value"]) if row["value"] is not None else None,
                key=bytes(row["key"]) if row["key"] is not None else None,
                headers=[(k, bytes.fromhex(v)) for k, v in orjson.loads(row["headers"])],
            )
            for row in rows
        ]
        return _InFlight([row["id"] for row in rows], asyncio.gather(*sends))

    async def _mark_sent(self, conn: asyncpg.Connection, batch: _InFlight) -> None:
        await batch.acknowledged  # a failed send raises here: the rows stay unsent and are read again
        await conn.execute(MARK_SENT, batch.ids)
        self.published += len(batch.ids)

    async def _wait_for_work(self) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), self.poll_interval_s)

    async def _sleep(self, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), seconds)
