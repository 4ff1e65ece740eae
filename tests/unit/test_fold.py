"""The batch fold (hub.core.fold) without Postgres: a batch decides what its events decide one by
one, in occurred_at order; superseded milestones are never written; carrier-first shipments owe
their customer the notices their alerts would have written (contract 1.1)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from hub.core.decoding import Accepted, Record
from hub.core.fold import BatchDecisions, KnownState, fold
from hub.core.rules import load_rules
from hub.core.state import CustomerInfo, OrphanTask, ShipmentSheet
from schemas.enums import CustomerTier, Language, NotificationChannel, NotificationKind, Severity
from schemas.inbound import CallLog, CarrierUpdate, InboundEvent, ShipmentEvent

RULES = load_rules()
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
NOW = T0 + timedelta(days=1)
H = timedelta(hours=1)
TOPIC = {ShipmentEvent: "shipment.events", CallLog: "call.logs", CarrierUpdate: "carrier.updates"}
STANDARD = CustomerInfo("C1")
KEY = CustomerInfo("C1", CustomerTier.KEY, Language.EN, NotificationChannel.EMAIL)
_offsets = iter(range(10**6))


def accepted(event: InboundEvent) -> Accepted:
    return Accepted(Record(TOPIC[type(event)], 0, next(_offsets), b"k", b"{}"), event, b"")


def ship(event_id: str, type_: str, hours: float, **extra: Any) -> Accepted:
    return accepted(
        ShipmentEvent.model_validate(
            {
                "event_id": event_id,
                "occurred_at": T0 + hours * H,
                "source": "wms",
                "shipment_id": "S1",
                "customer_id": "C1",
                "type": type_,
                **extra,
            }
        )
    )


def carrier(event_id: str, status: str, hours: float, **extra: Any) -> Accepted:
    return accepted(
        CarrierUpdate.model_validate(
            {
                "event_id": event_id,
                "occurred_at": T0 + hours * H,
                "source": "carrier:SF",
                "carrier_id": "SF",
                "carrier_tracking_no": "T1",
                "shipment_id": "S1",
                "status": status,
                **extra,
            }
        )
    )


def query(event_id: str, hours: float) -> Accepted:
    return accepted(
        CallLog.model_validate(
            {
                "event_id": event_id,
                "occurred_at": T0 + hours * H,
                "source": "cc",
                "call_id": event_id,
                "customer_id": "C1",
                "shipment_id": "S1",
                "direction": "inbound",
                "channel": "phone",
                "category": "query",
            }
        )
    )


def empty_state(*customers: CustomerInfo) -> KnownState:
    return KnownState({}, {c.customer_id: c for c in customers}, {})


def notices(decided: BatchDecisions) -> list[tuple[str, str]]:
    return [(n.kind.value, n.source_event_id) for d in decided.decisions for n in d.notifications]


def run_batches(batches: list[list[Accepted]], state: KnownState) -> list[BatchDecisions]:
    """Each batch against the state the previous ones left, as consecutive transactions would see it."""
    return [fold(batch, state, RULES, NOW) for batch in batches]


# --- superseded milestones (issue 17 defect) ----------------------------------------------------


ARRIVAL = [ship("c", "created", 0), ship("d", "delivered", 10), ship("o", "out_for_delivery", 8)]


def test_a_milestone_superseded_within_its_batch_is_never_written():
    decided = fold(ARRIVAL, empty_state(STANDARD), RULES, NOW)
    assert notices(decided) == [("delivered", "d")]


@pytest.mark.parametrize("split", [[1, 1, 1], [2, 1], [1, 2]], ids=["one each", "first two", "last two"])
def test_a_superseded_milestone_is_never_written_whatever_the_batch_boundaries(split: list[int]):
    batches, rest = [], list(ARRIVAL)
    for size in split:
        batches.append(rest[:size])
        rest = rest[size:]
    written = [n for decided in run_batches(batches, empty_state(STANDARD)) for n in notices(decided)]
    assert written == [("delivered", "d")]


IN_ORDER = [ship("c", "created", 0), ship("o", "out_for_delivery", 8), ship("d", "delivered", 10)]


@pytest.mark.parametrize("split", [[3], [1, 1, 1], [2, 1]], ids=["one batch", "one each", "first two"])
def test_milestones_arriving_in_order_are_each_notified_whatever_the_batch_boundaries(split: list[int]):
    batches, rest = [], list(IN_ORDER)
    for size in split:
        batches.append(rest[:size])
        rest = rest[size:]
    written = [n for decided in run_batches(batches, empty_state(STANDARD)) for n in notices(decided)]
    assert written == [("out_for_delivery", "o"), ("delivered", "d")]


def test_a_dropped_milestone_is_not_remembered_as_notified():
    decided = fold(ARRIVAL, empty_state(STANDARD), RULES, NOW)
    assert decided.sheets["S1"].notified_milestones == {"delivered"}


def test_milestones_of_different_shipments_do_not_supersede_each_other():
    other = accepted(
        ShipmentEvent.model_validate(
            {
                "event_id": "x",
                "occurred_at": T0 + 12 * H,
                "source": "wms",
                "shipment_id": "S2",
                "customer_id": "C1",
                "type": "delivered",
            }
        )
    )
    decided = fold(
        [ship("c", "created", 0), ship("o", "out_for_delivery", 8), other], empty_state(STANDARD), RULES, NOW
    )
    assert sorted(notices(decided)) == [("delivered", "x"), ("out_for_delivery", "o")]


# --- the fold decides as one event at a time ----------------------------------------------------


def test_events_are_folded_in_occurred_at_order_not_arrival_order():
    decided = fold([ship("late", "in_transit", 5), ship("c", "created", 0)], empty_state(STANDARD), RULES, NOW)
    assert decided.sheets["S1"].status.value == "in_transit"
    assert decided.sheets["S1"].last_event_at == T0 + 5 * H


def test_contacts_within_the_batch_count_towards_a_repeat_contact():
    decided = fold([query("q1", 0), query("q2", 2)], empty_state(STANDARD), RULES, NOW)
    assert [t.kind for d in decided.decisions for t in d.tasks] == ["repeat_contact"]


def test_an_unknown_customer_is_registered_once_for_the_batch():
    decided = fold([ship("c", "created", 0), ship("p", "picked", 1)], empty_state(), RULES, NOW)
    assert list(decided.new_customers) == ["C1"]


# --- carrier first (contract 1.1) ---------------------------------------------------------------


def carrier_first_state(customer: CustomerInfo, orphans: list[OrphanTask]) -> KnownState:
    sheet = ShipmentSheet("S1", status=None, last_event_at=T0)
    return KnownState({"S1": sheet}, {customer.customer_id: customer}, {}, {"S1": orphans})


def orphan(task_id: str, rule: str, severity: Severity, event_id: str, active: bool = True) -> OrphanTask:
    return OrphanTask(task_id, rule, severity, event_id, T0, {"alert_id": f"alert-{task_id}", "rule": rule}, active)


def test_a_carrier_first_damage_is_told_to_the_customer_once_it_is_known():
    first = fold([carrier("dmg", "exception", 0, exception_code="damaged")], empty_state(STANDARD), RULES, NOW)
    assert notices(first) == []  # no customer yet: the alert and task only
    damage_task = first.decisions[0].tasks[0]
    state = carrier_first_state(STANDARD, [orphan(damage_task.task_id, "damage", Severity.P1, "dmg")])
    decided = fold([ship("c", "created", 1)], state, RULES, NOW)
    assert notices(decided) == [("exception", "dmg")]
    assert decided.adoptions == {"S1": "C1"}
    body = decided.decisions[0].notifications[0].body
    assert "S1" in body


def test_each_earlier_alert_owes_its_own_notice_and_a_task_without_one_none():
    orphans = [
        orphan("t1", "delivery_problem", Severity.P2, "fail"),
        orphan("t2", "delay", Severity.P3, "late"),
        orphan("t3", "repeat_contact", Severity.P2, "rep"),
    ]
    decided = fold([ship("c", "created", 1)], carrier_first_state(STANDARD, orphans), RULES, NOW)
    assert sorted(notices(decided)) == [("delay", "late"), ("delivery_problem", "fail")]
    assert not decided.task_updates  # a standard customer: severities stay


def test_a_key_account_adopting_raises_its_active_tasks_and_adds_follow_ups():
    orphans = [
        orphan("t1", "delivery_problem", Severity.P2, "fail"),
        orphan("t2", "delay", Severity.P3, "late", active=False),
    ]
    decided = fold([ship("c", "created", 1)], carrier_first_state(KEY, orphans), RULES, NOW)
    assert [(u.task_id, u.severity, u.due_at) for u in decided.task_updates] == [("t1", Severity.P1, T0 + 2 * H)]
    follow_ups = [t for d in decided.decisions for t in d.tasks if t.department == "key_accounts"]
    assert [(t.source_event_id, t.severity, t.details["main_task_id"]) for t in follow_ups] == [
        ("fail", Severity.P1, "t1")
    ]
    # the customer is told of both, in its own language
    assert sorted(notices(decided)) == [("delay", "late"), ("delivery_problem", "fail")]
    assert all(n.language == "en" and n.channel == "email" for d in decided.decisions for n in d.notifications)


def test_the_orphans_are_adopted_once_even_with_two_shipment_events_in_the_batch():
    state = carrier_first_state(STANDARD, [orphan("t1", "damage", Severity.P1, "dmg")])
    decided = fold([ship("c", "created", 1), ship("p", "picked", 2)], state, RULES, NOW)
    assert notices(decided).count(("exception", "dmg")) == 1


def test_the_milestone_reached_before_the_customer_was_known_is_notified_with_the_orphans():
    state = carrier_first_state(STANDARD, [orphan("t1", "delay", Severity.P3, "late")])
    state.sheets["S1"].status = ShipmentSheet("S1").status  # unknown until the carrier's status below
    decided = fold([carrier("acc", "accepted", 0.5), ship("c", "created", 0)], state, RULES, NOW)
    kinds = sorted(k for k, _ in notices(decided))
    assert kinds == [NotificationKind.DELAY.value, NotificationKind.DISPATCHED.value]
