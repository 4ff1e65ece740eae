"""The exported JSON Schemas say everything the hub enforces that JSON Schema can say.

- Every example in every exported schema is valid for the `jsonschema` library and for the hub
  (its decoder for inbound topics; the model and its own serialisation for what it writes), and
  the alert examples are alerts the hub really raises, on the queue it raises them on.
- Every hostile payload JSON Schema can express is rejected by both (the decoder's own table in
  tests/unit/test_decoding.py, plus cases about the rules moved into the schemas).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson
import pytest
from jsonschema import Draft202012Validator

from consumers.spec import DEAD_LETTER_PAYLOADS, alert_examples, default_queue_of, json_schemas
from hub.config import Settings
from hub.core.clock import ShipmentState, TaskState, decide_stale, decide_task
from hub.core.decoding import Accepted, Rejected, check_value
from hub.core.routing import route_event
from hub.core.rules import load_rules
from hub.core.state import CustomerInfo, Known, ShipmentSheet
from hub.core.topics import QUEUES, STREAMS
from schemas.enums import DeadLetterReason, Severity, ShipmentEventType
from schemas.inbound import CallLog, CarrierUpdate, InboundEvent, ShipmentEvent
from schemas.outbound import Alert, AlertSource, DeadLetterHeaders, TimerSource
from schemas.types import TIMESTAMP_PATTERN
from tests.unit.test_decoding import HOSTILE, Hostile, changed

ROOT = Path(__file__).parents[1]
EXAMPLES_DIR = ROOT / "tests" / "fixtures" / "contract_examples"
DEFAULTS = Settings.model_construct()
ONE_MIB = 1024 * 1024
RULES = load_rules()

SCHEMAS = {name.removesuffix(".schema.json"): doc for name, doc in json_schemas().items()}
INBOUND: dict[str, type[InboundEvent]] = {DEFAULTS.topic(s.topic_setting): s.model for s in STREAMS}
QUEUE_TOPICS = {DEFAULTS.topic(q.topic_setting): q for q in QUEUES}
HEADERS_DOC = f"{DEFAULTS.dead_letter_topic}.headers"
TOPIC_OF = {model: topic for topic, model in INBOUND.items()}


def validator(topic: str) -> Draft202012Validator:
    return Draft202012Validator(SCHEMAS[topic], format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema_errors(topic: str, document: Any) -> list[str]:
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator(topic).iter_errors(document)]


def hub_verdict(topic: str, value: bytes) -> Accepted | Rejected:
    return check_value(value, INBOUND[topic], ONE_MIB, topic)


# --- 1. the schemas say what the hub enforces ----------------------------------------------------


@pytest.mark.parametrize("topic", sorted(SCHEMAS))
def test_every_schema_is_valid_json_schema_2020_12(topic: str):
    Draft202012Validator.check_schema(SCHEMAS[topic])


def _properties(node: Any, path: str = ""):
    """(path, schema) of every declared property, nested definitions included."""
    if isinstance(node, dict):
        for name, prop in (node.get("properties") or {}).items():
            yield f"{path}.{name}", prop
        for key, child in node.items():
            if key not in ("examples", "if", "then", "else", "not"):  # constraints, not declarations
                yield from _properties(child, f"{path}/{key}")
    elif isinstance(node, list):
        for i, child in enumerate(node):
            yield from _properties(child, f"{path}[{i}]")


@pytest.mark.parametrize("topic", sorted(SCHEMAS))
def test_every_field_and_definition_has_a_description(topic: str):
    schema = SCHEMAS[topic]
    missing = [path for path, prop in _properties(schema) if "description" not in prop]
    missing += [f"$defs/{name}" for name, d in schema.get("$defs", {}).items() if "description" not in d]
    assert not missing, f"{topic}: add a description (Field(description=...) or a docstring) to {missing}"
    assert schema.get("description")


@pytest.mark.parametrize("topic", sorted(SCHEMAS))
def test_every_topic_has_at_least_two_examples(topic: str):
    assert len(SCHEMAS[topic].get("examples", [])) >= 2


def _examples() -> list[tuple[str, int]]:
    return [(topic, i) for topic, doc in sorted(SCHEMAS.items()) for i in range(len(doc.get("examples", [])))]


@pytest.mark.parametrize(("topic", "index"), _examples(), ids=lambda v: str(v))
def test_example_is_valid_for_jsonschema_and_for_the_hub(topic: str, index: int):
    example = SCHEMAS[topic]["examples"][index]
    assert not schema_errors(topic, example)
    if topic in INBOUND:
        verdict = hub_verdict(topic, orjson.dumps(example))
        assert isinstance(verdict, Accepted), verdict.message
    elif topic in QUEUE_TOPICS:
        # what the hub writes for such an alert is exactly the example
        assert json.loads(Alert.model_validate(example).model_dump_json()) == example
    else:
        assert topic == HEADERS_DOC
        headers = [(name, value.encode()) for name, value in example.items()]
        assert dict(DeadLetterHeaders.from_kafka(headers).to_kafka()) == dict(headers)


@pytest.mark.parametrize("path", sorted(EXAMPLES_DIR.glob("*.json")), ids=lambda p: p.stem)
def test_the_test_suites_contract_examples_are_schema_valid_too(path: Path):
    assert not schema_errors(path.name.split("__", 1)[0], json.loads(path.read_bytes()))


def _json_expressible(case: Hostile) -> bool:
    """A hostile case JSON Schema can judge: it parses as strict JSON and fails on its content."""
    if case.value is None or case.reason not in (Reason.VALIDATION_ERROR, Reason.UNSUPPORTED_VERSION):
        return False
    try:
        orjson.loads(case.value)
    except orjson.JSONDecodeError:
        return False
    verdict = hub_verdict(TOPIC_OF[case.model], case.value)
    return not (isinstance(verdict, Rejected) and verdict.error_class == "TooDeep")


Reason = DeadLetterReason
MORE_HOSTILE = [
    # the rules this issue moved into the schemas
    Hostile(
        "exception type, exception null",
        ShipmentEvent,
        changed(ShipmentEvent, type="exception", exception=None),
        Reason.VALIDATION_ERROR,
        (),
    ),
    Hostile("schema_version null", CallLog, changed(CallLog, schema_version=None), Reason.VALIDATION_ERROR, ()),
    Hostile("schema_version true", CallLog, changed(CallLog, schema_version=True), Reason.VALIDATION_ERROR, ()),
    Hostile("schema_version 2 on a call", CallLog, changed(CallLog, schema_version=2), Reason.UNSUPPORTED_VERSION, ()),
    Hostile(
        "29 February 2027",
        ShipmentEvent,
        changed(ShipmentEvent, occurred_at="2027-02-29T10:00:00+08:00"),
        Reason.VALIDATION_ERROR,
        (),
    ),
    Hostile(
        "29 February 2100",
        CallLog,
        changed(CallLog, requested_deadline="2100-02-29T10:00:00Z"),
        Reason.VALIDATION_ERROR,
        (),
    ),
    Hostile("31 April", CarrierUpdate, changed(CarrierUpdate, eta="2026-04-31T10:00:00Z"), Reason.VALIDATION_ERROR, ()),
    Hostile(
        "hour 24",
        CarrierUpdate,
        changed(CarrierUpdate, occurred_at="2026-11-27T24:00:00Z"),
        Reason.VALIDATION_ERROR,
        (),
    ),
    Hostile(
        "second 60",
        CarrierUpdate,
        changed(CarrierUpdate, occurred_at="2026-11-27T23:59:60Z"),
        Reason.VALIDATION_ERROR,
        (),
    ),
    Hostile(
        "offset +24:00", CallLog, changed(CallLog, occurred_at="2026-11-27T10:00:00+24:00"), Reason.VALIDATION_ERROR, ()
    ),
    Hostile("date only", ShipmentEvent, changed(ShipmentEvent, occurred_at="2026-11-27"), Reason.VALIDATION_ERROR, ()),
    Hostile(
        "1969", ShipmentEvent, changed(ShipmentEvent, occurred_at="1969-12-31T23:59:59Z"), Reason.VALIDATION_ERROR, ()
    ),
    Hostile("year 3000", CallLog, changed(CallLog, occurred_at="3000-01-01T00:00:00Z"), Reason.VALIDATION_ERROR, ()),
    Hostile(
        "timestamp with a trailing newline",
        CallLog,
        changed(CallLog, occurred_at="2026-11-27T10:00:00Z\n"),
        Reason.VALIDATION_ERROR,
        (),
    ),
    Hostile(
        "timestamp with UTC spelled out",
        CallLog,
        changed(CallLog, occurred_at="2026-11-27T10:00:00UTC"),
        Reason.VALIDATION_ERROR,
        (),
    ),
    Hostile(
        "id with a trailing newline",
        CarrierUpdate,
        changed(CarrierUpdate, carrier_id="SF\n"),
        Reason.VALIDATION_ERROR,
        (),
    ),
    Hostile("priority null", ShipmentEvent, changed(ShipmentEvent, priority=None), Reason.VALIDATION_ERROR, ()),
    Hostile("direction null", CallLog, changed(CallLog, direction=None), Reason.VALIDATION_ERROR, ()),
    Hostile(
        "latitude as a word",
        CarrierUpdate,
        changed(CarrierUpdate, location={"lat": "north"}),
        Reason.VALIDATION_ERROR,
        (),
    ),
    Hostile(
        "NUL in a key inside a list of an extra field",
        CallLog,
        changed(CallLog, x_meta=[{"a\u0000": 1}]),
        Reason.VALIDATION_ERROR,
        (),
    ),
    Hostile(
        "NUL in an extra field of exception",
        ShipmentEvent,
        changed(ShipmentEvent, type="exception", exception={"code": "lost", "note": "x\u0000"}),
        Reason.VALIDATION_ERROR,
        (),
    ),
    Hostile(
        "NUL in the description",
        ShipmentEvent,
        changed(ShipmentEvent, type="exception", exception={"code": "lost", "description": "\u0000"}),
        Reason.VALIDATION_ERROR,
        (),
    ),
    Hostile(
        "proof of delivery as a list",
        CarrierUpdate,
        changed(CarrierUpdate, proof_of_delivery=["J."]),
        Reason.VALIDATION_ERROR,
        (),
    ),
    Hostile(
        "currency of four letters",
        ShipmentEvent,
        changed(ShipmentEvent, declared_value={"amount": 1, "currency": "CNYY"}),
        Reason.VALIDATION_ERROR,
        (),
    ),
    Hostile(
        "signed_by over 1,000 characters",
        CarrierUpdate,
        changed(CarrierUpdate, proof_of_delivery={"signed_by": "x" * 1001}),
        Reason.VALIDATION_ERROR,
        (),
    ),
    Hostile(
        "tracking number over 128",
        CarrierUpdate,
        changed(CarrierUpdate, carrier_tracking_no="T" * 129),
        Reason.VALIDATION_ERROR,
        (),
    ),
    Hostile("duration over 10,000,000", CallLog, changed(CallLog, duration_s=10_000_001), Reason.VALIDATION_ERROR, ()),
]
BOTH_REJECT = [c for c in HOSTILE if _json_expressible(c)] + MORE_HOSTILE


def test_the_hostile_table_is_mostly_json_schema_expressible():
    assert len(BOTH_REJECT) >= 80, "the shared table lost its JSON cases: this test would prove little"


@pytest.mark.parametrize("case", BOTH_REJECT, ids=[c.name for c in BOTH_REJECT])
def test_hostile_payload_is_rejected_by_jsonschema_and_by_the_hub(case: Hostile):
    topic = TOPIC_OF[case.model]
    assert case.value is not None
    verdict = hub_verdict(topic, case.value)
    assert isinstance(verdict, Rejected) and verdict.reason is case.reason, getattr(verdict, "message", verdict)
    assert schema_errors(topic, orjson.loads(case.value)), f"{case.name}: the JSON Schema of {topic} accepts it"


def _dates() -> list[str]:
    days = [f"{y:04d}-{m:02d}-{d:02d}" for y in (1970, 2000, 2026, 2100) for m in range(1, 13) for d in range(27, 33)]
    days += [f"{y:04d}-02-29" for y in range(1960, 3010)]  # every leap rule, and the year bounds
    return days


def test_the_timestamp_pattern_accepts_exactly_the_days_the_hub_accepts():
    pattern = re.compile(TIMESTAMP_PATTERN)
    disagree = []
    for day in _dates():
        text = f"{day}T09:30:00+08:00"
        hub = isinstance(hub_verdict("call.logs", changed(CallLog, occurred_at=text)), Accepted)
        if hub != bool(pattern.search(text)):
            disagree.append((text, "hub accepts" if hub else "hub refuses"))
    assert not disagree


@pytest.mark.parametrize(
    "text",
    [
        "2026-11-27T09:30:00Z",
        "2026-11-27T09:30:00.123456+08:00",
        "2026-11-27T23:59:59.5-05:30",
        "2026-11-27t09:30:00z",
        "2026-11-27T09:30:00+23:59",
        "2026-11-27T09:30:00-00:00",
        "1970-01-01T00:00:00Z",
        "2999-12-31T23:59:59Z",
    ],
)
def test_rfc_3339_timestamps_pass_both(text: str):
    value = changed(CallLog, occurred_at=text)
    assert isinstance(hub_verdict("call.logs", value), Accepted)
    assert not schema_errors("call.logs", orjson.loads(value))


def test_the_schemas_say_what_json_schema_cannot_in_their_description():
    for topic in INBOUND:
        text = SCHEMAS[topic]["description"]
        for word in ("1 MiB", "UTF-8", "invalid_json", "64 levels", "unsupported_version"):
            assert word in text, (topic, word)


def test_dead_letter_headers_schema_uses_the_header_names():
    properties = SCHEMAS[HEADERS_DOC]["properties"]
    written = DeadLetterHeaders(
        reason=Reason.OVERSIZED,
        error_class="OversizedMessage",
        message="m",
        topic="t",
        partition=1,
        offset=2,
        timestamp=datetime(2026, 11, 28, tzinfo=UTC),
    ).to_kafka()
    assert sorted(properties) == sorted(name for name, _ in written)
    assert all(name.startswith("hub.errors.") for name in properties)
    assert not schema_errors(HEADERS_DOC, {name: value.decode() for name, value in written} | {"traceparent": "00-x"})


def test_dead_letter_examples_are_what_the_decoder_says_of_their_payloads():
    examples = SCHEMAS[HEADERS_DOC]["examples"]
    for headers, payload in zip(examples, DEAD_LETTER_PAYLOADS, strict=True):
        verdict = hub_verdict(headers["hub.errors.topic"], payload.encode())
        assert isinstance(verdict, Rejected)
        assert (verdict.reason.value, verdict.error_class, verdict.message) == (
            headers["hub.errors.reason"],
            headers["hub.errors.class"],
            headers["hub.errors.message"],
        )


# --- the alert examples are what the hub raises ----------------------------------------------------


def _routed(model: type[InboundEvent], document: dict[str, Any], partition: int, offset: int, **known: Any):
    event = model.model_validate(document)
    source = AlertSource(topic=TOPIC_OF[model], partition=partition, offset=offset, event_id=event.event_id)
    customer = CustomerInfo(getattr(event, "customer_id", None) or "CUST-00042")
    decision = route_event(event, Known(customer=customer, **known), source, RULES, event.occurred_at + DELAY)
    return list(decision.alerts)


DELAY = timedelta(seconds=1.2)  # from occurred_at to the hub's now in the examples


def _raised() -> list:
    """The alerts the hub raises for the inbound examples and a few clock situations."""
    shipments, calls = ShipmentEvent.schema_examples, CallLog.schema_examples
    alerts = _routed(ShipmentEvent, shipments[1], 3, 18211) + _routed(ShipmentEvent, shipments[0], 3, 18190)
    alerts += _routed(CallLog, calls[0], 1, 77120) + _routed(CallLog, calls[1], 4, 77131)
    query = {
        **calls[0],
        "event_id": "c7a1d2e3-0000-4b5c-8d9e-0f1a2b3c4d05",
        "call_id": "CALL-20261128-001920",
        "occurred_at": "2026-11-28T16:40:00+08:00",
        "category": "query",
    }
    for name in ("agent_id", "duration_s", "caller_phone", "notes"):
        query.pop(name)
    event = CallLog.model_validate(query)
    source = AlertSource(topic="call.logs", partition=1, offset=77304, event_id=event.event_id)
    known = Known(
        sheet=ShipmentSheet("SF1400123456790", "CUST-00042"),
        customer=CustomerInfo("CUST-00042"),
        contacts=(datetime(2026, 11, 28, 2, 15, tzinfo=UTC),),
    )
    alerts += route_event(event, known, source, RULES, event.occurred_at + timedelta(seconds=0.8)).alerts
    due = datetime(2026, 11, 28, 10, 15, tzinfo=UTC)
    window = timedelta(hours=8)
    task = TaskState(
        "5b0e6c1d-3f2a-5e4b-9c8d-7a6b5c4d3e21",
        "complaints",
        "complaint",
        Severity.P2,
        "open",
        "SF1400123456790",
        "CUST-00042",
        due - window,
        due,
        due - window / 4,
        due + window,
        None,
        0,
    )
    alerts += decide_task(task, datetime(2026, 11, 28, 12, 0, tzinfo=UTC), RULES).alerts
    alerts += decide_task(task, due - timedelta(hours=1), RULES).alerts
    last = datetime(2026, 11, 27, 15, 40, tzinfo=UTC)
    sheet = ShipmentSheet(
        "YT7700112233",
        "CUST-00105",
        status=ShipmentEventType.IN_TRANSIT,
        last_event_at=last,
        carrier_id="YTO",
        stale_at=last + timedelta(hours=48),
    )
    state = ShipmentState(sheet, CustomerInfo("CUST-00105"), False)
    alerts += decide_stale(state, datetime(2026, 11, 29, 15, 45, tzinfo=UTC), RULES).alerts
    return alerts


def test_every_alert_example_is_an_alert_the_hub_raises_on_its_queue():
    raised = {a.alert.alert_id: a for a in _raised()}
    for topic, spec in QUEUE_TOPICS.items():
        for example in SCHEMAS[topic]["examples"]:
            decision = raised.get(example["alert_id"])
            assert decision is not None, f"no alert raised as {example['alert_id']} ({example['kind']})"
            assert json.loads(decision.alert.model_dump_json()) == example
            assert decision.queue is spec.queue


def test_alert_examples_cover_every_queue_and_the_clock():
    kinds = {e["kind"] for q in QUEUES for e in alert_examples(q.queue)}
    assert {"damage", "urgent_order", "complaint", "sla_breach", "sla_warning", "stale_shipment"} <= kinds
    for queue in QUEUES:
        assert len(alert_examples(queue.queue)) >= 2, queue


def test_clock_kinds_go_to_the_queues_the_documents_say():
    for decision in _raised():
        if isinstance(decision.alert.source, TimerSource):
            assert default_queue_of(decision.alert.kind) is decision.queue


def test_level_and_escalated_to_appear_exactly_on_sla_breaches():
    examples = [e for q in QUEUE_TOPICS for e in SCHEMAS[q]["examples"]]
    breach = next(e for e in examples if e["kind"] == "sla_breach")
    other = next(e for e in examples if e["kind"] == "damage")
    topic = next(iter(QUEUE_TOPICS))
    assert schema_errors(topic, {k: v for k, v in breach.items() if k != "level"})
    assert schema_errors(topic, {**other, "level": 1, "escalated_to": "supervisor"})
