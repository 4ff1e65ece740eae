"""The floor: the least work a Kafka -> Postgres pipeline can do for this traffic, in plain code.

    getmany(1000) -> msgspec decode -> one INSERT ... SELECT FROM unnest(...) ON CONFLICT DO NOTHING
    (one row per event, its own transaction) -> re-publish the ~10% that need attention and await
    the acks -> commit offsets.

Sequential (no overlap of decoding and the round trip), like the hub's own batch loop.
Run by the benchmark: `python -m bench.floor '<PipelineConfig JSON>'`; stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
from datetime import datetime

import asyncpg
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from bench.baseline import INSERT_EVENTS_BATCH, PipelineConfig
from bench.workload import needs_attention
from hub.config import Settings
from hub.dev.simulator import CALL, CARRIER, SHIPMENT

FETCH_WAIT_MS = Settings.model_fields["kafka_fetch_max_wait_ms"].default  # as the hub's subscriber


class ShipmentRow(msgspec.Struct):
    event_id: str
    occurred_at: datetime
    shipment_id: str
    type: str
    priority: str = "normal"


class CarrierRow(msgspec.Struct):
    event_id: str
    occurred_at: datetime
    shipment_id: str
    status: str


class CallRow(msgspec.Struct):
    event_id: str
    occurred_at: datetime
    customer_id: str
    category: str


_DECODERS = {
    SHIPMENT: msgspec.json.Decoder(ShipmentRow),
    CARRIER: msgspec.json.Decoder(CarrierRow),
    CALL: msgspec.json.Decoder(CallRow),
}


def row_of(kind: str, topic: str, value: bytes) -> tuple[tuple, bool]:
    """(the bench_events row, whether it needs attention) of one record."""
    event = _DECODERS[kind].decode(value)
    if kind == SHIPMENT:
        key, status, attention = event.shipment_id, event.type, needs_attention(kind, event.type, event.priority)
    elif kind == CARRIER:
        key, status, attention = event.shipment_id, event.status, needs_attention(kind, event.status)
    else:
        key, status, attention = event.customer_id, event.category, needs_attention(kind, event.category)
    return (event.event_id, topic, key, status, event.occurred_at, value.decode()), attention


class Floor:
    def __init__(self, config: PipelineConfig) -> None:
        self.config = config
        self.kind_of = {topic: kind for kind, topic in config.topics.items()}
        self.stop = asyncio.Event()

    async def run(self) -> None:
        c = self.config
        conn = await asyncpg.connect(c.dsn)
        consumer = AIOKafkaConsumer(
            *c.topics.values(),
            bootstrap_servers=c.bootstrap,
            group_id=c.group_id,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_WAIT_MS,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        producer = AIOKafkaProducer(bootstrap_servers=c.bootstrap, acks="all", enable_idempotence=False, linger_ms=5)
        await consumer.start()
        await producer.start()
        try:
            while not self.stop.is_set():
                batches = await consumer.getmany(timeout_ms=FETCH_WAIT_MS, max_records=c.batch_max_records)
                if batches:
                    await self.handle(conn, consumer, producer, batches)
        finally:
            await consumer.stop()
            await producer.stop()
            await conn.close()

    async def handle(
        self, conn: asyncpg.Connection, consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, batches: dict
    ) -> None:
        rows, urgent = [], []
        for records in batches.values():
            for r in records:
                row, attention = row_of(self.kind_of[r.topic], r.topic, r.value)
                rows.append(row)
                if attention:
                    urgent.append(r)
        await conn.execute(INSERT_EVENTS_BATCH, *[list(column) for column in zip(*rows, strict=False)])
        acks = [await producer.send(self.config.attention_topic, r.value, key=r.key) for r in urgent]
        await asyncio.gather(*acks)
        await consumer.commit(
            {TopicPartition(tp.topic, tp.partition): records[-1].offset + 1 for tp, records in batches.items()}
        )


async def main() -> None:
    floor = Floor(PipelineConfig.from_argv())
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, floor.stop.set)
    loop.add_signal_handler(signal.SIGINT, floor.stop.set)
    await floor.run()


if __name__ == "__main__":
    asyncio.run(main())
