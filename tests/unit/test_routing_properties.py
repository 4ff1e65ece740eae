"""Properties of routing over generated events and generated prior state (hypothesis).

Each property holds for every stream: shipment.events, carrier.updates and call.logs.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hub.core.routing import Decision, route_event
from hub.core.rules import load_rules
from hub.core.state import CustomerInfo, Known, ShipmentSheet
from schemas.enums import (
    CallCategory,
    CallChannel,
    CarrierStatus,
    CustomerTier,
    Direction,
    ExceptionCode,
    Language,
    NotificationChannel,
    NotificationKind,
    Priority,
    Severity,
    ShipmentEventType,
)
from schemas.inbound import CallLog, CarrierUpdate, InboundEvent, ShipmentEvent
from schemas.outbound import AlertSource

RULES = load_rules()
T0 = datetime(2026, 11, 27, 1, 30, tzinfo=UTC)
NOW = datetime(2026, 12, 1, tzinfo=UTC)
SHIPMENT_ID, CUSTOMER_ID = "SF100", "C1"
OFFSETS = [UTC, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5)), timezone(timedelta(hours=5, minutes=30))]
MILESTONES = [
    NotificationKind.DISPATCHED.value,
    NotificationKind.OUT_FOR_DELIVERY.value,
    NotificationKind.DELIVERED.value,
]
SEVERITY_RANK = {s: i for i, s in enumerate(Severity)}  # P1 = 0: lower rank is more urgent

# No example database: the suite must not write into the work tree, and runs stay reproducible per seed.
PROPERTY_SETTINGS = settings(
    max_examples=200, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow]
)

# --- strategies --------------------------------------------------------------------------------

minutes = st.integers(min_value=-5 * 24 * 60, max_value=5 * 24 * 60)
instants = st.builds(lambda m, tz: (T0 + timedelta(minutes=m)).astimezone(tz), minutes, st.sampled_from(OFFSETS))
optional_instants = st.none() | instants
event_ids = st.integers(min_value=0, max_value=10**9).map(lambda n: f"evt-{n}")
# Built once: hypothesis validates a strategy on first use, which is slow inside every draw.
shipment_types = st.sampled_from(ShipmentEventType)
exception_codes = st.sampled_from(ExceptionCode)
optional_exceptions = st.none() | exception_codes.map(lambda c: {"code": c.value})
optional_codes = st.none() | exception_codes.map(lambda c: c.value)
priorities = st.sampled_from([p.value for p in Priority])
optional_orders = st.none() | st.just("PO-1")
carrier_ids = st.sampled_from(["SF", "YTO"])
optional_carriers = st.none() | carrier_ids
optional_values = st.none() | st.just({"amount": 99.5, "currency": "CNY"})
carrier_statuses = st.sampled_from([s.value for s in CarrierStatus])
call_shipments = st.sampled_from([SHIPMENT_ID, SHIPMENT_ID, None])
directions = st.sampled_from([d.value for d in Direction])
channels = st.sampled_from([c.value for c in CallChannel])
categories = st.sampled_from([c.value for c in CallCategory])
sheet_customers = st.sampled_from([CUSTOMER_ID, None])
optional_statuses = st.none() | shipment_types
milestone_sets = st.lists(st.sampled_from(MILESTONES), max_size=3).map(frozenset)
fired_lists = st.lists(instants, max_size=2).map(tuple)
contact_lists = st.lists(instants, max_size=3).map(tuple)
offsets = st.sampled_from(OFFSETS)


def _drop_none(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in fields.items() if v is not None}


@st.composite
def shipment_events(draw, at=instants) -> ShipmentEvent:
    type_ = draw(shipment_types)
    exception = draw(optional_exceptions)
    if type_ is ShipmentEventType.EXCEPTION and exception is None:
        exception = {"code": draw(exception_codes).value}
    return ShipmentEvent.model_validate(
        _drop_none(
            {
                "event_id": draw(event_ids),
                "occurred_at": draw(at),
                "source": "wms-sh-01",
                "shipment_id": SHIPMENT_ID,
                "customer_id": CUSTOMER_ID,
                "type": type_.value,
                "exception": exception,
                "priority": draw(priorities),
                "promised_delivery_at": draw(optional_instants),
                "order_id": draw(optional_orders),
                "carrier_id": draw(optional_carriers),
                "declared_value": draw(optional_values),
            }
        )
    )


@st.composite
def carrier_updates(draw, at=instants) -> CarrierUpdate:
    return CarrierUpdate.model_validate(
        _drop_none(
            {
                "event_id": draw(event_ids),
                "occurred_at": draw(at),
                "source": "carrier:SF",
                "carrier_id": draw(carrier_ids),
                "carrier_tracking_no": "TRK-1",
                "shipment_id": SHIPMENT_ID,
                "status": draw(carrier_statuses),
                "eta": draw(optional_instants),
                "exception_code": draw(optional_codes),
            }
        )
    )


@st.composite
def call_logs(draw, at=instants) -> CallLog:
    return CallLog.model_validate(
        _drop_none(
            {
                "event_id": draw(event_ids),
                "occurred_at": draw(at),
                "source": "cc-shanghai",
                "call_id": "CALL-1",
                "customer_id": CUSTOMER_ID,
                "shipment_id": draw(call_shipments),
                "direction": draw(directions),
                "channel": draw(channels),
                "category": draw(categories),
                "requested_deadline": draw(optional_instants),
            }
        )
    )


any_event = st.one_of(shipment_events(), carrier_updates(), call_logs())


@st.composite
def sheets(draw, customer_id=sheet_customers) -> ShipmentSheet:
    return ShipmentSheet(
        SHIPMENT_ID,
        customer_id=draw(customer_id),
        order_id=draw(optional_orders),
        status=draw(optional_statuses),
        last_event_at=draw(optional_instants),
        promised_delivery_at=draw(optional_instants),
        eta=draw(optional_instants),
        eta_reported_at=draw(optional_instants),
        eta_alerted=draw(st.booleans()),
        carrier_id=draw(optional_carriers),
        priority=draw(st.sampled_from([None, "urgent"])),
        notified_milestones=draw(milestone_sets),
        repeat_contact_fired=draw(fired_lists),
    )


def customers(tier=st.sampled_from(CustomerTier)):
    return st.builds(
        CustomerInfo, st.just(CUSTOMER_ID), tier, st.sampled_from(Language), st.sampled_from(NotificationChannel)
    )


any_customer = st.none() | customers()
any_sheet = st.none() | sheets()


@st.composite
def knowns(draw, sheet=any_sheet, customer=any_customer) -> Known:
    return Known(sheet=draw(sheet), customer=draw(customer), contacts=draw(contact_lists))


def source_of(event: InboundEvent) -> AlertSource:
    return AlertSource(topic=type(event).__name__, partition=0, offset=1, event_id=event.event_id)


def route(event: InboundEvent, known: Known) -> Decision:
    return route_event(event, known, source_of(event), RULES, NOW)


# --- properties --------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(event=any_event, known=knowns())
def test_routing_is_deterministic(event: InboundEvent, known: Known):
    first = route(event, known)
    again = route(type(event).model_validate(event.model_dump()), known)
    assert first == again


@PROPERTY_SETTINGS
@given(
    event=any_event,
    sheet=sheets(customer_id=st.just(CUSTOMER_ID)),
    contacts=contact_lists,
    customer=customers(tier=st.just(CustomerTier.STANDARD)),
)
def test_a_key_account_is_never_less_urgent_than_a_standard_customer(event, sheet, contacts, customer):
    standard = route(event, Known(sheet, customer, contacts))
    key = route(event, Known(sheet, replace(customer, tier=CustomerTier.KEY), contacts))
    by_rule = {a.alert.rule: a.alert.severity for a in standard.alerts}
    assert sorted(by_rule) == sorted(a.alert.rule for a in key.alerts)
    for queued in key.alerts:
        assert SEVERITY_RANK[queued.alert.severity] <= SEVERITY_RANK[by_rule[queued.alert.rule]]
        assert SEVERITY_RANK[by_rule[queued.alert.rule]] - SEVERITY_RANK[queued.alert.severity] <= 1
    assert len(key.tasks) == 2 * len(key.alerts)


@PROPERTY_SETTINGS
@given(event=any_event, known=knowns())
def test_every_alert_has_its_task_with_the_same_severity_and_due(event: InboundEvent, known: Known):
    decision = route(event, known)
    tasks = {t.task_id: t for t in decision.tasks}
    assert len(tasks) == len(decision.tasks), "task ids are unique"
    for queued in decision.alerts:
        task = tasks[queued.alert.task_id]
        assert (task.severity, task.due_at) == (queued.alert.severity, queued.alert.due_at)
        assert (task.alert_id, task.rule, task.customer_id) == (
            queued.alert.alert_id,
            queued.alert.rule,
            queued.alert.customer_id,
        )
    main_ids = {a.alert.task_id for a in decision.alerts}
    for task in decision.tasks:
        if task.task_id not in main_ids:  # a key-account follow-up names its main task
            assert task.kind == "key_account_followup" and task.details["main_task_id"] in main_ids


@PROPERTY_SETTINGS
@given(event=any_event, known=knowns())
def test_at_most_one_alert_per_queue(event: InboundEvent, known: Known):
    queues = [a.queue for a in route(event, known).alerts]
    assert len(queues) == len(set(queues))


shipment_or_carrier = st.one_of(shipment_events(), carrier_updates())
seconds_back = st.integers(min_value=1, max_value=3 * 24 * 3600)


@st.composite
def late_events(draw):
    """A shipment or carrier event older than the sheet's latest, with the sheet it is routed against."""
    latest = draw(instants)
    sheet = replace(draw(sheets()), last_event_at=latest, status=draw(shipment_types))
    event = draw(shipment_or_carrier)
    older = latest - timedelta(seconds=draw(seconds_back))
    event = type(event).model_validate({**event.model_dump(), "occurred_at": older.astimezone(draw(offsets))})
    return event, Known(sheet=sheet, customer=draw(any_customer))


