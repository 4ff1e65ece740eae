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
from datetime import datetime, timedelta

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


LOW_SCORE_AT_MOST = 2  # rules.yaml surveys.low_score_at_most: an answer at or below is a complaint

CALL_ROWS = {
    "complaint": (COMPLAINTS, "complaint", "complaint_received"),
    "claim": (EXCEPTIONS, "claim", "claim_received"),
    "urgent_order": (URGENT, "urgent_order", "urgent_order_confirmed"),
}


def expect_call(doc: dict) -> Expectation:
    assert not doc.get("shipment_id"), "workload calls carry no shipment_id (repeat contact is order-dependent)"
    row = CALL_ROWS.get(doc["category"])
    if doc["category"] == "survey" and (doc.get("satisfaction_score") or 5) <= LOW_SCORE_AT_MOST:
        return Expectation(((COMPLAINTS, "low_satisfaction"),))  # rules.yaml: an alert and a task, no notice
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


# --- the clock (CONTRACT.md, "The clock"; hub/core/rules.yaml `clock:`), for the clock scenarios -----

# The severity of each rule's main task, and the response time per severity (a task's window runs
# from its event's occurred_at to due_at = occurred_at + response time). No key accounts in the
# workloads, so no raise.
RULE_SEVERITY = {
    "damage": "P1",
    "loss": "P1",
    "delivery_problem": "P2",
    "customs_hold": "P2",
    "delay": "P3",
    "urgent_order": "P1",  # due: the earliest of +2 h, a requested deadline and the promise (none here)
    "complaint": "P2",
    "claim": "P2",
    "low_satisfaction": "P2",  # a survey answer at or below surveys.low_score_at_most
}
RESPONSE = {"P1": timedelta(hours=2), "P2": timedelta(hours=8), "P3": timedelta(hours=24), "P4": timedelta(hours=72)}
WARNING_AT = 0.75  # sla_warning at 75 % of the window, only before due_at
# stale_shipment: no event for this long after the latest one, by the sheet's status then.
STALE_AFTER = {
    status: timedelta(hours=h)
    for status, h in {
        "created": 24,
        "picked": 24,
        "packed": 24,
        "dispatched": 48,
        "in_transit": 48,
        "out_for_delivery": 12,
        "delivery_failed": 24,
        "exception": 48,
    }.items()
}
TERMINAL = frozenset({"delivered", "returned", "cancelled"})  # never stale
STALE_TASK_SEVERITY = "P3"  # the stale_shipment task (carrier_liaison); its window is P3's response time

SLA_WARNING, SLA_BREACH, STALE_SHIPMENT = "sla_warning", "sla_breach", "stale_shipment"


@dataclass(frozen=True)
class Window:
    """A task's SLA window and the moments of its timers."""

    opened: datetime
    due: datetime

    @property
    def length(self) -> timedelta:
        return self.due - self.opened

    @property
    def warn(self) -> datetime:
        return self.opened + self.length * WARNING_AT

    @property
    def level_2(self) -> datetime:
        return self.due + self.length  # one window after due_at

    def moment(self, timer: str, key: str) -> datetime:
        """When (timer, key) of this task is due."""
        if timer == SLA_WARNING:
            return self.warn
        return self.due if key == "1" else self.level_2


def event_task_window(occurred_at: datetime, rule: str) -> Window:
    return Window(occurred_at, occurred_at + RESPONSE[RULE_SEVERITY[rule]])


def stale_task_window(stale_due: datetime) -> Window:
    """The stale_shipment task opens when the shipment went stale."""
    return Window(stale_due, stale_due + RESPONSE[STALE_TASK_SEVERITY])


def stale_moment(last_event_at: datetime, status: str | None) -> datetime | None:
    """When a shipment whose latest event is this one goes stale (None: never, it is terminal)."""
    if status is None or status in TERMINAL:
        return None
    return last_event_at + STALE_AFTER[status]


# --- dispatch (CONTRACT.md, "Notification dispatch") ----------------------------------------------------

# A try that may succeed later is repeated after these waits (+-10 % jitter), then the notice fails.
RETRY_SCHEDULE = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
RETRY_JITTER = 0.10
