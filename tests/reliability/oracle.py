"""What the contract (shared/spec/CONTRACT.md) says an event must leave behind. Pure, no hub code.

The scorecard's workloads use only events whose required effects do not depend on arrival
order, so the expectation of each event follows from the event alone:

- every event: an inbox row, and a history row (`shipment_events` for shipment and carrier
  events, `call_logs` for calls);
- alerts and tasks from triggers carried by the event itself (exception codes, failed
  deliveries, urgent orders, complaints, claims), one per handler queue, first row of the
  routing table wins. The workloads never set `promised_delivery_at` (so the ETA-past-promise
  trigger cannot fire), give calls no `shipment_id` (so repeat contact cannot fire) and import
  no customers (so nobody is a key account and severities are the defaults);
- customer notifications only where the customer is in the event itself (shipment events and
  calls). Carrier updates find their customer on the tracking sheet, so whether they notify
  depends on arrival order: they are allowed one notice per kind, never required;
- the tracking sheet's final status is the status of the shipment's latest event by
  `occurred_at` (carrier statuses mapped as the contract says) and its ETA is the ETA of the
  latest carrier update carrying one. Every shipment's events have distinct `occurred_at`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

SHIPMENT, CARRIER, CALL = "shipment", "carrier", "call"

# Handler queues and rule ids of the contract's routing table (hub/rules.yaml names the rows).
EXCEPTIONS, URGENT, COMPLAINTS = "exceptions", "urgent_orders", "complaints"

# exception code -> (rule id, notification kind), in routing-table order.
EXCEPTION_ROWS = {
    "damaged": ("damage", "exception"),
    "lost": ("loss", "exception"),
    "address_issue": ("delivery_problem", "delivery_problem"),
    "refused": ("delivery_problem", "delivery_problem"),
    "customs_hold": ("customs_hold", "exception"),
    "delayed": ("delay", "delay"),
    "weather": ("delay", "delay"),
    "other": ("delay", "delay"),
}

# "carrier statuses map accepted->dispatched, arrived_at_hub->in_transit, attempt_failed->delivery_failed,
# returned_to_sender->returned, the rest by name"
CARRIER_TO_SHEET_STATUS = {
    "accepted": "dispatched",
    "in_transit": "in_transit",
    "arrived_at_hub": "in_transit",
    "out_for_delivery": "out_for_delivery",
    "delivered": "delivered",
    "attempt_failed": "delivery_failed",
    "exception": "exception",
    "returned_to_sender": "returned",
}

MILESTONE_OF_SHIPMENT = {"dispatched": "dispatched", "out_for_delivery": "out_for_delivery", "delivered": "delivered"}
MILESTONE_OF_CARRIER = {"accepted": "dispatched", "out_for_delivery": "out_for_delivery", "delivered": "delivered"}
MILESTONES = frozenset(MILESTONE_OF_SHIPMENT.values())


@dataclass(frozen=True)
class Expectation:
    """Effects one event must have (required) and may have (allowed, e.g. order-dependent notices)."""

    rules: tuple[tuple[str, str], ...] = ()  # (queue, rule id): one alert and one main task each
    notifications: tuple[str, ...] = ()  # notification kinds that must be written
    allowed_notifications: frozenset[str] = frozenset()  # kinds that may be written (superset of the above)


def expect_shipment_event(doc: dict) -> Expectation:
    kind = doc["type"]
    rules, notices = [], []
    if kind == "exception":
        rule, notice = EXCEPTION_ROWS[doc["exception"]["code"]]
        rules.append((EXCEPTIONS, rule))
        notices.append(notice)
    elif kind == "delivery_failed":
        rules.append((EXCEPTIONS, "delivery_problem"))
        notices.append("delivery_problem")
    elif kind == "created" and doc.get("priority") == "urgent":
        rules.append((URGENT, "urgent_order"))
        notices.append("urgent_order_confirmed")
    # A shipment event may also bring the current milestone to a customer who just became known.
    return Expectation(tuple(rules), tuple(notices), frozenset(notices) | MILESTONES)


def expect_carrier_update(doc: dict) -> Expectation:
    status = doc["status"]
    rules, may_notify = [], set()
    if status == "exception":
        rule, notice = EXCEPTION_ROWS[doc.get("exception_code") or "other"]
        rules.append((EXCEPTIONS, rule))
        may_notify.add(notice)
    elif status == "attempt_failed":
        rules.append((EXCEPTIONS, "delivery_problem"))
        may_notify.add("delivery_problem")
    if status in MILESTONE_OF_CARRIER:
        may_notify.add(MILESTONE_OF_CARRIER[status])
    return Expectation(tuple(rules), (), frozenset(may_notify))


CALL_ROWS = {
    "complaint": (COMPLAINTS, "complaint", "complaint_received"),
    "claim": (EXCEPTIONS, "claim", "claim_received"),
    "urgent_order": (URGENT, "urgent_order", "urgent_order_confirmed"),
}


def expect_call(doc: dict) -> Expectation:
    assert not doc.get("shipment_id"), "workload calls carry no shipment_id (repeat contact is order-dependent)"
    row = CALL_ROWS.get(doc["category"])
    if row is None:
        return Expectation()
    queue, rule, notice = row
    return Expectation(((queue, rule),), (notice,), frozenset({notice}))


EXPECT = {SHIPMENT: expect_shipment_event, CARRIER: expect_carrier_update, CALL: expect_call}


def sheet_status(stream: str, doc: dict) -> str | None:
    if stream == SHIPMENT:
        return doc["type"]
    if stream == CARRIER:
        return CARRIER_TO_SHEET_STATUS[doc["status"]]
    return None


@dataclass(frozen=True)
class SheetFact:
    occurred_at: datetime
    status: str
    eta: datetime | None


@dataclass(frozen=True)
class ExpectedSheet:
    status: str
    eta: datetime | None


def expected_sheet(facts: list[SheetFact]) -> ExpectedSheet:
    """The tracking sheet after all of a shipment's events, applied in occurred_at order."""
    ordered = sorted(facts, key=lambda f: f.occurred_at)
    with_eta = [f for f in ordered if f.eta is not None]
    return ExpectedSheet(ordered[-1].status, with_eta[-1].eta if with_eta else None)
