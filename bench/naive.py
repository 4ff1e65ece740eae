"""The naive pipeline: what the FastStream tutorial leads to.

One per-message subscriber per topic (not batch), the contract's pydantic model as the handler's
argument, one INSERT per event in its own transaction through an asyncpg pool, and
`await broker.publish(...)` for the events that need attention. FastStream's defaults otherwise
(acknowledgement policy, a log line per message).
Run by the benchmark: `python -m bench.naive '<PipelineConfig JSON>'`; stops on SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal

import asyncpg
from faststream.kafka import KafkaBroker

from bench.baseline import INSERT_EVENT, PipelineConfig
from bench.workload import needs_attention
from hub.dev.simulator import CALL, CARRIER, SHIPMENT
from schemas.inbound import CallLog, CarrierUpdate, InboundEvent, ShipmentEvent


def build(config: PipelineConfig, pool: asyncpg.Pool) -> KafkaBroker:
    broker = KafkaBroker(config.bootstrap)

    async def store(event: InboundEvent, topic: str, key: str, status: str, attention: bool) -> None:
        async with pool.acquire() as conn:
            await conn.execute(
                INSERT_EVENT, event.event_id, topic, key, status, event.occurred_at, event.model_dump_json()
            )
        if attention:
            await broker.publish(event, topic=config.attention_topic, key=key.encode())

    shipments, carriers, calls = config.topics[SHIPMENT], config.topics[CARRIER], config.topics[CALL]

    @broker.subscriber(shipments, group_id=f"{config.group_id}-shipments", auto_offset_reset="earliest")
    async def on_shipment_event(event: ShipmentEvent) -> None:
        status = event.type.value
        await store(
            event, shipments, event.shipment_id, status, needs_attention(SHIPMENT, status, event.priority.value)
        )

    @broker.subscriber(carriers, group_id=f"{config.group_id}-carriers", auto_offset_reset="earliest")
    async def on_carrier_update(event: CarrierUpdate) -> None:
        status = event.status.value
        await store(event, carriers, event.shipment_id, status, needs_attention(CARRIER, status))

    @broker.subscriber(calls, group_id=f"{config.group_id}-calls", auto_offset_reset="earliest")
    async def on_call_log(event: CallLog) -> None:
        category = event.category.value
        await store(event, calls, event.customer_id, category, needs_attention(CALL, category))

    return broker


async def main() -> None:
    config = PipelineConfig.from_argv()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    async with asyncpg.create_pool(config.dsn) as pool:
        broker = build(config, pool)
        await broker.start()
        try:
            await stop.wait()
        finally:
            await broker.stop()


if __name__ == "__main__":
    asyncio.run(main())
