"""Routing works on its own copy of the sheet: the state it is given is never changed."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta

import pytest

from hub.core.routing import SourceRef, route_event
from hub.core.rules import load_rules
from hub.core.state import CustomerInfo, Known, ShipmentSheet
from schemas.enums import ShipmentEventType
from schemas.inbound import CallLog, CarrierUpdate, ShipmentEvent

T0 = datetime(2026, 11, 27, 9, tzinfo=UTC)
RULES = load_rules()
BASE = {"occurred_at": T0.isoformat(), "source": "test"}
EVENTS = [
    ShipmentEvent.model_validate(
        {
            **BASE,
            "event_id": "e1",
            "shipment_id": "S1",
            "customer_id": "C1",
            "type": "delivered",
            "promised_delivery_at": (T0 + timedelta(hours=1)).isoformat(),
        }
    ),
    CarrierUpdate.model_validate(
        {
            **BASE,
            "event_id": "e2",
            "shipment_id": "S1",
            "carrier_id": "SF",
            "carrier_tracking_no": "T",
            "status": "exception",
            "exception_code": "damaged",
            "eta": (T0 + timedelta(hours=9)).isoformat(),
        }
    ),
    CallLog.model_validate(
        {
            **BASE,
            "event_id": "e3",
            "call_id": "K",
            "customer_id": "C1",
            "shipment_id": "S1",
            "direction": "inbound",
            "channel": "phone",
            "category": "query",
        }
    ),
]


@pytest.mark.parametrize("event", EVENTS, ids=lambda e: type(e).__name__)
def test_routing_never_changes_the_sheet_it_was_given(event):
    sheet = ShipmentSheet(
        "S1",
        customer_id="C1",
        status=ShipmentEventType.IN_TRANSIT,
        last_event_at=T0 - timedelta(hours=1),
        promised_delivery_at=T0 + timedelta(hours=2),
        eta=T0 + timedelta(hours=1),
        eta_reported_at=T0 - timedelta(hours=2),
    )
    known = Known(sheet, CustomerInfo("C1"), (T0 - timedelta(hours=2),))
    before = copy.deepcopy(known)
    decision = route_event(event, known, SourceRef("t", 0, 1, event.event_id), RULES, T0)
    assert known == before
    assert decision.sheet is not sheet
