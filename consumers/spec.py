"""The contract's topics as integrators read them: a JSON Schema per topic and the AsyncAPI document.

Both are written from the one table of topics (hub/core/topics.py) and the models' own JSON
Schemas (schemas/), so they cannot disagree with each other or with what the hub validates.
The AsyncAPI document is built here rather than by FastStream's generator: that one names
messages `<topic>:SubscribeMessage`, declares a `correlation_id` header the hub never sets, and
has no place for the Kafka key, the servers' security or examples.
"""

from __future__ import annotations

import copy
import functools
import re
from collections import Counter
from pathlib import Path
from typing import Any

from hub.config import Settings
from hub.core.rules import load_rules
from hub.core.topics import QUEUES, STREAMS, Queue, QueueSpec, Stream
from schemas.enums import AlertKind
from schemas.export import dump, json_schema
from schemas.inbound import BEYOND_THE_SCHEMA, CONTRACT_VERSION
from schemas.outbound import Alert, DeadLetterHeaders

ASYNCAPI_VERSION = "3.0.0"
KAFKA_BINDING_VERSION = "0.5.0"
DOCUMENT_VERSION = "1.1"  # the contract's version (docs/contract.md); messages carry schema_version 1

# The servers as deployed (deploy/k8s/configmap.yaml; a test keeps them in step) and for development.
PRODUCTION_BOOTSTRAP = "kafka-0.kafka.example.internal:9096"
SCRAM = "scramSha512"

# The queues the clock's kinds go to (hub/core/clock.py); routed kinds take theirs from the rules file.
CLOCK_QUEUES: dict[AlertKind, Queue] = {
    AlertKind.SLA_WARNING: Queue.ESCALATIONS,
    AlertKind.SLA_BREACH: Queue.ESCALATIONS,
    AlertKind.STALE_SHIPMENT: Queue.EXCEPTIONS,
    AlertKind.DELIVERY_OVERDUE: Queue.EXCEPTIONS,
}

DESCRIPTION = """\
The hub is the integration point of a logistics centre's customer-service desk. Warehouse
systems publish shipment events, the call centre publishes call logs and carriers publish
carrier updates; the hub routes what needs a person to handler queues the ops team watches.

This document describes the hub itself: its `receive` operations are the topics you publish
to, its `send` operations what it publishes. Every inbound record has its effects exactly
once, or goes to the dead-letter topic with the reason in its `hub.errors.*` headers.
`hub publish --check FILE` checks a file of messages exactly as the hub will, without a broker.

The guide for integrators (keys, ordering, idempotency, the routing table, dead-letter
reasons) is docs/contract.md in the hub's repository.
"""


def _settings(settings: Settings | None) -> Settings:
    return settings or Settings.model_construct()


@functools.cache
def _routed_queues() -> dict[AlertKind, Queue]:
    return {rule.kind: rule.queue for rule in load_rules().rules}


def default_queue_of(kind: AlertKind) -> Queue | None:
    """The queue an alert kind goes to with the shipped rules file (None: nothing raises it yet)."""
    return _routed_queues().get(kind) or CLOCK_QUEUES.get(kind)


def alert_examples(queue: Queue) -> list[dict[str, Any]]:
    examples: list[dict[str, Any]] = Alert.model_json_schema(mode="serialization").get("examples", [])
    return [e for e in examples if default_queue_of(AlertKind(e["kind"])) is queue]


def _queue_description(topic: str, spec: QueueSpec) -> str:
    return (
        f"Handler queue `{topic}`: {spec.carries}. Keyed by shipment_id, else customer_id. "
        "A re-sent alert is identical to the first copy: de-duplicate by `alert_id`."
    )


# --- one JSON Schema per topic ------------------------------------------------------------------


