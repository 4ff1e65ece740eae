"""The contract's inbound models accept every documented shape and keep what they do not know.

Examples live in tests/fixtures/contract_examples/<topic>__<name>.json, one event per file.
Hostile payloads are in test_decoding.py (they are judged record by record, with a reason).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from hub.core.decoding import Accepted, Record, decode_record, payload_hash
from schemas.enums import ExceptionCode, Priority, ShipmentEventType
from schemas.inbound import CallLog, CarrierUpdate, InboundEvent, ShipmentEvent

EXAMPLES_DIR = Path(__file__).parents[1] / "fixtures" / "contract_examples"
MODELS: dict[str, type[InboundEvent]] = {
    "shipment.events": ShipmentEvent,
    "call.logs": CallLog,
    "carrier.updates": CarrierUpdate,
}
ONE_MIB = 1024 * 1024


def _examples() -> list[Path]:
    return sorted(EXAMPLES_DIR.glob("*.json"))


def _topic(path: Path) -> str:
    return path.name.split("__", 1)[0]


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _declared(model: type[BaseModel]) -> set[str]:
    return set(model.model_fields)


def test_there_are_examples_for_every_topic():
    topics = {_topic(p) for p in _examples()}
    assert topics == set(MODELS), f"examples per topic missing in {EXAMPLES_DIR}"


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.stem)
def test_contract_example_is_accepted_by_the_decoder(path: Path):
    raw = path.read_bytes()
    result = decode_record(Record(_topic(path), 0, 0, b"key", raw), MODELS[_topic(path)], ONE_MIB)
    assert isinstance(result, Accepted), getattr(result, "message", result)
    assert result.payload_text == raw.decode("utf-8"), "the stored payload is the text as received"
    assert len(payload_hash(result.event)) == 32


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.stem)
def test_unknown_extra_fields_are_kept_in_model_dump(path: Path):
    model = MODELS[_topic(path)]
    document = _load(path)
    dumped = model.model_validate(document).model_dump(mode="json")
    extras = {name: value for name, value in document.items() if name not in _declared(model)}
    for name, value in extras.items():
        assert dumped[name] == value, f"extra field {name!r} was dropped or changed"


@pytest.mark.parametrize("path", _examples(), ids=lambda p: p.stem)
def test_nested_objects_keep_their_unknown_fields(path: Path):
    model = MODELS[_topic(path)]
    document = _load(path)
    dumped = model.model_validate(document).model_dump(mode="json")
    for name in ("location", "exception", "proof_of_delivery", "declared_value"):
        if isinstance(document.get(name), dict):
            for key, value in document[name].items():
                assert dumped[name][key] == value, f"{name}.{key} was dropped or changed"


def test_example_extras_cover_every_topic():
    # The keep-extras tests above prove nothing unless the examples actually carry extras.
    with_extras = set()
    for path in _examples():
        model = MODELS[_topic(path)]
        if set(_load(path)) - _declared(model):
            with_extras.add(_topic(path))
    assert with_extras == set(MODELS)


def test_defaults_apply_when_optional_fields_are_absent():
    event = ShipmentEvent.model_validate(_load(EXAMPLES_DIR / "shipment.events__created_minimal.json"))
    assert event.schema_version == 1
    assert event.priority is Priority.NORMAL
    assert event.order_id is None and event.exception is None and event.attributes is None
    assert event.key == "SF1400123456789"


def test_json_null_on_an_optional_field_means_absent():
    document = _load(EXAMPLES_DIR / "shipment.events__exception_damaged.json")
    assert document["order_id"] is None and document["attributes"] is None
    event = ShipmentEvent.model_validate(document)
    absent = ShipmentEvent.model_validate({k: v for k, v in document.items() if v is not None})
    assert event == absent


def test_full_example_is_parsed_into_typed_values():
    event = ShipmentEvent.model_validate(_load(EXAMPLES_DIR / "shipment.events__created_urgent_full.json"))
    assert event.type is ShipmentEventType.CREATED
    assert event.priority is Priority.URGENT
    assert event.promised_delivery_at == datetime(2026, 11, 28, 10, 0, tzinfo=UTC)
    assert event.declared_value is not None and event.declared_value.currency == "CNY"
    assert event.location is not None and event.location.lat == pytest.approx(31.2304)
    assert event.attributes == {"pallets": 2, "hazmat": False, "dims_cm": [120, 80, 95], "handling": {"fragile": True}}


def test_timestamps_keep_the_instant_whatever_the_offset():
    document = _load(EXAMPLES_DIR / "carrier.updates__accepted.json")
    shanghai = CarrierUpdate.model_validate(document)
    utc = CarrierUpdate.model_validate({**document, "occurred_at": "2026-11-27T06:00:00Z"})
    assert shanghai.occurred_at == utc.occurred_at
    assert shanghai.occurred_at.utcoffset() is not None


def test_carrier_exception_code_is_parsed_on_any_status():
    event = CarrierUpdate.model_validate(_load(EXAMPLES_DIR / "carrier.updates__in_transit_eta.json"))
    assert event.exception_code is ExceptionCode.DELAYED  # informational on a non-exception status
    assert event.key == event.shipment_id


def test_call_log_is_keyed_by_customer():
    event = CallLog.model_validate(_load(EXAMPLES_DIR / "call.logs__complaint_inbound.json"))
    assert event.key == "CUST-00042"


def test_events_are_immutable():
    event = CallLog.model_validate(_load(EXAMPLES_DIR / "call.logs__complaint_inbound.json"))
    with pytest.raises(ValidationError):
        event.category = "claim"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("shipment_id", "x" * 64),
        ("customer_id", "客户-上海-0001"),
        ("event_id", "e" * 128),
    ],
)
def test_limits_are_inclusive(field: str, value: str):
    document = _load(EXAMPLES_DIR / "shipment.events__created_minimal.json")
    assert getattr(ShipmentEvent.model_validate({**document, field: value}), field) == value


def test_exception_object_on_a_non_exception_type_is_accepted():
    document = _load(EXAMPLES_DIR / "shipment.events__delivered.json")
    event = ShipmentEvent.model_validate({**document, "exception": {"code": "lost"}})
    assert event.exception is not None and event.type is ShipmentEventType.DELIVERED
