"""The contract's topics described as FastStream subscribers and publishers, for AsyncAPI.

`hub run` consumes the three inbound topics with one raw batch subscriber (see inbound.py),
which cannot carry per-topic payload types. This broker mirrors the same topics with their
payload models so FastStream generates the AsyncAPI document; it is never started.
"""

from __future__ import annotations

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from hub.config import Settings
from schemas.inbound import CallLog, CarrierUpdate, ShipmentEvent
from schemas.outbound import Alert

DESCRIPTION = (
    "Kafka-native integration hub for a logistics customer-service desk. It reads shipment events, "
    "call logs and carrier updates, and routes exceptions, urgent orders and complaints to handler "
    "queues. Inbound messages that cannot be processed go to the dead-letter topic with their "
    "original key, bytes and headers, plus hub.errors.* headers."
)


def contract_specification(settings: Settings | None = None) -> AsyncAPI:
    s = settings or Settings.model_construct()
    broker = KafkaBroker("kafka:9092", description="Apache Kafka (any Kafka-protocol broker)")

    @broker.subscriber(s.topic_shipment_events, group_id=s.consumer_group, title=s.topic_shipment_events,
                       description="Warehouse systems and the logistics centre. Key: shipment_id.")
    async def shipment_events(event: ShipmentEvent) -> None: ...

    @broker.subscriber(s.topic_call_logs, group_id=s.consumer_group, title=s.topic_call_logs,
                       description="Call centre, e-mail and chat desk. Key: customer_id.")
    async def call_logs(event: CallLog) -> None: ...

    @broker.subscriber(s.topic_carrier_updates, group_id=s.consumer_group, title=s.topic_carrier_updates,
                       description="Carriers' status updates. Key: shipment_id.")
    async def carrier_updates(event: CarrierUpdate) -> None: ...

    for topic, what in ((s.topic_alerts_exceptions, "damage, loss, delivery problems, customs, delays, claims"),
                        (s.topic_alerts_urgent, "urgent orders"),
                        (s.topic_alerts_complaints, "complaints and repeat contacts")):
        broker.publisher(topic, schema=Alert, title=topic,
                         description=f"Handler queue: {what}. Key: shipment_id, else customer_id. "
                                     "De-duplicate by alert_id.")
    broker.publisher(s.topic_dead_letter, title=s.topic_dead_letter,
                     description="Dead letters: the original key, bytes and headers, plus headers "
                                 "hub.errors.reason, .class, .message, .topic, .partition, .offset, .timestamp.")
    return AsyncAPI(broker, title="Logistics integration hub", version="1", description=DESCRIPTION)
