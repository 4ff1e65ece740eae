"""Record -> Accepted | Rejected: every hostile payload gets the right dead-letter reason and a
readable message that names the field and never repeats the input; the payload hash compares
validated content only.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import pytest

from hub.config import Settings
from hub.core.decoding import Accepted, Record, Rejected, decode_record, payload_hash
from schemas.enums import DeadLetterReason as Reason
from schemas.inbound import CallLog, CarrierUpdate, InboundEvent, ShipmentEvent

DEFAULT_LIMIT = Settings.model_fields["max_message_bytes"].default
PHONE = "+86 138 0013 8000"

SHIPMENT = {
    "event_id": "evt-ship-1",
    "occurred_at": "2026-11-27T09:30:00+08:00",
    "source": "wms-sh-01",
    "shipment_id": "SF100",
    "customer_id": "C1",
    "type": "created",
}
CALL = {
    "event_id": "evt-call-1",
    "occurred_at": "2026-11-27T10:00:00+08:00",
    "source": "cc-shanghai",
    "call_id": "CALL-1",
    "customer_id": "C1",
    "shipment_id": "SF100",
    "direction": "inbound",
    "channel": "phone",
    "category": "query",
}
CARRIER = {
    "event_id": "evt-carrier-1",
    "occurred_at": "2026-11-27T11:00:00+08:00",
    "source": "carrier:SF",
    "carrier_id": "SF",
    "carrier_tracking_no": "SF100",
    "shipment_id": "SF100",
    "status": "in_transit",
}
BASES: dict[type[InboundEvent], dict[str, Any]] = {ShipmentEvent: SHIPMENT, CallLog: CALL, CarrierUpdate: CARRIER}


def decode(value: bytes | None, model: type[InboundEvent], max_bytes: int = DEFAULT_LIMIT) -> Accepted | Rejected:
    return decode_record(Record("inbound.test", 3, 42, b"key", value), model, max_bytes)


def encode(document: Any) -> bytes:
    return json.dumps(document, ensure_ascii=False).encode("utf-8")


def changed(model: type[InboundEvent], **fields: Any) -> bytes:
    return encode({**BASES[model], **fields})


def without(model: type[InboundEvent], *names: str) -> bytes:
    return encode({k: v for k, v in BASES[model].items() if k not in names})


def with_raw(model: type[InboundEvent], name: str, raw_json: str) -> bytes:
    """The base event plus one field whose JSON text json.dumps could not write (NaN, 1e400, ...)."""
    text = encode(BASES[model]).decode()
    return (text[:-1] + f', "{name}": {raw_json}}}').encode("utf-8")


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@dataclass(frozen=True)
class Hostile:
    name: str
    model: type[InboundEvent]
    value: bytes | None  # None: a tombstone
    reason: Reason
    names: tuple[str, ...]  # words the message must contain: the field, or what is wrong


HOSTILE = [
    # timestamps
    Hostile(
        "naive timestamp",
        CallLog,
        changed(CallLog, occurred_at="2026-11-27T10:00:00"),
        Reason.VALIDATION_ERROR,
        ("occurred_at", "timezone"),
    ),
    Hostile(
        "naive optional timestamp",
        ShipmentEvent,
        changed(ShipmentEvent, promised_delivery_at="2026-11-28 18:00"),
        Reason.VALIDATION_ERROR,
        ("promised_delivery_at",),
    ),
    Hostile(
        "epoch seconds timestamp",
        CarrierUpdate,
        changed(CarrierUpdate, occurred_at=1764207000),
        Reason.VALIDATION_ERROR,
        ("occurred_at", "RFC 3339"),
    ),
    Hostile(
        "epoch float timestamp",
        CarrierUpdate,
        changed(CarrierUpdate, eta=1764207000.5),
        Reason.VALIDATION_ERROR,
        ("eta", "RFC 3339"),
    ),
    Hostile(
        "timestamp not a date",
        ShipmentEvent,
        changed(ShipmentEvent, occurred_at="yesterday"),
        Reason.VALIDATION_ERROR,
        ("occurred_at",),
    ),
    Hostile(
        "timestamp year 1",
        ShipmentEvent,
        changed(ShipmentEvent, occurred_at="0001-01-01T00:00:00Z"),
        Reason.VALIDATION_ERROR,
        ("occurred_at", "year"),
    ),
    # enums
    Hostile(
        "unknown shipment type",
        ShipmentEvent,
        changed(ShipmentEvent, type="teleported"),
        Reason.VALIDATION_ERROR,
        ("type",),
    ),
    Hostile(
        "unknown carrier status",
        CarrierUpdate,
        changed(CarrierUpdate, status="lost_in_space"),
        Reason.VALIDATION_ERROR,
        ("status",),
    ),
    Hostile("unknown call channel", CallLog, changed(CallLog, channel="fax"), Reason.VALIDATION_ERROR, ("channel",)),
    Hostile(
        "unknown exception code",
        ShipmentEvent,
        changed(ShipmentEvent, type="exception", exception={"code": "stolen"}),
        Reason.VALIDATION_ERROR,
        ("exception.code",),
    ),
    Hostile(
        "unknown carrier exception code",
        CarrierUpdate,
        changed(CarrierUpdate, exception_code="stolen"),
        Reason.VALIDATION_ERROR,
        ("exception_code",),
    ),
    Hostile(
        "enum in wrong case", CallLog, changed(CallLog, direction="INBOUND"), Reason.VALIDATION_ERROR, ("direction",)
    ),
    # missing fields
    Hostile(
        "missing customer_id",
        ShipmentEvent,
        without(ShipmentEvent, "customer_id"),
        Reason.VALIDATION_ERROR,
        ("customer_id", "required"),
    ),
    Hostile(
        "missing occurred_at",
        CallLog,
        without(CallLog, "occurred_at"),
        Reason.VALIDATION_ERROR,
        ("occurred_at", "required"),
    ),
    Hostile(
        "missing carrier_tracking_no",
        CarrierUpdate,
        without(CarrierUpdate, "carrier_tracking_no"),
        Reason.VALIDATION_ERROR,
        ("carrier_tracking_no", "required"),
    ),
    Hostile(
        "missing event_id",
        CarrierUpdate,
        without(CarrierUpdate, "event_id"),
        Reason.VALIDATION_ERROR,
        ("event_id", "required"),
    ),
    # ids
    Hostile(
        "65-char shipment_id",
        ShipmentEvent,
        changed(ShipmentEvent, shipment_id="S" * 65),
        Reason.VALIDATION_ERROR,
        ("shipment_id", "64"),
    ),
    Hostile(
        "65-char carrier_id",
        CarrierUpdate,
        changed(CarrierUpdate, carrier_id="C" * 65),
        Reason.VALIDATION_ERROR,
        ("carrier_id", "64"),
    ),
    Hostile(
        "129-char event_id", CallLog, changed(CallLog, event_id="e" * 129), Reason.VALIDATION_ERROR, ("event_id", "128")
    ),
    Hostile("empty id", CallLog, changed(CallLog, call_id=""), Reason.VALIDATION_ERROR, ("call_id",)),
    Hostile("id with BEL", CallLog, changed(CallLog, call_id="CALL\u00071"), Reason.VALIDATION_ERROR, ("call_id",)),
    Hostile(
        "id with newline",
        ShipmentEvent,
        changed(ShipmentEvent, customer_id="C1\n"),
        Reason.VALIDATION_ERROR,
        ("customer_id",),
    ),
    Hostile(
        "id with DEL",
        CarrierUpdate,
        changed(CarrierUpdate, shipment_id="SF\u007f100"),
        Reason.VALIDATION_ERROR,
        ("shipment_id",),
    ),
    Hostile(
        "id with C1 control",
        ShipmentEvent,
        changed(ShipmentEvent, order_id="PO\u0085-1"),
        Reason.VALIDATION_ERROR,
        ("order_id",),
    ),
    # free text
    Hostile(
        "20,000-char notes", CallLog, changed(CallLog, notes="n" * 20_000), Reason.VALIDATION_ERROR, ("notes", "10000")
    ),
    # numbers JSON cannot carry
    Hostile("NaN", CallLog, with_raw(CallLog, "duration_s", "NaN"), Reason.INVALID_JSON, ("not JSON", "line 1")),
    Hostile(
        "Infinity",
        ShipmentEvent,
        with_raw(ShipmentEvent, "declared_value", '{"amount": Infinity, "currency": "CNY"}'),
        Reason.INVALID_JSON,
        ("not JSON",),
    ),
    Hostile(
        "-Infinity",
        CarrierUpdate,
        with_raw(CarrierUpdate, "location", '{"lat": -Infinity}'),
        Reason.INVALID_JSON,
        ("not JSON",),
    ),
    Hostile(
        "1e400",
        ShipmentEvent,
        with_raw(ShipmentEvent, "attributes", '{"weight": 1e400}'),
        Reason.INVALID_JSON,
        ("not JSON", "infinity"),
    ),
    Hostile(
        "1e400 in an extra field", CallLog, with_raw(CallLog, "x_score", "1e400"), Reason.INVALID_JSON, ("not JSON",)
    ),
    # NUL anywhere
    Hostile(
        "NUL in top-level string",
        ShipmentEvent,
        changed(ShipmentEvent, source="wms\u0000sh"),
        Reason.VALIDATION_ERROR,
        ("NUL", "source"),
    ),
    Hostile(
        "NUL in an optional text",
        CallLog,
        changed(CallLog, notes="call back\u0000"),
        Reason.VALIDATION_ERROR,
        ("NUL", "notes"),
    ),
    Hostile(
        "NUL in nested attributes",
        ShipmentEvent,
        changed(ShipmentEvent, attributes={"dock": {"label": "B\u00002"}}),
        Reason.VALIDATION_ERROR,
        ("NUL", "attributes.dock.label"),
    ),
    Hostile(
        "NUL in a list in attributes",
        ShipmentEvent,
        changed(ShipmentEvent, attributes={"tags": ["ok", "b\u0000d"]}),
        Reason.VALIDATION_ERROR,
        ("NUL", "attributes.tags[1]"),
    ),
    Hostile(
        "NUL in an extra field",
        CarrierUpdate,
        changed(CarrierUpdate, sf_route="R\u00001"),
        Reason.VALIDATION_ERROR,
        ("NUL", "sf_route"),
    ),
    Hostile(
        "NUL in a nested part",
        CarrierUpdate,
        changed(CarrierUpdate, location={"city": "Shen\u0000zhen"}),
        Reason.VALIDATION_ERROR,
        ("NUL", "location.city"),
    ),
    Hostile(
        "NUL in an attributes key",
        ShipmentEvent,
        changed(ShipmentEvent, attributes={"do\u0000ck": 1}),
        Reason.VALIDATION_ERROR,
        ("NUL", "attributes.do"),
    ),
    Hostile("NUL in a top-level key", CallLog, encode({**CALL, "ex\u0000tra": 1}), Reason.VALIDATION_ERROR, ("NUL",)),
    # wrong types
    Hostile(
        "id as number",
        ShipmentEvent,
        changed(ShipmentEvent, shipment_id=123456),
        Reason.VALIDATION_ERROR,
        ("shipment_id",),
    ),
    Hostile(
        "duration as word", CallLog, changed(CallLog, duration_s="sixty"), Reason.VALIDATION_ERROR, ("duration_s",)
    ),
    Hostile(
        "fractional score",
        CallLog,
        changed(CallLog, satisfaction_score=4.5),
        Reason.VALIDATION_ERROR,
        ("satisfaction_score",),
    ),
    Hostile(
        "location as string",
        CarrierUpdate,
        changed(CarrierUpdate, location="Shenzhen"),
        Reason.VALIDATION_ERROR,
        ("location",),
    ),
    Hostile(
        "attributes as list",
        ShipmentEvent,
        changed(ShipmentEvent, attributes=["a"]),
        Reason.VALIDATION_ERROR,
        ("attributes",),
    ),
    Hostile(
        "exception as string",
        ShipmentEvent,
        changed(ShipmentEvent, type="exception", exception="damaged"),
        Reason.VALIDATION_ERROR,
        ("exception",),
    ),
    Hostile(
        "timestamp as boolean",
        ShipmentEvent,
        changed(ShipmentEvent, promised_delivery_at=True),
        Reason.VALIDATION_ERROR,
        ("promised_delivery_at",),
    ),
    Hostile(
        "lowercase currency",
        ShipmentEvent,
        changed(ShipmentEvent, declared_value={"amount": 1, "currency": "cny"}),
        Reason.VALIDATION_ERROR,
        ("declared_value.currency",),
    ),
    Hostile(
        "negative declared value",
        ShipmentEvent,
        changed(ShipmentEvent, declared_value={"amount": -1, "currency": "CNY"}),
        Reason.VALIDATION_ERROR,
        ("declared_value.amount",),
    ),
    Hostile(
        "latitude 91",
        CarrierUpdate,
        changed(CarrierUpdate, location={"lat": 91}),
        Reason.VALIDATION_ERROR,
        ("location.lat",),
    ),
    # not an object at all
    Hostile("a JSON array", CallLog, encode([CALL]), Reason.VALIDATION_ERROR, ("dictionary",)),
    Hostile("a JSON string", CarrierUpdate, encode("hello"), Reason.VALIDATION_ERROR, ("dictionary",)),
    Hostile("a JSON null", ShipmentEvent, b"null", Reason.VALIDATION_ERROR, ("dictionary",)),
    Hostile("truncated JSON", ShipmentEvent, encode(SHIPMENT)[:-5], Reason.INVALID_JSON, ("not JSON",)),
    Hostile("empty value", CallLog, b"", Reason.INVALID_JSON, ("not JSON",)),
    Hostile("tombstone", CallLog, None, Reason.INVALID_JSON, ("no value",)),
    # encodings
    Hostile(
        "invalid UTF-8",
        ShipmentEvent,
        encode(SHIPMENT).replace(b"wms-sh-01", b"wms-\xff\xfe-01"),
        Reason.UNDECODABLE,
        ("UTF-8",),
    ),
    Hostile(
        "Latin-1 text",
        CallLog,
        changed(CallLog, notes="caf\u00e9").replace("é".encode(), b"\xe9"),
        Reason.UNDECODABLE,
        ("UTF-8",),
    ),
    Hostile(
        "lone surrogate escape", CallLog, with_raw(CallLog, "notes", '"\\ud800"'), Reason.INVALID_JSON, ("surrogate",)
    ),
    Hostile(
        "lone low surrogate escape",
        CallLog,
        with_raw(CallLog, "notes", '"x\\udc00y"'),
        Reason.INVALID_JSON,
        ("not JSON",),
    ),
    Hostile(
        "surrogate encoded as UTF-8 bytes",
        CallLog,
        changed(CallLog, notes="AB").replace(b'"AB"', b'"\xed\xa0\x80"'),
        Reason.UNDECODABLE,
        ("UTF-8",),
    ),
    # size and depth
    Hostile("10 MB string", CallLog, changed(CallLog, notes="x" * 10_000_000), Reason.OVERSIZED, ("1,048,576",)),
    Hostile(
        "deep nesting",
        ShipmentEvent,
        with_raw(ShipmentEvent, "attributes", '{"d": ' + nested(5000) + "}"),
        Reason.INVALID_JSON,
        ("depth",),
    ),
    # versions
    Hostile(
        "schema_version 2",
        CarrierUpdate,
        changed(CarrierUpdate, schema_version=2),
        Reason.UNSUPPORTED_VERSION,
        ("schema_version", "2"),
    ),
    Hostile(
        "schema_version 0",
        CarrierUpdate,
        changed(CarrierUpdate, schema_version=0),
        Reason.UNSUPPORTED_VERSION,
        ("schema_version",),
    ),
    Hostile(
        "schema_version -1",
        CallLog,
        changed(CallLog, schema_version=-1),
        Reason.UNSUPPORTED_VERSION,
        ("schema_version",),
    ),
    Hostile(
        'schema_version "2"',
        ShipmentEvent,
        changed(ShipmentEvent, schema_version="2"),
        Reason.VALIDATION_ERROR,
        ("schema_version",),
    ),
    Hostile(
        "schema_version 1.5",
        ShipmentEvent,
        changed(ShipmentEvent, schema_version=1.5),
        Reason.VALIDATION_ERROR,
        ("schema_version",),
    ),
    Hostile(
        "schema_version as object",
        CallLog,
        changed(CallLog, schema_version={"major": 1}),
        Reason.VALIDATION_ERROR,
        ("schema_version",),
    ),
    # cross-field and range rules
    Hostile(
        "exception type without exception object",
        ShipmentEvent,
        changed(ShipmentEvent, type="exception"),
        Reason.VALIDATION_ERROR,
        ("exception", "code"),
    ),
    Hostile(
        "exception object without code",
        ShipmentEvent,
        changed(ShipmentEvent, type="exception", exception={"description": "crushed"}),
        Reason.VALIDATION_ERROR,
        ("exception.code",),
    ),
    Hostile(
        "satisfaction_score 6",
        CallLog,
        changed(CallLog, satisfaction_score=6),
        Reason.VALIDATION_ERROR,
        ("satisfaction_score", "5"),
    ),
    Hostile(
        "satisfaction_score 0",
        CallLog,
        changed(CallLog, satisfaction_score=0),
        Reason.VALIDATION_ERROR,
        ("satisfaction_score", "1"),
    ),
    Hostile(
        "negative duration", CallLog, changed(CallLog, duration_s=-1), Reason.VALIDATION_ERROR, ("duration_s", "0")
    ),
]


def _ids(cases: list[Hostile]) -> list[str]:
    return [c.name for c in cases]


@pytest.mark.parametrize("case", HOSTILE, ids=_ids(HOSTILE))
def test_hostile_payload_is_rejected_with_its_reason(case: Hostile):
    result = decode(case.value, case.model)
    assert isinstance(result, Rejected), f"{case.name} was accepted"
    assert result.reason is case.reason, result.message
    for word in case.names:
        assert word.lower() in result.message.lower(), f"{word!r} not in {result.message!r}"


@pytest.mark.parametrize(
    "case",
    HOSTILE,
    ids=_ids(HOSTILE),
)
def test_rejection_message_is_short_printable_text(case: Hostile):
    # The message goes into a Kafka header and the dead_letters.message text column.
    result = decode(case.value, case.model)
    assert isinstance(result, Rejected)
    assert 0 < len(result.message) <= 1_000
    assert result.error_class and result.error_class.isidentifier()
    assert not any(ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F for ch in result.message), repr(result.message)


def test_rejection_keeps_the_original_record():
    record = Record("call.logs", 1, 7, b"C1", changed(CallLog, category="refund"), (("trace", b"abc"),))
    result = decode_record(record, CallLog, DEFAULT_LIMIT)
    assert isinstance(result, Rejected)
    assert result.record is record


def test_the_size_limit_is_inclusive_and_configurable():
    value = encode(CALL)
    assert isinstance(decode(value, CallLog, max_bytes=len(value)), Accepted)
    too_big = decode(value, CallLog, max_bytes=len(value) - 1)
    assert isinstance(too_big, Rejected) and too_big.reason is Reason.OVERSIZED


def test_default_limit_is_one_mib():
    assert DEFAULT_LIMIT == 1024 * 1024
    just_under = changed(CallLog, x_padding="p" * (DEFAULT_LIMIT - len(encode(CALL)) - 20))
    assert len(just_under) <= DEFAULT_LIMIT
    assert isinstance(decode(just_under, CallLog), Accepted)


# --- wrong types the validator coerces silently ---------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("schema_version", "1"),
        ("schema_version", True),
        ("duration_s", "60"),
        ("duration_s", True),
        ("satisfaction_score", "5"),
    ],
    ids=["schema_version string", "schema_version true", "duration string", "duration true", "score string"],
)
def test_non_integer_json_for_an_integer_field_is_invalid(field: str, value: Any):
    result = decode(changed(CallLog, **{field: value}), CallLog)
    assert isinstance(result, Rejected) and result.reason is Reason.VALIDATION_ERROR
    assert field in result.message


# --- personal data -------------------------------------------------------------------------------


def _phone_forms() -> list[str]:
    return [PHONE, PHONE.replace(" ", ""), "13800138000", "138 0013 8000"]


@pytest.mark.parametrize(
    "document",
    [
        {**CALL, "caller_phone": PHONE, "category": "refund", "duration_s": -5},
        {**CALL, "caller_phone": PHONE, "notes": f"call back on {PHONE} " * 1_000},
        {**CALL, "caller_phone": 8613800138000},
        {**CALL, "caller_phone": PHONE * 100},
        {**CALL, "caller_phone": PHONE, "customer_id": PHONE + "\n"},
        {**CALL, "caller_phone": PHONE, "requested_deadline": f"call {PHONE}"},
        {**CALL, "caller_phone": PHONE, "occurred_at": "2026-11-27T10:00:00", "satisfaction_score": 9},
    ],
    ids=[
        "invalid enum and range",
        "notes too long",
        "phone as number",
        "phone too long",
        "phone-like id",
        "phone in a timestamp",
        "naive and out of range",
    ],
)
def test_validation_message_never_contains_the_input(document: dict[str, Any]):
    result = decode(encode(document), CallLog)
    assert isinstance(result, Rejected) and result.reason is Reason.VALIDATION_ERROR
    for form in _phone_forms():
        assert form not in result.message, result.message
    assert "8613800138000" not in result.message


def test_validation_message_names_every_bad_field():
    result = decode(changed(CallLog, caller_phone=PHONE, category="refund", duration_s=-5), CallLog)
    assert isinstance(result, Rejected)
    assert "category" in result.message and "duration_s" in result.message
    assert "caller_phone" not in result.message  # the phone itself is valid


# --- payload hash --------------------------------------------------------------------------------

RICH = {
    **SHIPMENT,
    "type": "exception",
    "exception": {"code": "damaged", "description": "crushed carton"},
    "promised_delivery_at": "2026-11-28T18:00:00+08:00",
    "location": {"code": "SZX-HUB-1", "city": "Shenzhen", "lat": 22.54, "lon": 114.05},
    "declared_value": {"amount": 100.5, "currency": "CNY"},
    "attributes": {"pallets": 2, "handling": {"fragile": True}, "dims": [1, 2, 3]},
    "x_batch": "B-7",
}


def hash_of(value: bytes, model: type[InboundEvent] = ShipmentEvent) -> bytes:
    result = decode(value, model)
    assert isinstance(result, Accepted), getattr(result, "message", "")
    return payload_hash(result.event)


def _reordered(document: dict[str, Any]) -> dict[str, Any]:
    return {k: _reordered(v) if isinstance(v, dict) else v for k, v in reversed(list(document.items()))}


def test_hash_ignores_key_order():
    assert hash_of(encode(RICH)) == hash_of(encode(_reordered(RICH)))


def test_hash_ignores_spacing():
    compact = json.dumps(RICH, separators=(",", ":")).encode()
    pretty = json.dumps(RICH, indent=4).encode()
    assert compact != pretty
    assert hash_of(compact) == hash_of(pretty) == hash_of(encode(RICH))


def test_hash_ignores_ascii_escaping():
    document = {**RICH, "location": {**RICH["location"], "city": "深圳"}}
    escaped = json.dumps(document, ensure_ascii=True).encode()
    assert escaped != encode(document)
    assert hash_of(escaped) == hash_of(encode(document))


def test_hash_treats_explicit_nulls_as_absent():
    with_nulls = {
        **RICH,
        "order_id": None,
        "carrier_id": None,
        "x_note": None,
        "location": {**RICH["location"], "code": None},
    }
    without = {**RICH, "location": {k: v for k, v in RICH["location"].items() if k != "code"}}
    assert hash_of(encode(with_nulls)) == hash_of(encode(without))


def test_hash_treats_explicit_defaults_as_the_default():
    assert hash_of(encode({**SHIPMENT, "schema_version": 1, "priority": "normal"})) == hash_of(encode(SHIPMENT))


def test_hash_compares_instants_not_offsets():
    utc = {**RICH, "occurred_at": "2026-11-27T01:30:00Z", "promised_delivery_at": "2026-11-28T10:00:00.000+00:00"}
    new_york = {**RICH, "occurred_at": "2026-11-26T20:30:00-05:00"}
    assert hash_of(encode(utc)) == hash_of(encode(RICH)) == hash_of(encode(new_york))


@pytest.mark.parametrize(
    "change",
    [
        {"type": "exception", "exception": {"code": "lost", "description": "crushed carton"}},
        {"exception": {"code": "damaged", "description": "crushed box"}},
        {"occurred_at": "2026-11-27T09:30:01+08:00"},
        {"promised_delivery_at": "2026-11-28T18:00:00+09:00"},
        {"customer_id": "C2"},
        {"order_id": "PO-1"},
        {"x_batch": "B-8"},
        {"x_new": 1},
        {"attributes": {"pallets": 3, "handling": {"fragile": True}, "dims": [1, 2, 3]}},
        {"attributes": {"pallets": 2, "handling": {"fragile": False}, "dims": [1, 2, 3]}},
        {"attributes": {"pallets": 2, "handling": {"fragile": True}, "dims": [3, 2, 1]}},
        {"declared_value": {"amount": 100.51, "currency": "CNY"}},
        {"location": {"code": "SZX-HUB-1", "city": "Shenzhen", "lat": 22.54, "lon": 114.06}},
    ],
    ids=[
        "exception code",
        "description",
        "occurred_at",
        "promise instant",
        "customer",
        "new optional field",
        "extra field value",
        "added extra field",
        "attribute value",
        "nested attribute",
        "list order",
        "declared amount",
        "location",
    ],
)
def test_hash_changes_with_content(change: dict[str, Any]):
    assert hash_of(encode({**RICH, **change})) != hash_of(encode(RICH))


def test_hash_is_stable_across_calls_and_models_agree():
    event = ShipmentEvent.model_validate(RICH)
    assert payload_hash(event) == payload_hash(ShipmentEvent.model_validate(json.loads(encode(RICH))))
    assert payload_hash(event) == hash_of(encode(RICH))


def test_hash_differs_between_topics_with_the_same_fields():
    # Different models produce different canonical documents (defaults, declared fields).
    call = hash_of(encode(CALL), CallLog)
    carrier = hash_of(encode({**CARRIER, "event_id": CALL["event_id"]}), CarrierUpdate)
    assert call != carrier
