"""Properties of decoding: every input gets a verdict, and the payload hash sees content only.

- `decode_record` is total: arbitrary bytes, arbitrary JSON and near-valid events all come back
  Accepted or Rejected, never as an exception (one would sink the record's batch).
- The payload hash of an accepted event does not change with key order, spacing, or explicit
  nulls on optional fields: a re-publish in other bytes is the same payload (CONTRACT.md).
"""

from __future__ import annotations

import json
import random
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.core.decoding import Accepted, Record, Rejected, decode_record, payload_hash
from schemas.inbound import CallLog, CarrierUpdate, InboundEvent, ShipmentEvent

MODELS: tuple[type[InboundEvent], ...] = (ShipmentEvent, CallLog, CarrierUpdate)
LIMIT = 1 << 20

BASE: dict[type[InboundEvent], dict[str, Any]] = {
    ShipmentEvent: {
        "event_id": "e-1",
        "occurred_at": "2026-11-27T09:30:00+08:00",
        "source": "wms-sh-01",
        "shipment_id": "SF100",
        "customer_id": "C1",
        "type": "created",
    },
    CallLog: {
        "event_id": "e-2",
        "occurred_at": "2026-11-27T10:00:00+08:00",
        "source": "cc-1",
        "call_id": "K1",
        "customer_id": "C1",
        "direction": "inbound",
        "channel": "phone",
        "category": "query",
    },
    CarrierUpdate: {
        "event_id": "e-3",
        "occurred_at": "2026-11-27T11:00:00Z",
        "source": "carrier:SF",
        "carrier_id": "SF",
        "carrier_tracking_no": "T1",
        "shipment_id": "SF100",
        "status": "in_transit",
    },
}
# Optional fields that may be spelled as an explicit null without changing the payload.
OPTIONAL: dict[type[InboundEvent], tuple[str, ...]] = {
    ShipmentEvent: ("order_id", "exception", "promised_delivery_at", "carrier_id", "location", "declared_value"),
    CallLog: ("shipment_id", "order_id", "agent_id", "duration_s", "caller_phone", "notes", "satisfaction_score"),
    CarrierUpdate: ("raw_code", "raw_description", "eta", "exception_code", "location", "proof_of_delivery"),
}

json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False) | st.text()
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
models = st.sampled_from(MODELS)


def _decode(value: bytes | None, model: type[InboundEvent]) -> Accepted | Rejected:
    return decode_record(Record("t", 0, 0, None, value), model, LIMIT)


@given(st.binary(max_size=2048), models)
def test_any_bytes_get_a_verdict(value: bytes, model: type[InboundEvent]) -> None:
    assert isinstance(_decode(value, model), Accepted | Rejected)


@given(json_values, models)
def test_any_json_gets_a_verdict(document: Any, model: type[InboundEvent]) -> None:
    assert isinstance(_decode(json.dumps(document).encode(), model), Accepted | Rejected)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(models, st.dictionaries(st.text(min_size=1, max_size=30), json_values, max_size=5))
def test_a_valid_event_with_any_fields_changed_gets_a_verdict(
    model: type[InboundEvent], changes: dict[str, Any]
) -> None:
    # Keys of the contract among the changes make near-valid events: wrong types, nesting, ranges.
    keys = list(BASE[model]) + list(OPTIONAL[model])
    renamed = {keys[hash(k) % len(keys)] if k.startswith("k") else k: v for k, v in changes.items()}
    verdict = _decode(json.dumps({**BASE[model], **renamed}).encode(), model)
    assert isinstance(verdict, Accepted | Rejected)
    if isinstance(verdict, Rejected):
        assert verdict.message and len(verdict.message) <= 1000


def _shuffled(value: Any, rng: random.Random) -> Any:
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: _shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [_shuffled(v, rng) for v in value]
    return value


# Unknown extra fields are kept and hashed; no string of the contract may hold NUL.
clean_text = st.text(alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=10)
clean_values = st.recursive(
    st.booleans() | st.integers(-(2**53), 2**53) | clean_text,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(clean_text, inner, max_size=3),
    max_leaves=10,
)
extras = st.dictionaries(
    st.text(alphabet="xyz_", min_size=2, max_size=6).map(lambda k: "x_" + k), clean_values, max_size=3
)


@given(
    models,
    extras,
    st.randoms(use_true_random=False),
    st.sampled_from([None, 0, 2]),
    st.sampled_from([(",", ":"), (", ", ": "), (" ,", " : ")]),
    st.booleans(),
    st.data(),
)
def test_the_payload_hash_ignores_key_order_spacing_and_explicit_nulls(
    model: type[InboundEvent],
    extra: dict[str, Any],
    rng: random.Random,
    indent: int | None,
    separators: tuple[str, str],
    ascii_only: bool,
    data: st.DataObject,
) -> None:
    document = {**BASE[model], **extra}
    original = _decode(json.dumps(document).encode(), model)
    assert isinstance(original, Accepted), getattr(original, "message", "")
    nulls = data.draw(st.lists(st.sampled_from(OPTIONAL[model]), unique=True, max_size=3))
    respelled = _shuffled({**document, **dict.fromkeys(nulls)}, rng)
    text = json.dumps(respelled, indent=indent, separators=separators, ensure_ascii=ascii_only)
    again = _decode(text.encode(), model)
    assert isinstance(again, Accepted), getattr(again, "message", "")
    assert payload_hash(again.event) == payload_hash(original.event)


@given(models, st.text(min_size=1, max_size=20).filter(lambda s: "\x00" not in s))
def test_the_payload_hash_sees_a_changed_value(model: type[InboundEvent], source: str) -> None:
    original = _decode(json.dumps(BASE[model]).encode(), model)
    changed = _decode(json.dumps({**BASE[model], "source": source + "#"}).encode(), model)
    assert isinstance(original, Accepted)
    if isinstance(changed, Accepted):
        assert payload_hash(changed.event) != payload_hash(original.event)