def json_schemas(settings: Settings | None = None) -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, one per topic (the dead-letter topic's documents its headers)."""
    s = _settings(settings)
    docs = {}
    for stream in STREAMS:
        topic = s.topic(stream.topic_setting)
        docs[topic] = json_schema(topic, stream.model, "validation")
    for spec in QUEUES:
        topic = s.topic(spec.topic_setting)
        doc = json_schema(topic, Alert, "serialization")
        doc["description"] = f"Handler queue `{topic}`: {spec.carries}.\n\n{doc['description']}"
        doc["examples"] = alert_examples(spec.queue)
        docs[topic] = doc
    headers = f"{s.dead_letter_topic}.headers"
    docs[headers] = json_schema(headers, DeadLetterHeaders, "serialization")
    return {f"{name}.schema.json": doc for name, doc in docs.items()}


# --- the AsyncAPI document ----------------------------------------------------------------------


class _Components:
    """components.schemas, filled from the models' JSON Schemas with their $defs hoisted."""

    def __init__(self) -> None:
        self.schemas: dict[str, Any] = {}

    def add(self, name: str, schema: dict[str, Any]) -> dict[str, str]:
        schema = copy.deepcopy(schema)
        for def_name, definition in schema.pop("$defs", {}).items():
            self._put(def_name, _rehome(definition))
        self._put(name, _rehome(schema))
        return {"$ref": f"#/components/schemas/{name}"}

    def _put(self, name: str, schema: dict[str, Any]) -> None:
        if self.schemas.setdefault(name, schema) != schema:
            raise ValueError(f"two different schemas are both called {name!r}")


def _rehome(node: Any) -> Any:
    """Point `#/$defs/X` references at `#/components/schemas/X`."""
    if isinstance(node, dict):
        return {
            k: (v.replace("#/$defs/", "#/components/schemas/") if k == "$ref" else _rehome(v)) for k, v in node.items()
        }
    if isinstance(node, list):
        return [_rehome(v) for v in node]
    return node


def _kafka(**binding: Any) -> dict[str, Any]:
    return {"kafka": {**binding, "bindingVersion": KAFKA_BINDING_VERSION}}


def _key_schema(stream: Stream) -> dict[str, Any]:
    """The record key: the value's own key field, with that field's schema."""
    field = dict(stream.model.model_json_schema()["properties"][stream.model.topic_key])
    field.pop("title", None)
    field["description"] = f"The `{stream.model.topic_key}` of the value, UTF-8. " + field.get("description", "")
    return field


def _example_names(payloads: list[dict[str, Any]]) -> list[str]:
    """Short, unique names for examples: what they are (type, status, category or kind) and how."""
    names = []
    for p in payloads:
        parts = [str(p.get("type") or p.get("status") or p.get("category") or p.get("kind"))]
        if p.get("priority") == "urgent":
            parts.append("urgent")
        code = (p.get("exception") or {}).get("code") or p.get("exception_code")
        if code:
            parts.append(code)
        if "level" in p:
            parts.append(f"level-{p['level']}")
        if isinstance(p.get("source"), dict) and "topic" in p["source"]:
            parts.append(f"from-{p['source']['topic']}")
        names.append(re.sub(r"[^A-Za-z0-9_.-]+", "-", "-".join(parts)))
    counts = Counter(names)
    return [n if counts[n] == 1 else f"{n}-{i}" for i, n in enumerate(names, 1)]


def _examples(payloads: list[dict[str, Any]], key_field: str | None) -> list[dict[str, Any]]:
    examples = []
    for name, payload in zip(_example_names(payloads), payloads, strict=True):
        example: dict[str, Any] = {"name": name, "payload": payload}
        key = payload.get(key_field) if key_field else (payload.get("shipment_id") or payload.get("customer_id"))
        if key:
            example["summary"] = f"Kafka key: {key}"
        examples.append(example)
    return examples


def _camel(text: str) -> str:
    return "".join(part.capitalize() for part in re.split(r"[^A-Za-z0-9]+", text) if part)


DEAD_LETTER_PAYLOADS = (  # paired with DeadLetterHeaders' examples: what such records held
    '{"event_id":"wms-000187","occurred_at":"2026-11-28T10:06:00+08:00","source":"wms-sh-01",'
    '"shipment_id":"SF1400123456791","customer_id":"CUST-00042","type":"on_hold"}',
    '{"event_id":"sf-evt-0000000000000009","occurred_at":"2026-11-28T10:07:00+08:00","source":"carrier:SF",'
    '"shipment_id":"SF1400123456791","status":"in_transit","eta":NaN}',
)


def asyncapi(settings: Settings | None = None) -> dict[str, Any]:
    s = _settings(settings)
    components = _Components()
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}

    def channel(topic: str, description: str, message_id: str) -> dict[str, str]:
        channels[topic] = {
            "address": topic,
            "title": topic,
            "description": description,
            "messages": {message_id: {"$ref": f"#/components/messages/{message_id}"}},
        }
        return {"$ref": f"#/channels/{topic}"}

    for stream in STREAMS:
        topic = s.topic(stream.topic_setting)
        model = stream.model
        name = model.__name__
        messages[name] = {
            "name": name,
            "title": f"{topic} message",
            "summary": f"{stream.published_by}; keyed by {model.topic_key}.",
            "contentType": "application/json",
            "payload": components.add(name, model.model_json_schema(mode="validation")),
            "bindings": _kafka(key=_key_schema(stream)),
            "examples": _examples(list(model.schema_examples), model.topic_key),
        }
        description = (
            f"{stream.published_by}. Key: `{model.topic_key}`. One JSON object per record, "
            f"`schema_version` {CONTRACT_VERSION}. {BEYOND_THE_SCHEMA}"
        )
        operations[f"receive{_camel(stream.name)}"] = {
            "action": "receive",
            "title": f"The hub reads {topic}",
            "summary": f"{topic} ({stream.published_by}); the hub consumes it in consumer group `{s.consumer_group}`.",
            "channel": channel(topic, description, name),
            "messages": [{"$ref": f"#/channels/{topic}/messages/{name}"}],
            "bindings": _kafka(groupId={"type": "string", "enum": [s.consumer_group]}),
        }

    alert = components.add("Alert", Alert.model_json_schema(mode="serialization"))
    for spec in QUEUES:
        topic = s.topic(spec.topic_setting)
        name = f"{_camel(spec.queue.value)}Alert"
        messages[name] = {
            "name": name,
            "title": f"{topic} alert",
            "summary": f"An alert about {spec.carries}.",
            "contentType": "application/json",
            "payload": alert,
            "bindings": _kafka(
                key={"type": "string", "description": "The alert's `shipment_id`, else its `customer_id`, UTF-8."}
            ),
            "examples": _examples(alert_examples(spec.queue), None),
        }
        operations[f"send{_camel(spec.queue.value)}Alerts"] = {
            "action": "send",
            "title": f"The hub publishes {topic}",
            "summary": f"Alerts about {spec.carries}, for the ops team.",
            "channel": channel(topic, _queue_description(topic, spec), name),
            "messages": [{"$ref": f"#/channels/{topic}/messages/{name}"}],
        }

    topic = s.dead_letter_topic
    header_examples = DeadLetterHeaders.model_json_schema(mode="serialization")["examples"]
    messages["DeadLetter"] = {
        "name": "DeadLetter",
        "title": f"{topic} record",
        "summary": "An inbound record the hub could not process, untouched, with the reason in its headers.",
        "description": "Key, value and headers are the original record's, byte for byte; the hub adds the "
        "`hub.errors.*` headers. `hub dlq show` and `hub dlq replay` read them back.",
        "payload": {"description": "The original record's value, byte for byte: any bytes, not necessarily JSON."},
        "headers": components.add("DeadLetterHeaders", DeadLetterHeaders.model_json_schema(mode="serialization")),
        "bindings": _kafka(key={"description": "The original record's key, byte for byte (absent if it had none)."}),
        "examples": [
            {"name": headers["hub.errors.reason"], "headers": headers, "payload": payload}
            for headers, payload in zip(header_examples, DEAD_LETTER_PAYLOADS, strict=True)
        ],
    }
    operations["sendDeadLetters"] = {
        "action": "send",
        "title": f"The hub publishes {topic}",
        "summary": "Records the hub could not process, with the reason; nothing that reached an inbound "
        "topic is ever dropped.",
        "channel": channel(
            topic,
            "Dead letters: the original key, bytes and headers, plus the hub.errors.* headers.",
            "DeadLetter",
        ),
        "messages": [{"$ref": f"#/channels/{topic}/messages/DeadLetter"}],
    }

    return {
        "asyncapi": ASYNCAPI_VERSION,
        "info": {"title": "Logistics integration hub", "version": DOCUMENT_VERSION, "description": DESCRIPTION},
        "defaultContentType": "application/json",
        "servers": {
            "production": {
                "host": PRODUCTION_BOOTSTRAP,
                "protocol": "kafka-secure",
                "title": "Kafka as deployed",
                "description": "TLS with SASL/SCRAM-SHA-512 (`HUB_KAFKA_SECURITY_PROTOCOL=SASL_SSL`, "
                "`HUB_KAFKA_SASL_MECHANISM=SCRAM-SHA-512`), brokers' certificates signed by the CA in "
                "`HUB_KAFKA_SSL_CAFILE`. Any broker of the cluster bootstraps; each producing system gets "
                "its own SCRAM user.",
                "security": [{"$ref": f"#/components/securitySchemes/{SCRAM}"}],
            },
            "local": {
                "host": f"localhost:{Settings.model_fields['embedded_kafka_port'].default}",
                "protocol": "kafka",
                "title": "Development broker",
                "description": "The embedded broker of `hub run` and `hub demo` (PLAINTEXT, no authentication; "
                "`deploy/compose.yaml` serves the same on localhost:29092). Never for production.",
            },
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": messages,
            "schemas": components.schemas,
            "securitySchemes": {
                SCRAM: {
                    "type": SCRAM,
                    "description": "SASL/SCRAM-SHA-512 over TLS, user and password per producing system.",
                }
            },
        },
    }


def render_all() -> dict[str, str]:
    files = {name: dump(schema) for name, schema in json_schemas().items()}
    files["asyncapi.json"] = dump(asyncapi())
    return files


def export(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text, encoding="utf-8")
        written.append(path)
    return written