@PROPERTY_SETTINGS
@given(case=late_events())
def test_a_late_event_never_moves_the_sheet_backwards(case):
    event, known = case
    after = route(event, known).sheet
    assert after is not None
    assert (after.status, after.last_event_at) == (known.sheet.status, known.sheet.last_event_at)
    # ...nor replaces an ETA reported later than the event.
    if known.sheet.eta_reported_at is not None and event.occurred_at < known.sheet.eta_reported_at:
        assert after.eta == known.sheet.eta


@PROPERTY_SETTINGS
@given(event=shipment_or_carrier, known=knowns(sheet=sheets()))
def test_a_milestone_is_notified_at_most_once_per_shipment(event: InboundEvent, known: Known):
    decision = route(event, known)
    kinds = [n.kind.value for n in decision.notifications]
    assert len(kinds) == len(set(kinds))
    assert not set(kinds) & known.sheet.notified_milestones
    assert decision.sheet is not None and known.sheet.notified_milestones <= decision.sheet.notified_milestones


@PROPERTY_SETTINGS
@given(event=carrier_updates(), known=knowns(sheet=st.none() | sheets(customer_id=st.none())))
def test_an_unknown_shipments_carrier_update_is_customerless_and_silent(event: CarrierUpdate, known: Known):
    decision = route(event, known)
    assert decision.notifications == ()
    assert all(t.customer_id is None and t.kind != "key_account_followup" for t in decision.tasks)
    assert all(a.alert.customer_id is None for a in decision.alerts)
