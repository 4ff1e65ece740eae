"""The contract's routing table (CONTRACT.md, "Routing") against hub.core.routing, row by row.

Routing is pure: (event, Known, AlertSource, Rules, now) -> Decision. Multi-event scenarios
thread each decision's sheet into the next event's Known, as the store does.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from hub.core.routing import Decision, route_event
from hub.core.rules import load_rules
from hub.core.state import CustomerInfo, Known, ShipmentSheet
from schemas.enums import (
    CustomerTier,
    Language,
    NotificationChannel,
    NotificationKind,
    Severity,
    ShipmentEventType,
)
from schemas.inbound import CallLog, CarrierUpdate, InboundEvent, ShipmentEvent
from schemas.outbound import AlertSource

RULES = load_rules()
CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 27, 9, 30, tzinfo=CST)
NOW = datetime(2026, 11, 27, 12, 0, tzinfo=UTC)
H = timedelta(hours=1)
SHIPMENT_ID = "SF100"
CUSTOMER_ID = "C1"
RESPONSE = {Severity.P1: 2 * H, Severity.P2: 8 * H, Severity.P3: 24 * H, Severity.P4: 72 * H}

STANDARD = CustomerInfo(CUSTOMER_ID, CustomerTier.STANDARD, Language.ZH, NotificationChannel.SMS)
STANDARD_EN = CustomerInfo(CUSTOMER_ID, CustomerTier.STANDARD, Language.EN, NotificationChannel.EMAIL)
KEY = CustomerInfo(CUSTOMER_ID, CustomerTier.KEY, Language.EN, NotificationChannel.WECHAT)

_serial = itertools.count(1)
TOPICS = {ShipmentEvent: "shipment.events", CallLog: "call.logs", CarrierUpdate: "carrier.updates"}


# --- event builders -----------------------------------------------------------------------------


def shipment(type_: str = "created", at: datetime = T0, **fields: Any) -> ShipmentEvent:
    return ShipmentEvent.model_validate(
        {
            "event_id": fields.pop("event_id", f"ship-{next(_serial)}"),
            "occurred_at": at,
            "source": "wms-sh-01",
            "shipment_id": SHIPMENT_ID,
            "customer_id": CUSTOMER_ID,
            "type": type_,
            **fields,
        }
    )


def shipment_exception(code: str, at: datetime = T0, **fields: Any) -> ShipmentEvent:
    return shipment("exception", at, exception={"code": code, "description": "reported"}, **fields)


def carrier(status: str = "in_transit", at: datetime = T0, **fields: Any) -> CarrierUpdate:
    return CarrierUpdate.model_validate(
        {
            "event_id": fields.pop("event_id", f"carrier-{next(_serial)}"),
            "occurred_at": at,
            "source": "carrier:SF",
            "carrier_id": "SF",
            "carrier_tracking_no": "SF-TRK-100",
            "shipment_id": SHIPMENT_ID,
            "status": status,
            **fields,
        }
    )


def call(category: str = "query", at: datetime = T0, direction: str = "inbound", **fields: Any) -> CallLog:
    return CallLog.model_validate(
        {
            "event_id": fields.pop("event_id", f"call-{next(_serial)}"),
            "occurred_at": at,
            "source": "cc-shanghai",
            "call_id": f"CALL-{next(_serial)}",
            "customer_id": CUSTOMER_ID,
            "shipment_id": SHIPMENT_ID,
            "direction": direction,
            "channel": "phone",
            "category": category,
            **fields,
        }
    )


def sheet(**fields: Any) -> ShipmentSheet:
    """A known shipment of customer C1, in transit since an hour before T0."""
    defaults: dict[str, Any] = {
        "customer_id": CUSTOMER_ID,
        "status": ShipmentEventType.IN_TRANSIT,
        "last_event_at": T0 - H,
    }
    return ShipmentSheet(SHIPMENT_ID, **{**defaults, **fields})


def source_of(event: InboundEvent) -> AlertSource:
    return AlertSource(topic=TOPICS[type(event)], partition=0, offset=next(_serial), event_id=event.event_id)


def route(event: InboundEvent, known: Known | None = None, now: datetime = NOW) -> Decision:
    return route_event(event, known or Known(), source_of(event), RULES, now)


def route_known(event: InboundEvent, customer: CustomerInfo = STANDARD, **sheet_fields: Any) -> Decision:
    """Route against a known shipment of `customer` (carrier updates need the sheet for the customer)."""
    return route(event, Known(sheet=sheet(**sheet_fields), customer=customer))


def replay(
    events: list[InboundEvent], customer: CustomerInfo | None = None, start: ShipmentSheet | None = None
) -> list[Decision]:
    """Route events in arrival order, each against the sheet the previous one left (like the store)."""
    decisions, current = [], start
    for event in events:
        owner = current.customer_id if current else None
        if not isinstance(event, CarrierUpdate):
            owner = event.customer_id
        known = Known(sheet=current, customer=customer if owner else None)
        decision = route(event, known)
        current = decision.sheet or current
        decisions.append(decision)
    return decisions


def only_alert(decision: Decision):
    assert len(decision.alerts) == 1, [a.alert.rule for a in decision.alerts]
    return decision.alerts[0]


def notification_kinds(decision: Decision) -> list[NotificationKind]:
    return [n.kind for n in decision.notifications]


# --- the routing table, one row at a time ------------------------------------------------------


@dataclass(frozen=True)
class Row:
    rule: str
    queue: str
    department: str
    severity: Severity
    notify: NotificationKind | None


DAMAGE = Row("damage", "exceptions", "claims", Severity.P1, NotificationKind.EXCEPTION)
LOSS = Row("loss", "exceptions", "claims", Severity.P1, NotificationKind.EXCEPTION)
DELIVERY_PROBLEM = Row(
    "delivery_problem", "exceptions", "carrier_liaison", Severity.P2, NotificationKind.DELIVERY_PROBLEM
)
CUSTOMS = Row("customs_hold", "exceptions", "dispatch", Severity.P2, NotificationKind.EXCEPTION)
DELAY = Row("delay", "exceptions", "carrier_liaison", Severity.P3, NotificationKind.DELAY)
URGENT = Row("urgent_order", "urgent_orders", "dispatch", Severity.P1, NotificationKind.URGENT_ORDER_CONFIRMED)
COMPLAINT = Row("complaint", "complaints", "complaints", Severity.P2, NotificationKind.COMPLAINT_RECEIVED)
CLAIM = Row("claim", "exceptions", "claims", Severity.P2, NotificationKind.CLAIM_RECEIVED)
REPEAT = Row("repeat_contact", "complaints", "complaints", Severity.P2, None)


# Each case: (event, the sheet fields it is routed against).  Urgent orders are due by their own
# rule and tested apart; the promise sits far in the future so it never caps a due time here.
FAR_PROMISE = T0 + 30 * 24 * H
CASES: list[tuple[str, Row, Callable[[], InboundEvent], dict[str, Any]]] = [
    ("shipment damaged", DAMAGE, lambda: shipment_exception("damaged"), {}),
    ("carrier damaged", DAMAGE, lambda: carrier("exception", exception_code="damaged"), {}),
    ("shipment lost", LOSS, lambda: shipment_exception("lost"), {}),
    ("carrier lost", LOSS, lambda: carrier("exception", exception_code="lost"), {}),
    ("shipment delivery_failed", DELIVERY_PROBLEM, lambda: shipment("delivery_failed"), {}),
    ("carrier attempt_failed", DELIVERY_PROBLEM, lambda: carrier("attempt_failed"), {}),
    ("shipment address_issue", DELIVERY_PROBLEM, lambda: shipment_exception("address_issue"), {}),
    ("carrier address_issue", DELIVERY_PROBLEM, lambda: carrier("exception", exception_code="address_issue"), {}),
    ("shipment refused", DELIVERY_PROBLEM, lambda: shipment_exception("refused"), {}),
    ("carrier refused", DELIVERY_PROBLEM, lambda: carrier("exception", exception_code="refused"), {}),
    ("shipment customs_hold", CUSTOMS, lambda: shipment_exception("customs_hold"), {}),
    ("carrier customs_hold", CUSTOMS, lambda: carrier("exception", exception_code="customs_hold"), {}),
    ("shipment delayed", DELAY, lambda: shipment_exception("delayed"), {}),
    ("shipment weather", DELAY, lambda: shipment_exception("weather"), {}),
    ("shipment other", DELAY, lambda: shipment_exception("other"), {}),
    ("carrier delayed", DELAY, lambda: carrier("exception", exception_code="delayed"), {}),
    ("carrier weather", DELAY, lambda: carrier("exception", exception_code="weather"), {}),
    ("carrier other", DELAY, lambda: carrier("exception", exception_code="other"), {}),
    ("carrier exception without code", DELAY, lambda: carrier("exception"), {}),
    (
        "carrier eta past promise",
        DELAY,
        lambda: carrier("in_transit", eta=(T0 + 48 * H).isoformat()),
        {"promised_delivery_at": T0 + 24 * H},
    ),
    (
        "shipment promise before known eta",
        DELAY,
        lambda: shipment("packed", promised_delivery_at=(T0 + 24 * H).isoformat()),
        {"eta": T0 + 48 * H, "eta_reported_at": T0 - H},
    ),
    ("inbound complaint", COMPLAINT, lambda: call("complaint"), {"promised_delivery_at": FAR_PROMISE}),
    ("outbound complaint", COMPLAINT, lambda: call("complaint", direction="outbound"), {}),
    ("inbound claim", CLAIM, lambda: call("claim"), {}),
    ("outbound claim", CLAIM, lambda: call("claim", direction="outbound"), {}),
    ("call without shipment", CLAIM, lambda: call("claim", shipment_id=None), {}),
    ("repeat contact", REPEAT, lambda: call("query"), {}),
]
REPEAT_CONTACTS = (T0 - 3 * H,)  # an earlier inbound query about the shipment


def _route_case(
    make: Callable[[], InboundEvent], fields: dict[str, Any], customer: CustomerInfo, rule: str
) -> tuple[InboundEvent, Decision]:
    event = make()
    contacts = REPEAT_CONTACTS if rule == "repeat_contact" else ()
    has_shipment = getattr(event, "shipment_id", None) is not None
    known = Known(sheet=sheet(**fields) if has_shipment else None, customer=customer, contacts=contacts)
    return event, route(event, known)


@pytest.mark.parametrize(("name", "row", "make", "fields"), CASES, ids=[c[0] for c in CASES])
def test_routing_table_row(name: str, row: Row, make: Callable[[], InboundEvent], fields: dict[str, Any]):
    event, decision = _route_case(make, fields, STANDARD_EN, row.rule)

    queued = only_alert(decision)
    alert = queued.alert
    assert queued.queue == row.queue
    # The contract's alert kinds and the shipped rule ids coincide (damage, loss, ..., repeat_contact).
    assert (alert.rule, alert.kind.value, alert.severity) == (row.rule, row.rule, row.severity)
    assert alert.customer_id == CUSTOMER_ID
    assert alert.shipment_id == getattr(event, "shipment_id", None)
    assert alert.created_at == NOW
    assert alert.source.event_id == event.event_id and alert.source.topic == TOPICS[type(event)]

    assert len(decision.tasks) == 1
    task = decision.tasks[0]
    assert (task.department, task.severity, task.task_id, task.alert_id) == (
        row.department,
        row.severity,
        alert.task_id,
        alert.alert_id,
    )
    assert task.customer_id == CUSTOMER_ID and task.source_event_id == event.event_id
    assert task.due_at == alert.due_at == event.occurred_at + RESPONSE[row.severity]

    if row.notify is None:
        assert decision.notifications == ()
    else:
        (notice,) = decision.notifications
        assert (notice.kind, notice.customer_id, notice.language, notice.channel) == (
            row.notify,
            CUSTOMER_ID,
            "en",
            "email",
        )
        assert notice.body == _english(row.notify).format(
            shipment_id=getattr(event, "shipment_id", None) or "-", reference=task.task_id
        )
        assert notice.source_event_id == event.event_id


def _english(kind: NotificationKind) -> str:
    return RULES.templates[kind][Language.EN]


def test_notification_follows_the_customers_language_and_channel():
    zh = route(shipment_exception("damaged"), Known(customer=STANDARD))
    en = route(shipment_exception("damaged"), Known(customer=STANDARD_EN))
    (zh_notice,), (en_notice,) = zh.notifications, en.notifications
    assert (zh_notice.language, zh_notice.channel) == ("zh", "sms")
    assert (en_notice.language, en_notice.channel) == ("en", "email")
    assert zh_notice.body == RULES.templates[NotificationKind.EXCEPTION][Language.ZH].format(shipment_id=SHIPMENT_ID)
    assert en_notice.body == _english(NotificationKind.EXCEPTION).format(shipment_id=SHIPMENT_ID)


def test_carrier_update_takes_the_customer_from_the_sheet():
    decision = route_known(carrier("attempt_failed"), customer=KEY)
    (notice,) = decision.notifications
    assert (notice.customer_id, notice.language, notice.channel) == (CUSTOMER_ID, "en", "wechat")
    assert decision.alerts[0].alert.severity is Severity.P1  # key account: P2 raised


def test_unknown_customer_is_registered_with_defaults_and_notified_in_chinese_by_sms():
    decision = route(call("complaint", customer_id="C-NEW"), Known())
    assert decision.new_customer == CustomerInfo("C-NEW", CustomerTier.STANDARD, Language.ZH, NotificationChannel.SMS)
    (notice,) = decision.notifications
    assert (notice.customer_id, notice.language, notice.channel) == ("C-NEW", "zh", "sms")


def test_known_customer_is_not_registered_again():
    assert route(call("complaint"), Known(customer=STANDARD)).new_customer is None


def test_damage_task_carries_the_declared_value():
    decision = route(
        shipment_exception("damaged", declared_value={"amount": 12800.5, "currency": "CNY"}), Known(customer=STANDARD)
    )
    assert decision.tasks[0].details["declared_value"] == {"amount": 12800.5, "currency": "CNY"}


def test_delay_task_has_no_declared_value():
    decision = route(
        shipment_exception("delayed", declared_value={"amount": 10, "currency": "CNY"}), Known(customer=STANDARD)
    )
    assert "declared_value" not in decision.tasks[0].details


def test_complaint_notice_quotes_its_task_id_as_reference():
    decision = route(call("complaint"), Known(sheet=sheet(), customer=STANDARD_EN))
    (notice,) = decision.notifications
    assert decision.tasks[0].task_id in notice.body
    assert notice.body == _english(NotificationKind.COMPLAINT_RECEIVED).format(reference=decision.tasks[0].task_id)


@pytest.mark.parametrize(
    "make",
    [
        lambda: shipment("created"),
        lambda: shipment("picked"),
        lambda: shipment("in_transit"),
        lambda: carrier("in_transit"),
        lambda: carrier("arrived_at_hub"),
        lambda: carrier("returned_to_sender"),
        lambda: call("query"),
        lambda: call("booking"),
        lambda: call("feedback"),
        lambda: call("survey", satisfaction_score=3),
        lambda: call("query", direction="outbound"),
    ],
    ids=[
        "created",
        "picked",
        "in_transit",
        "carrier in_transit",
        "arrived_at_hub",
        "returned_to_sender",
        "first query",
        "booking",
        "feedback",
        "middling survey",
        "outbound query",
    ],
)
def test_events_outside_the_table_raise_nothing(make: Callable[[], InboundEvent]):
    decision = route(make(), Known(sheet=sheet(), customer=STANDARD))
    assert (decision.alerts, decision.tasks, decision.notifications) == ((), (), ())


@pytest.mark.parametrize("score", [1, 2])
def test_a_low_survey_score_raises_low_satisfaction_on_the_complaints_queue(score: int):
    decision = route(call("survey", satisfaction_score=score), Known(sheet=sheet(), customer=STANDARD))
    [alert] = decision.alerts
    [task] = decision.tasks
    assert (alert.queue.value, alert.alert.kind.value, alert.alert.severity) == (
        "complaints",
        "low_satisfaction",
        Severity.P2,
    )
    assert (task.department, task.kind, task.severity) == ("complaints", "low_satisfaction", Severity.P2)
    assert decision.notifications == ()


# --- key accounts --------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "row", "make", "fields"), CASES, ids=[c[0] for c in CASES])
def test_key_account_raises_severity_and_adds_a_follow_up(
    name: str, row: Row, make: Callable[[], InboundEvent], fields: dict[str, Any]
):
    event, decision = _route_case(make, fields, KEY, row.rule)
    alert = only_alert(decision).alert
    raised = Severity.P1 if row.severity is Severity.P1 else Severity(f"P{int(row.severity.value[1]) - 1}")
    assert alert.severity is raised

    main, follow_up = decision.tasks
    assert alert.task_id == main.task_id != follow_up.task_id
    assert (main.department, main.severity) == (row.department, raised)
    assert (follow_up.department, follow_up.kind) == ("key_accounts", "key_account_followup")
    assert (follow_up.severity, follow_up.due_at) == (main.severity, main.due_at)
    assert main.due_at == alert.due_at == event.occurred_at + RESPONSE[raised]
    assert follow_up.customer_id == main.customer_id == CUSTOMER_ID
    assert follow_up.details["main_task_id"] == main.task_id


def test_p1_stays_p1_for_a_key_account():
    decision = route(shipment_exception("lost"), Known(customer=KEY))
    assert [t.severity for t in decision.tasks] == [Severity.P1, Severity.P1]


def test_milestones_add_no_key_account_task():
    decision = route(shipment("dispatched"), Known(customer=KEY))
    assert decision.tasks == () and notification_kinds(decision) == [NotificationKind.DISPATCHED]


# --- urgent orders -------------------------------------------------------------------------------


def test_urgent_created_is_due_two_hours_after_it_occurred():
    decision = route(shipment("created", priority="urgent", order_id="PO-9"), Known(customer=STANDARD_EN))
    queued = only_alert(decision)
    assert (queued.queue, queued.alert.rule, queued.alert.severity) == ("urgent_orders", "urgent_order", Severity.P1)
    assert decision.tasks[0].department == "dispatch"
    assert decision.tasks[0].due_at == T0 + 2 * H
    (notice,) = decision.notifications
    assert notice.kind is NotificationKind.URGENT_ORDER_CONFIRMED and "PO-9" in notice.body


def test_urgent_created_is_due_by_an_earlier_promise():
    promise = T0 + 90 * timedelta(minutes=1)
    decision = route(
        shipment("created", priority="urgent", promised_delivery_at=promise.isoformat()), Known(customer=STANDARD)
    )
    assert decision.tasks[0].due_at == promise


def test_normal_created_is_no_urgent_order():
    assert route(shipment("created", priority="normal"), Known(customer=STANDARD)).alerts == ()


@pytest.mark.parametrize(
    ("deadline", "promise", "expected"),
    [
        (None, None, T0 + 2 * H),
        (T0 + 3 * H, None, T0 + 2 * H),
        (T0 + 30 * timedelta(minutes=1), None, T0 + 30 * timedelta(minutes=1)),
        (None, T0 + H, T0 + H),
        (T0 + 45 * timedelta(minutes=1), T0 + H, T0 + 45 * timedelta(minutes=1)),
        (T0 + H, T0 + 20 * timedelta(minutes=1), T0 + 20 * timedelta(minutes=1)),
        (T0 + 5 * H, T0 + 6 * H, T0 + 2 * H),
    ],
    ids=[
        "no deadline",
        "deadline later",
        "deadline earliest",
        "promise earliest",
        "deadline before promise",
        "promise before deadline",
        "both later",
    ],
)
@pytest.mark.parametrize("customer", [STANDARD, KEY], ids=["standard", "key"])
def test_urgent_order_call_is_due_at_the_earliest(deadline, promise, expected, customer):
    fields = {"requested_deadline": deadline.isoformat()} if deadline else {}
    decision = route(
        call("urgent_order", **fields), Known(sheet=sheet(promised_delivery_at=promise), customer=customer)
    )
    assert {t.due_at for t in decision.tasks} == {expected}
    assert decision.alerts[0].alert.due_at == expected
    assert decision.alerts[0].alert.severity is Severity.P1


def test_urgent_order_call_without_shipment():
    decision = route(call("urgent_order", direction="outbound", shipment_id=None), Known(customer=STANDARD))
    alert = only_alert(decision).alert
    assert alert.shipment_id is None and alert.customer_id == CUSTOMER_ID
    assert decision.tasks[0].due_at == T0 + 2 * H


# --- first matching row per queue --------------------------------------------------------------


def test_damage_beats_an_eta_past_the_promise():
    decision = route_known(
        carrier("exception", exception_code="damaged", eta=(T0 + 72 * H).isoformat()), promised_delivery_at=T0 + 24 * H
    )
    queued = only_alert(decision)
    assert (queued.queue, queued.alert.rule) == ("exceptions", "damage")
    assert [t.rule for t in decision.tasks] == ["damage"]
    assert notification_kinds(decision) == [NotificationKind.EXCEPTION]


def test_loss_beats_delay_code_row_order_not_event_order():
    # `lost` is row 2, an ETA past the promise is row 4: the earlier row wins.
    decision = route_known(
        carrier("exception", exception_code="lost", eta=(T0 + 72 * H).isoformat()), promised_delivery_at=T0 + 24 * H
    )
    assert [a.alert.rule for a in decision.alerts] == ["loss"]


def test_delivery_problem_beats_an_eta_past_the_promise():
    decision = route_known(carrier("attempt_failed", eta=(T0 + 72 * H).isoformat()), promised_delivery_at=T0 + 24 * H)
    assert [a.alert.rule for a in decision.alerts] == ["delivery_problem"]
    assert notification_kinds(decision) == [NotificationKind.DELIVERY_PROBLEM]


def test_rows_of_different_queues_both_fire():
    # An urgent `created` whose promise is already beaten by a known ETA: urgent order and delay.
    decision = route(
        shipment("created", priority="urgent", promised_delivery_at=(T0 + 24 * H).isoformat()),
        Known(sheet=ShipmentSheet(SHIPMENT_ID, eta=T0 + 48 * H, eta_reported_at=T0 - H), customer=STANDARD),
    )
    assert sorted((a.queue, a.alert.rule) for a in decision.alerts) == [
        ("exceptions", "delay"),
        ("urgent_orders", "urgent_order"),
    ]
    assert len({a.alert.alert_id for a in decision.alerts}) == 2
    assert sorted(notification_kinds(decision)) == sorted(
        [NotificationKind.DELAY, NotificationKind.URGENT_ORDER_CONFIRMED]
    )


# --- exception codes -----------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["in_transit", "arrived_at_hub", "accepted", "delivered", "out_for_delivery"])
def test_exception_code_on_a_non_exception_carrier_status_is_informational(status: str):
    decision = route_known(carrier(status, exception_code="damaged"))
    assert decision.alerts == () and decision.tasks == ()
    assert NotificationKind.EXCEPTION not in notification_kinds(decision)


@pytest.mark.parametrize("type_", ["in_transit", "delivered", "packed"])
def test_exception_object_on_a_non_exception_shipment_type_is_informational(type_: str):
    decision = route(shipment(type_, exception={"code": "lost"}), Known(customer=STANDARD))
    assert decision.alerts == () and decision.tasks == ()


def test_carrier_exception_without_code_counts_as_other():
    decision = route_known(carrier("exception"))
    assert [a.alert.rule for a in decision.alerts] == ["delay"]
    assert decision.sheet is not None and decision.sheet.status is ShipmentEventType.EXCEPTION


# --- carrier updates for a shipment not known yet -------------------------------------------------


def test_unknown_shipment_carrier_update_raises_a_customerless_alert():
    decision = route(carrier("exception", exception_code="customs_hold"), Known())
    alert = only_alert(decision).alert
    assert alert.customer_id is None and alert.shipment_id == SHIPMENT_ID
    assert alert.severity is Severity.P2  # standard severity: nobody to escalate for
    (task,) = decision.tasks
    assert task.customer_id is None and task.severity is Severity.P2
    assert decision.notifications == ()
    assert decision.new_customer is None
    assert decision.sheet is not None and decision.sheet.customer_id is None
    assert decision.sheet.status is ShipmentEventType.EXCEPTION


def test_unknown_shipment_milestone_is_held_back_until_the_customer_is_known():
    decision = route(carrier("accepted"), Known())
    assert decision.notifications == () and decision.alerts == ()
    assert decision.sheet is not None and decision.sheet.notified_milestones == frozenset()
    assert decision.sheet.status is ShipmentEventType.DISPATCHED


def test_created_adopts_the_shipment_and_notifies_its_current_milestone_only():
    accepted, out = carrier("accepted", T0 + 2 * H), carrier("out_for_delivery", T0 + 20 * H)
    damaged = carrier("exception", T0 + 19 * H, exception_code="damaged")
    created = shipment("created", T0)  # occurred first, arrives last: the normal backlog case
    first, second, third, adopting = replay([accepted, out, damaged, created], customer=KEY)

    assert all(d.notifications == () for d in (first, second, third))
    assert third.alerts[0].alert.customer_id is None and third.alerts[0].alert.severity is Severity.P1
    assert [t.department for t in third.tasks] == ["claims"]  # no key-account task yet

    assert adopting.adopt_customer == CUSTOMER_ID
    assert notification_kinds(adopting) == [NotificationKind.OUT_FOR_DELIVERY]
    (notice,) = adopting.notifications
    assert (notice.customer_id, notice.language, notice.channel) == (CUSTOMER_ID, "en", "wechat")
    assert adopting.sheet is not None
    assert adopting.sheet.status is ShipmentEventType.OUT_FOR_DELIVERY  # the late `created` does not move it back
    assert adopting.sheet.last_event_at == T0 + 20 * H
    assert adopting.sheet.customer_id == CUSTOMER_ID
    assert adopting.sheet.notified_milestones == frozenset({"out_for_delivery"})


def test_after_adoption_milestones_notify_normally_and_superseded_ones_never():
    events = [
        carrier("accepted", T0 + 2 * H),
        carrier("out_for_delivery", T0 + 20 * H),
        shipment("created", T0),
        carrier("delivered", T0 + 22 * H),
        carrier("accepted", T0 + 3 * H),
        shipment("dispatched", T0 + H),
    ]
    decisions = replay(events, customer=STANDARD)
    assert [notification_kinds(d) for d in decisions] == [
        [],
        [],
        [NotificationKind.OUT_FOR_DELIVERY],
        [NotificationKind.DELIVERED],
        [],
        [],
    ]


def test_adoption_notifies_dispatched_when_the_parcel_moved_on_without_a_newer_milestone():
    _, _, adopting = replay(
        [carrier("accepted", T0 + H), carrier("arrived_at_hub", T0 + 5 * H), shipment("created", T0)], customer=STANDARD
    )
    assert notification_kinds(adopting) == [NotificationKind.DISPATCHED]


def test_late_milestone_that_no_later_milestone_superseded_still_notifies():
    # The common backlog case: the carrier's scan is read before the warehouse's `dispatched`.
    decision = route_known(shipment("dispatched", T0 - H), status=ShipmentEventType.IN_TRANSIT, last_event_at=T0)
    assert notification_kinds(decision) == [NotificationKind.DISPATCHED]


def test_created_for_a_brand_new_shipment_adopts_nothing():
    decision = route(shipment("created"), Known(customer=STANDARD))
    assert decision.adopt_customer is None and decision.notifications == ()


def test_shipment_first_known_from_a_call_is_adopted_by_created():
    contact, adopting = replay([call("query", T0 + H), shipment("created", T0)], customer=STANDARD)
    assert contact.sheet is not None and contact.sheet.customer_id is None
    assert adopting.adopt_customer == CUSTOMER_ID
    assert adopting.notifications == ()  # no milestone reached yet


def test_second_shipment_event_does_not_adopt_again():
    _, second = replay([shipment("created", T0), shipment("picked", T0 + H)], customer=STANDARD)
    assert second.adopt_customer is None


# --- late events ---------------------------------------------------------------------------------


def test_late_damage_still_raises_its_alert_but_keeps_the_status():
    decision = route_known(
        shipment_exception("damaged", T0 - 5 * H),
        status=ShipmentEventType.DELIVERED,
        last_event_at=T0,
        notified_milestones=frozenset({"delivered"}),
    )
    assert [a.alert.rule for a in decision.alerts] == ["damage"]
    assert notification_kinds(decision) == [NotificationKind.EXCEPTION]
    assert decision.sheet is not None
    assert (decision.sheet.status, decision.sheet.last_event_at) == (ShipmentEventType.DELIVERED, T0)


def test_late_carrier_alert_is_raised_and_status_kept():
    decision = route_known(carrier("attempt_failed", T0 - 2 * H), status=ShipmentEventType.DELIVERED, last_event_at=T0)
    assert [a.alert.rule for a in decision.alerts] == ["delivery_problem"]
    assert decision.sheet is not None
    assert (decision.sheet.status, decision.sheet.last_event_at) == (ShipmentEventType.DELIVERED, T0)


def test_current_event_moves_the_status_forward():
    decision = route_known(carrier("out_for_delivery", T0 + H), last_event_at=T0)
    assert decision.sheet is not None
    assert (decision.sheet.status, decision.sheet.last_event_at) == (ShipmentEventType.OUT_FOR_DELIVERY, T0 + H)


def test_late_carrier_update_never_replaces_a_newer_eta():
    newer = T0 + 30 * H
    decision = route_known(
        carrier("in_transit", T0 - H, eta=(T0 + 10 * H).isoformat()), eta=newer, eta_reported_at=T0, last_event_at=T0
    )
    assert decision.sheet is not None and decision.sheet.eta == newer and decision.sheet.eta_reported_at == T0


def test_eta_from_a_later_report_replaces_the_older_one_even_if_the_status_is_newer():
    decision = route_known(
        carrier("in_transit", T0 - H, eta=(T0 + 10 * H).isoformat()),
        eta=T0 + 30 * H,
        eta_reported_at=T0 - 2 * H,
        last_event_at=T0,
    )
    assert decision.sheet is not None and decision.sheet.eta == T0 + 10 * H


def test_late_events_fill_facts_the_sheet_lacks():
    decision = route_known(
        shipment(
            "packed", T0 - 2 * H, promised_delivery_at=(T0 + 48 * H).isoformat(), carrier_id="SF", order_id="PO-7"
        ),
        last_event_at=T0,
    )
    assert decision.sheet is not None
    assert (decision.sheet.promised_delivery_at, decision.sheet.carrier_id, decision.sheet.order_id) == (
        T0 + 48 * H,
        "SF",
        "PO-7",
    )
    assert decision.sheet.status is ShipmentEventType.IN_TRANSIT


def test_late_events_never_overwrite_known_facts():
    decision = route_known(
        shipment("packed", T0 - 2 * H, promised_delivery_at=(T0 + 48 * H).isoformat(), carrier_id="YTO"),
        last_event_at=T0,
        promised_delivery_at=T0 + 24 * H,
        carrier_id="SF",
    )
    assert decision.sheet is not None
    assert (decision.sheet.promised_delivery_at, decision.sheet.carrier_id) == (T0 + 24 * H, "SF")


def test_late_carrier_update_fills_a_missing_carrier_but_keeps_a_known_one():
    filled = route_known(carrier("in_transit", T0 - H, carrier_id="ZTO"), last_event_at=T0)
    kept = route_known(carrier("in_transit", T0 - H, carrier_id="ZTO"), last_event_at=T0, carrier_id="SF")
    assert filled.sheet is not None and filled.sheet.carrier_id == "ZTO"
    assert kept.sheet is not None and kept.sheet.carrier_id == "SF"


@pytest.mark.parametrize(
    "make",
    [
        lambda at: shipment("dispatched", at),
        lambda at: carrier("accepted", at),
        lambda at: carrier("out_for_delivery", at),
    ],
    ids=["shipment dispatched", "carrier accepted", "carrier out_for_delivery"],
)
def test_no_notification_for_a_superseded_milestone(make):
    decision = route_known(
        make(T0 - 3 * H),
        status=ShipmentEventType.DELIVERED,
        last_event_at=T0,
        notified_milestones=frozenset({"delivered"}),
    )
    assert decision.notifications == ()
    assert decision.sheet is not None and decision.sheet.notified_milestones == frozenset({"delivered"})


# --- milestones ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "kind"),
    [
        (lambda: shipment("dispatched", T0), NotificationKind.DISPATCHED),
        (lambda: carrier("accepted", T0), NotificationKind.DISPATCHED),
        (lambda: shipment("out_for_delivery", T0), NotificationKind.OUT_FOR_DELIVERY),
        (lambda: carrier("out_for_delivery", T0), NotificationKind.OUT_FOR_DELIVERY),
        (lambda: shipment("delivered", T0), NotificationKind.DELIVERED),
        (lambda: carrier("delivered", T0), NotificationKind.DELIVERED),
    ],
    ids=[
        "shipment dispatched",
        "carrier accepted",
        "shipment out_for_delivery",
        "carrier out_for_delivery",
        "shipment delivered",
        "carrier delivered",
    ],
)
def test_milestone_notifies_without_alert_or_task(make, kind):
    decision = route_known(make(), customer=STANDARD_EN)
    assert decision.alerts == () and decision.tasks == ()
    (notice,) = decision.notifications
    assert (notice.kind, notice.language, notice.channel) == (kind, "en", "email")
    assert notice.body == _english(kind).format(shipment_id=SHIPMENT_ID)
    assert decision.sheet is not None and kind.value in decision.sheet.notified_milestones


def test_milestone_notifies_once_per_shipment_and_kind_across_streams():
    events = [
        shipment("dispatched", T0),
        carrier("accepted", T0 + H),
        carrier("out_for_delivery", T0 + 2 * H),
        shipment("out_for_delivery", T0 + 3 * H),
        carrier("delivered", T0 + 4 * H),
        shipment("delivered", T0 + 5 * H),
        carrier("delivered", T0 + 6 * H, event_id="redelivered-pod"),
    ]
    kinds = [
        notification_kinds(d) for d in replay(events, customer=STANDARD, start=sheet(status=None, last_event_at=None))
    ]
    assert kinds == [
        [NotificationKind.DISPATCHED],
        [],
        [NotificationKind.OUT_FOR_DELIVERY],
        [],
        [NotificationKind.DELIVERED],
        [],
        [],
    ]


# --- the ETA trigger ------------------------------------------------------------------------------


def _eta(hours: float) -> str:
    return (T0 + hours * H).isoformat()


def test_eta_past_the_promise_fires_on_the_carrier_update_when_the_promise_came_first():
    decisions = replay(
        [shipment("created", T0, promised_delivery_at=_eta(24)), carrier("in_transit", T0 + H, eta=_eta(30))],
        customer=STANDARD,
    )
    assert decisions[0].alerts == ()
    alert = only_alert(decisions[1]).alert
    assert (alert.rule, alert.severity, alert.customer_id) == ("delay", Severity.P3, CUSTOMER_ID)
    assert alert.due_at == T0 + H + 24 * H
    assert notification_kinds(decisions[1]) == [NotificationKind.DELAY]


def test_eta_past_the_promise_fires_on_the_shipment_event_when_the_eta_came_first():
    decisions = replay(
        [carrier("in_transit", T0 + H, eta=_eta(30)), shipment("created", T0, promised_delivery_at=_eta(24))],
        customer=STANDARD,
    )
    assert decisions[0].alerts == ()  # no promise known yet
    alert = only_alert(decisions[1]).alert
    assert (alert.rule, alert.customer_id, alert.source.topic) == ("delay", CUSTOMER_ID, "shipment.events")
    # (the adoption may add a milestone notice; the delay notice is there exactly once)
    assert notification_kinds(decisions[1]).count(NotificationKind.DELAY) == 1


def test_eta_within_the_promise_raises_nothing():
    decisions = replay(
        [
            shipment("created", T0, promised_delivery_at=_eta(24)),
            carrier("in_transit", T0 + H, eta=_eta(24)),
            carrier("in_transit", T0 + 2 * H, eta=_eta(20)),
        ],
        customer=STANDARD,
    )
    assert all(d.alerts == () for d in decisions)


def test_eta_trigger_fires_once_while_the_eta_stays_past_and_rearms_after_an_eta_within():
    events = [
        shipment("created", T0, promised_delivery_at=_eta(24)),
        carrier("in_transit", T0 + 1 * H, eta=_eta(30)),  # past: fires
        carrier("in_transit", T0 + 2 * H, eta=_eta(36)),  # still past: quiet
        carrier("arrived_at_hub", T0 + 3 * H),  # no ETA: quiet
        shipment("packed", T0 + 4 * H),  # same promise: quiet
        carrier("in_transit", T0 + 5 * H, eta=_eta(30)),  # still past: quiet
        carrier("in_transit", T0 + 6 * H, eta=_eta(23)),  # within: re-arms
        carrier("in_transit", T0 + 7 * H, eta=_eta(26)),
    ]  # past again: fires
    fired = [[a.alert.rule for a in d.alerts] for d in replay(events, customer=STANDARD)]
    assert fired == [[], ["delay"], [], [], [], [], [], ["delay"]]


def test_a_promise_moved_later_rearms_the_eta_trigger():
    events = [
        shipment("created", T0, promised_delivery_at=_eta(24)),
        carrier("in_transit", T0 + H, eta=_eta(30)),  # fires
        shipment("packed", T0 + 2 * H, promised_delivery_at=_eta(48)),  # eta within: re-arms
        shipment("dispatched", T0 + 3 * H, promised_delivery_at=_eta(28)),
    ]  # past again: fires
    fired = [[a.alert.rule for a in d.alerts] for d in replay(events, customer=STANDARD)]
    assert fired == [[], ["delay"], [], ["delay"]]


def test_no_eta_alert_without_a_promise():
    first, second = replay(
        [carrier("in_transit", T0 + H, eta=_eta(30)), carrier("in_transit", T0 + 2 * H, eta=_eta(31))]
    )
    assert first.alerts == () and second.alerts == ()


# --- repeat contact --------------------------------------------------------------------------------


def _contact(event: CallLog, *contacts: datetime, customer: CustomerInfo = STANDARD, **sheet_fields: Any) -> Decision:
    return route(event, Known(sheet=sheet(**sheet_fields), customer=customer, contacts=tuple(contacts)))


def test_second_inbound_query_within_24h_is_a_repeat_contact():
    decision = _contact(call("query", T0 + 3 * H), T0)
    queued = only_alert(decision)
    assert (queued.queue, queued.alert.rule, queued.alert.kind.value) == (
        "complaints",
        "repeat_contact",
        "repeat_contact",
    )
    (task,) = decision.tasks
    assert (task.department, task.severity, task.due_at) == ("complaints", Severity.P2, T0 + 3 * H + 8 * H)
    assert decision.notifications == ()
    assert decision.sheet is not None and decision.sheet.repeat_contact_fired == (T0 + 3 * H,)


def test_repeat_contact_ignores_arrival_order():
    assert [a.alert.rule for a in _contact(call("query", T0), T0 + 5 * H).alerts] == ["repeat_contact"]


def test_exactly_24h_apart_is_within():
    assert [a.alert.rule for a in _contact(call("query", T0 + 24 * H), T0).alerts] == ["repeat_contact"]


def test_first_contact_is_not_a_repeat():
    decision = _contact(call("query", T0))
    assert decision.alerts == () and decision.sheet is not None and decision.sheet.repeat_contact_fired == ()


@pytest.mark.parametrize(
    "event",
    [
        lambda: call("query", T0 + 3 * H, direction="outbound"),
        lambda: call("complaint", T0 + 3 * H, direction="outbound"),
        lambda: call("booking", T0 + 3 * H),
        lambda: call("feedback", T0 + 3 * H),
    ],
    ids=["outbound query", "outbound complaint", "booking", "feedback"],
)
def test_outbound_and_other_categories_are_no_repeat_contact(event):
    decision = _contact(event(), T0)
    assert "repeat_contact" not in [a.alert.rule for a in decision.alerts]


def test_contact_outside_24h_is_no_repeat():
    assert _contact(call("query", T0 + 24 * H + timedelta(seconds=1)), T0).alerts == ()
    assert _contact(call("query", T0 - 25 * H), T0).alerts == ()


def test_repeat_contact_not_again_within_24h_of_the_contact_that_fired_it():
    fired_at = T0 + 3 * H
    again = _contact(call("query", T0 + 10 * H), T0, fired_at, repeat_contact_fired=(fired_at,))
    assert again.alerts == ()
    edge = _contact(call("query", fired_at + 24 * H), fired_at + 23 * H, repeat_contact_fired=(fired_at,))
    assert edge.alerts == ()
    later = _contact(call("query", fired_at + 25 * H), fired_at + 24.5 * H, repeat_contact_fired=(fired_at,))
    assert [a.alert.rule for a in later.alerts] == ["repeat_contact"]
    assert later.sheet is not None and later.sheet.repeat_contact_fired == (fired_at, fired_at + 25 * H)


def _contacts_replay(events: list[CallLog]) -> list[list[str]]:
    """Route calls in arrival order; every earlier inbound query/complaint is a known contact."""
    fired, current, contacts = [], sheet(), []
    for event in events:
        decision = route(event, Known(sheet=current, customer=STANDARD, contacts=tuple(contacts)))
        fired.append([a.alert.rule for a in decision.alerts])
        current = decision.sheet or current
        if event.direction.value == "inbound" and event.category.value in ("query", "complaint"):
            contacts.append(event.occurred_at)
    return fired


def test_repeat_contact_sequence():
    events = [call("query", T0), call("query", T0 + H), call("complaint", T0 + 2 * H), call("query", T0 + 3 * H)]
    assert _contacts_replay(events) == [[], ["repeat_contact"], ["complaint"], []]


def test_an_earlier_complaint_counts_as_the_first_contact():
    assert _contacts_replay([call("complaint", T0), call("query", T0 + H)]) == [["complaint"], ["repeat_contact"]]


def test_outbound_contacts_do_not_count_as_the_first_contact():
    events = [call("query", T0, direction="outbound"), call("query", T0 + H)]
    assert _contacts_replay(events) == [[], []]


def test_complaint_that_is_also_a_repeat_contact_raises_only_the_complaint():
    decision = _contact(call("complaint", T0 + H), T0)
    queued = only_alert(decision)
    assert (queued.queue, queued.alert.rule) == ("complaints", "complaint")
    assert [t.rule for t in decision.tasks] == ["complaint"]
    assert notification_kinds(decision) == [NotificationKind.COMPLAINT_RECEIVED]
    assert decision.sheet is not None and decision.sheet.repeat_contact_fired == ()


def test_key_account_repeat_contact_is_p1_with_follow_up():
    decision = _contact(call("query", T0 + H), T0, customer=KEY)
    assert [t.severity for t in decision.tasks] == [Severity.P1, Severity.P1]
    assert decision.tasks[1].kind == "key_account_followup"


def test_call_without_shipment_is_never_a_repeat_contact():
    decision = route(call("query", T0 + H, shipment_id=None), Known(customer=STANDARD, contacts=(T0,)))
    assert decision.alerts == () and decision.sheet is None


# --- personal data ----------------------------------------------------------------------------------

PHONE = "+86 138 0013 8000"


def test_alerts_and_tasks_carry_no_personal_data():
    event = call("complaint", caller_phone=PHONE, notes=f"call me back on {PHONE}", agent_id="AG-7")
    decision = route(event, Known(sheet=sheet(), customer=KEY))
    texts = [a.alert.model_dump_json() for a in decision.alerts]
    texts += [f"{t.title} {t.details}" for t in decision.tasks] + [n.body for n in decision.notifications]
    assert texts and not any(PHONE in text or "13800138000" in text for text in texts)


# --- deterministic ids ---------------------------------------------------------------------------


def _ids(decision: Decision) -> tuple:
    return (
        tuple(a.alert.alert_id for a in decision.alerts),
        tuple(t.task_id for t in decision.tasks),
        tuple(n.notification_id for n in decision.notifications),
    )


@pytest.mark.parametrize(
    "make",
    [
        lambda: shipment_exception("damaged", event_id="fixed-1"),
        lambda: carrier("attempt_failed", event_id="fixed-2"),
        lambda: call("complaint", event_id="fixed-3"),
    ],
    ids=["shipment", "carrier", "call"],
)
def test_ids_are_deterministic(make):
    known = Known(sheet=sheet(), customer=KEY)
    event = make()
    first = route_event(
        event, known, AlertSource(topic="t", partition=0, offset=1, event_id=event.event_id), RULES, NOW
    )
    # A re-published copy (new object, later clock, another offset) yields the same ids.
    copy = type(event).model_validate(event.model_dump())
    second = route_event(
        copy, known, AlertSource(topic="t", partition=2, offset=99, event_id=event.event_id), RULES, NOW + 5 * H
    )
    assert _ids(first) == _ids(second)
    assert all(_ids(first))
    assert first == route_event(event, known, first.alerts[0].alert.source, RULES, NOW)


def test_resent_alert_is_identical():
    event, known = shipment_exception("lost", event_id="fixed-4"), Known(customer=STANDARD)
    source = AlertSource(topic="shipment.events", partition=1, offset=5, event_id=event.event_id)
    assert route_event(event, known, source, RULES, NOW).alerts == route_event(event, known, source, RULES, NOW).alerts


def test_ids_differ_between_events_and_kinds():
    a = route(shipment_exception("damaged", event_id="evt-a"), Known(customer=KEY))
    b = route(shipment_exception("damaged", event_id="evt-b"), Known(customer=KEY))
    ids_a, ids_b = _ids(a), _ids(b)
    all_ids = [i for group in (*ids_a, *ids_b) for i in group]
    assert len(all_ids) == len(set(all_ids))
    assert a.alerts[0].alert.alert_id not in {t.task_id for t in a.tasks}


def test_routing_does_not_mutate_what_it_was_given():
    known = Known(sheet=sheet(promised_delivery_at=T0 + 24 * H), customer=KEY, contacts=(T0,))
    snapshot = replace(known.sheet)
    route(carrier("delivered", T0 + H, eta=_eta(30)), known)
    assert known.sheet == snapshot
