"""Nesting that JSON parsers accept but no business event has is refused up front."""

import orjson

from hub.core.decoding import MAX_DEPTH, Accepted, Record, Rejected, decode_record, payload_hash
from schemas.enums import DeadLetterReason
from schemas.inbound import ShipmentEvent

BASE = {
    "event_id": "e1",
    "occurred_at": "2026-11-27T09:00:00+08:00",
    "source": "wms",
    "shipment_id": "S1",
    "customer_id": "C1",
    "type": "created",
}


def nested(levels: int) -> bytes:
    text = "[" * levels + "]" * levels
    return orjson.dumps(BASE)[:-1] + b', "attributes": {"deep": ' + text.encode() + b"}}"


def test_reasonable_nesting_is_accepted_and_hashable():
    result = decode_record(Record("t", 0, 0, b"S1", nested(MAX_DEPTH - 3)), ShipmentEvent, 1 << 20)
    assert isinstance(result, Accepted)
    assert len(payload_hash(result.event)) == 32


def test_nesting_too_deep_for_serialisers_is_a_validation_error():
    # 300 levels parse (orjson allows 1,024) but cannot be serialised again (orjson stops at 254).
    result = decode_record(Record("t", 0, 0, b"S1", nested(300)), ShipmentEvent, 1 << 20)
    assert isinstance(result, Rejected)
    assert result.reason is DeadLetterReason.VALIDATION_ERROR and "levels deep" in result.message
