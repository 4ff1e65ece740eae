"""Pure parts of issue 22: what an erasure keeps of a payload, and the register's e-mail and phone formats."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hub.core.privacy import ERASED, erase_payload, erase_task_details
from schemas.customers import Customer

CALL = {
    "event_id": "e1",
    "occurred_at": "2026-11-28T10:15:00+08:00",
    "source": "cc-shanghai",
    "schema_version": 1,
    "call_id": "CALL-1",
    "customer_id": "C1",
    "shipment_id": "S1",
    "direction": "inbound",
    "channel": "phone",
    "category": "complaint",
    "agent_id": "AG-118",
    "duration_s": 412,
    "caller_phone": "+86 138 0013 8000",
    "notes": "Wang Wei reports a crushed carton.",
    "callback": {"number": "13800138000"},
}
DELIVERED = {
    "event_id": "e2",
    "occurred_at": "2026-11-28T16:44:00-05:00",
    "source": "carrier:DHL",
    "carrier_id": "DHL",
    "carrier_tracking_no": "7781230045",
    "shipment_id": "S1",
    "status": "delivered",
    "raw_code": "OK",
    "raw_description": "signed by J. SMITH",
    "proof_of_delivery": {"signed_by": "J. SMITH", "photo_url": "https://pod.example.com/1.jpg"},
    "location": {"code": "JFK", "city": "New York", "lat": 40.6, "lon": -73.8},
    "exception": {"code": "damaged", "description": "J. SMITH refused it"},
    "declared_value": {"amount": 10.5, "currency": "CNY", "note": "x"},
    "attributes": {"recipient": "J. SMITH"},
}


def test_an_erased_call_keeps_its_facts_only():
    erased = erase_payload(CALL)
    assert erased == {k: v for k, v in CALL.items() if k not in ("caller_phone", "notes", "callback")}
    assert erase_payload(erased) == erased  # idempotent


def test_an_erased_event_drops_free_text_signatures_coordinates_and_unknown_fields():
    erased = erase_payload(DELIVERED)
    assert "J. SMITH" not in str(erased) and "pod.example.com" not in str(erased)
    assert erased["location"] == {"code": "JFK", "city": "New York"}
    assert erased["exception"] == {"code": "damaged"}
    assert erased["declared_value"] == {"amount": 10.5, "currency": "CNY"}
    assert erased["status"] == "delivered" and erased["raw_code"] == "OK"
    assert erase_payload(erased) == erased


def test_task_details_lose_the_texts_that_quote_the_customer():
    details = {"script": "Call Wang Wei back", "error": "550 <w@x.cn>", "notification_id": "n1", "rule": None}
    assert erase_task_details(details) == {"script": ERASED, "error": ERASED, "notification_id": "n1", "rule": None}


@pytest.mark.parametrize(
    "email", ["ops@acme.test", "a.b+tag@sub.example.com", "张伟@例子.中国", "o'neil@example.co.uk", "x_y@ex-ample.cn"]
)
def test_e_mail_addresses_that_are_accepted(email: str):
    assert Customer(customer_id="C1", email=email).email == email


@pytest.mark.parametrize(
    "email",
    ["n/a", "john", "a@b", "a@b.c", "a b@c.com", "a@b.com, c@d.com", "<a@b.com>", "a@@b.com", "+8613800138000"],
)
def test_e_mail_garbage_is_refused(email: str):
    with pytest.raises(ValidationError, match="not an e-mail address"):
        Customer(customer_id="C1", email=email)


@pytest.mark.parametrize(
    "phone", ["+86 138 0013 8000", "(021) 5555-0199", "138-0013-8000", "13800138000", "+1 (555) 123-4567", "021.555.01"]
)
def test_phone_numbers_that_are_accepted(phone: str):
    assert Customer(customer_id="C1", phone=phone).phone == phone


@pytest.mark.parametrize(
    "phone", ["n/a", "12345", "138 0013 8000 ext 5", "++86 138 0013 8000", "86+13800138000", "1" * 21, "138 / 139"]
)
def test_phone_garbage_is_refused(phone: str):
    with pytest.raises(ValidationError, match="not a phone number"):
        Customer(customer_id="C1", phone=phone)
