"""The contract's topics as integrators read them: a JSON Schema per topic and the AsyncAPI document.

`hub run` consumes the three inbound topics with one raw batch subscriber (see inbound.py),
which cannot carry per-topic payload types. The broker here mirrors the same topics with their
payload models so FastStream generates the AsyncAPI document; it is never started. Topics and
models come from the one table, hub/core/topics.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from faststream.kafka import KafkaBroker
from faststream.specification import AsyncAPI

from hub.config import Settings
from hub.core.topics import QUEUES, STREAMS, Stream
from schemas.export import dump, json_schema
from schemas.outbound import Alert, DeadLetterHeaders

DESCRIPTION = (
    "Kafka-native integration hub for a logistics customer-service desk. It reads shipment events, "
    "call logs and carrier updates, and routes exceptions, urgent orders and complaints to handler "
    "queues. Inbound messages that cannot be processed go to the dead-letter topic with their "
    "original key, bytes and headers, plus hub.errors.* headers."
)


def _subscribe(broker: KafkaBroker, settings: Settings, stream: Stream) -> None:
    topic = settings.topic(stream.topic_setting)
    key = stream.model.topic_key

    async def handler(event: Any) -> None: ...

    handler.__annotations__["event"] = stream.model  # the payload type FastStream documents
    handler.__name__ = stream.name
    broker.subscriber(
        topic, group_id=settings.consumer_group, title=topic, description=f"{stream.published_by}. Key: {key}."
    )(handler)


def contract_specification(settings: Settings | None = None) -> AsyncAPI:
    s = settings or Settings.model_construct()
    broker = KafkaBroker("kafka:9092", description="Apache Kafka (any Kafka-protocol broker)")
    for stream in STREAMS:
        _subscribe(broker, s, stream)
    for spec in QUEUES:
        topic = s.topic(spec.topic_setting)
        broker.publisher(
            topic,
            schema=Alert,
            title=topic,
            description=f"Handler queue: {spec.carries}. Key: shipment_id, else customer_id. De-duplicate by alert_id.",
        )
    broker.publisher(
        s.dead_letter_topic,
        title=s.dead_letter_topic,
        description="Dead letters: the original key, bytes and headers, plus headers "
        "hub.errors.reason, .class, .message, .topic, .partition, .offset, .timestamp.",
    )
    return AsyncAPI(broker, title="Logistics integration hub", version="1", description=DESCRIPTION)


def json_schemas(settings: Settings | None = None) -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, one per topic (the dead-letter topic's documents its headers)."""
    s = settings or Settings.model_construct()
    docs = {}
    for stream in STREAMS:
        topic = s.topic(stream.topic_setting)
        docs[topic] = json_schema(topic, stream.model, "validation")
    for spec in QUEUES:
        topic = s.topic(spec.topic_setting)
        docs[topic] = json_schema(topic, Alert, "serialization")
    headers = f"{s.dead_letter_topic}.headers"
    docs[headers] = json_schema(headers, DeadLetterHeaders, "serialization")
    return {f"{name}.schema.json": doc for name, doc in docs.items()}


def render_all() -> dict[str, str]:
    files = {name: dump(schema) for name, schema in json_schemas().items()}
    files["asyncapi.json"] = dump(contract_specification().to_specification().to_jsonable())
    return files


def export(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
