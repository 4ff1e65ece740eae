"""The clock's decisions (hub/core/clock.py), pure: every row of the contract's clock table, the
late tick that catches up, and properties over any sequence of ticks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hub.core.clock import (
    ClockDecision,
    ShipmentState,
    TaskState,
    Timer,
    arm_shipment,
    decide_key_account_review,
    decide_overdue,
    decide_stale,
    decide_task,
    stale_moment,
)
from hub.core.rules import TERMINAL_STATUSES, load_rules
from hub.core.state import CustomerInfo, ShipmentSheet
from hub.core.topics import Queue
from schemas.enums import CustomerTier, Language, NotificationChannel, NotificationKind, Severity, ShipmentEventType

RULES = load_rules()
T0 = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
H = timedelta(hours=1)
STALE_STATUSES = [status for status in ShipmentEventType if status not in TERMINAL_STATUSES]
STANDARD = CustomerInfo("C1")
KEY = CustomerInfo("C9", CustomerTier.KEY, Language.EN, NotificationChannel.EMAIL)


def task(
    severity: Severity = Severity.P2,
    window: timedelta = 8 * H,
    status: str = "open",
    level: int = 0,
    warned: datetime | None = None,
) -> TaskState:
    due = T0 + window
    return TaskState(
        "T1",
        "complaints",
        "complaint",
        severity,
        status,
        "S1",
        "C1",
        T0,
        due,
        T0 + window * 0.75,
        due + window,
        warned,
        level,
    )


def after(state: TaskState, decision: ClockDecision) -> TaskState:
    """The task as the engine leaves it after a decision."""
    change = decision.task_change
    if change is None:
        return state
    return state._replace(
        severity=change.severity,
        escalation_level=change.escalation_level,
        warned_at=state.warned_at or change.warned_at,
    )


def fired(decision: ClockDecision) -> list[tuple[str, str]]:
    return [(f.timer.value, f.key) for f in decision.firings]


# --- sla_warning and sla_breach --------------------------------------------------------------------


def test_nothing_fires_before_the_warning_point():
    assert decide_task(task(), T0 + 5.9 * H, RULES).firings == ()


def test_the_warning_fires_at_75_percent_of_the_window_at_the_tasks_severity():
    decision = decide_task(task(), T0 + 6 * H, RULES)
    assert fired(decision) == [("sla_warning", "0")]
    [alert] = decision.alerts
    assert alert.queue is Queue.ESCALATIONS and alert.alert.kind.value == "sla_warning"
    assert alert.alert.severity is Severity.P2 and alert.alert.source.timer == "sla_warning"
    assert alert.alert.source.due_at == T0 + 6 * H and alert.alert.created_at == T0 + 6 * H
    assert decision.task_change.warned_at == T0 + 6 * H and decision.task_change.escalation_level == 0
    assert [e.action for e in decision.history] == ["warned"]


def test_level_1_at_due_raises_the_severity_and_goes_to_the_supervisor():
    state = after(task(), decide_task(task(), T0 + 7 * H, RULES))
    decision = decide_task(state, T0 + 8 * H, RULES)
    assert fired(decision) == [("sla_breach", "1")]
    [alert] = decision.alerts
    assert (alert.alert.level, alert.alert.escalated_to.value, alert.alert.severity) == (1, "supervisor", Severity.P1)
    assert decision.task_change.escalation_level == 1 and decision.task_change.breached_at == T0 + 8 * H


def test_level_2_one_window_after_due_goes_to_the_manager_at_p1():
    state = task(Severity.P4, 72 * H, level=1)._replace(severity=Severity.P3)
    decision = decide_task(state, T0 + 144 * H, RULES)
    assert fired(decision) == [("sla_breach", "2")]
    [alert] = decision.alerts
    assert (alert.alert.level, alert.alert.escalated_to.value, alert.alert.severity) == (2, "manager", Severity.P1)


def test_a_late_tick_fires_level_1_and_2_at_once_and_no_warning():
    decision = decide_task(task(Severity.P1, 2 * H), T0 + 12 * H, RULES)  # 10 h past due
    assert fired(decision) == [("sla_breach", "1"), ("sla_breach", "2")]
    assert decision.task_change.warned_at is None and decision.task_change.escalation_level == 2
    assert [a.alert.level for a in decision.alerts] == [1, 2]
    assert len({a.alert.alert_id for a in decision.alerts}) == 2


@pytest.mark.parametrize("status", ["done", "cancelled"])
def test_a_closed_task_is_never_warned_or_breached(status: str):
    assert decide_task(task(status=status), T0 + 100 * H, RULES).firings == ()


def test_a_task_in_progress_is_still_breached():
    assert fired(decide_task(task(status="in_progress", warned=T0 + 6 * H), T0 + 8 * H, RULES)) == [("sla_breach", "1")]


def test_a_re_evaluation_yields_the_same_alert_ids():
    first = decide_task(task(), T0 + 9 * H, RULES)
    again = decide_task(task(), T0 + 9.5 * H, RULES)
    assert [a.alert.alert_id for a in first.alerts] == [a.alert.alert_id for a in again.alerts]
    assert first.alerts[0].alert.created_at != again.alerts[0].alert.created_at  # created_at: the tick's now


ticks = st.lists(st.floats(min_value=0, max_value=40, allow_nan=False), min_size=1, max_size=12).map(sorted)


@given(ticks, st.sampled_from(list(Severity)), st.sampled_from([2, 8, 24, 72]))
def test_any_sequence_of_ticks_fires_each_timer_once_and_ends_as_one_late_tick(
    hours: list[float], severity: Severity, window_hours: int
):
    start = task(severity, window_hours * H)
    state, seen = start, []
    for h in hours:
        decision = decide_task(state, T0 + h * window_hours / 8 * H, RULES)
        seen += fired(decision)
        state = after(state, decision)
    assert len(seen) == len(set(seen)), seen
    last = T0 + hours[-1] * window_hours / 8 * H
    once = after(start, decide_task(start, last, RULES))
    assert (state.severity, state.escalation_level) == (once.severity, once.escalation_level)
    breaches = [k for timer, k in seen if timer == "sla_breach"]
    assert breaches == [str(level) for level in range(1, state.escalation_level + 1)]
    warning_window = [h for h in hours if start.warn_at <= T0 + h * window_hours / 8 * H < start.due_at]
    assert (("sla_warning", "0") in seen) == bool(warning_window)


# --- arming a shipment's moments ---------------------------------------------------------------


def sheet(
    status: ShipmentEventType | None = ShipmentEventType.IN_TRANSIT, at: datetime = T0, **fields
) -> ShipmentSheet:
    return ShipmentSheet("S1", customer_id="C1", status=status, last_event_at=at, **fields)


def test_a_new_shipment_is_armed_from_its_status_and_promise():
    new = sheet(ShipmentEventType.CREATED, promised_delivery_at=T0 + 72 * H)
    arm_shipment(None, new, RULES)
    assert (new.stale_at, new.overdue_at) == (T0 + 24 * H, T0 + 72 * H)


@pytest.mark.parametrize(
    ("status", "hours"),
    [
        ("created", 24),
        ("picked", 24),
        ("packed", 24),
        ("dispatched", 48),
        ("in_transit", 48),
        ("out_for_delivery", 12),
        ("delivery_failed", 24),
        ("exception", 48),
    ],
)
def test_the_stale_threshold_follows_the_status(status: str, hours: int):
    new = sheet(ShipmentEventType(status))
    arm_shipment(None, new, RULES)
    assert new.stale_at == T0 + hours * H


def test_a_move_re_arms_stale_and_a_late_event_does_not():
    before = sheet(stale_at=None)  # fired already
    moved = sheet(at=T0 + H)
    arm_shipment(before, moved, RULES)
    assert moved.stale_at == T0 + 49 * H
    late = sheet(stale_at=None)  # a late event: last_event_at and status unchanged
    arm_shipment(before, late, RULES)
    assert late.stale_at is None


def test_a_move_keeps_an_earlier_check_and_a_shorter_threshold_brings_it_forward():
    armed = sheet(stale_at=T0 + 48 * H)  # in transit since T0
    moved = sheet(at=T0 + 10 * H, stale_at=T0 + 48 * H)  # stale only at +58 h now
    arm_shipment(armed, moved, RULES)
    assert moved.stale_at == T0 + 48 * H  # the row's indexed moment unchanged: checked then
    out = sheet(ShipmentEventType.OUT_FOR_DELIVERY, at=T0 + 20 * H, stale_at=T0 + 48 * H)  # 12 h threshold
    arm_shipment(armed, out, RULES)
    assert out.stale_at == T0 + 32 * H


def test_a_check_that_finds_the_shipment_moved_re_arms_it_without_firing():
    moved = state(at=T0 + 10 * H, stale_at=T0 + 48 * H)
    decision = decide_stale(moved, T0 + 48 * H, RULES)
    assert decision.firings == () and decision.tasks == () and decision.alerts == ()
    assert decision.shipment.stale_at == T0 + 58 * H
    assert decision.shipment.overdue_at == moved.sheet.overdue_at
    later = state(at=T0 + 10 * H, stale_at=T0 + 58 * H)
    assert fired(decide_stale(later, T0 + 58 * H, RULES)) == [("stale_shipment", (T0 + 10 * H).isoformat())]
    assert decide_stale(later, T0 + 58 * H, RULES).firings[0].due_at == T0 + 58 * H


moves = st.lists(st.tuples(st.floats(0, 200), st.sampled_from(STALE_STATUSES)), min_size=1, max_size=8)


@given(moves, st.lists(st.floats(0, 300), max_size=12))
def test_moves_and_ticks_in_any_order_fire_stale_once_per_quiet_spell_at_its_true_moment(moves, tick_hours):
    """Whatever the moves (arming) and ticks (deciding), a tick fires stale exactly when the shipment
    has been quiet past its status' threshold, at that moment, and never twice for one last_event_at."""
    events = sorted(moves)
    current: ShipmentSheet | None = None
    seen: list[str] = []
    timeline = sorted([(h, 0, m) for h, m in events] + [(h, 1, None) for h in tick_hours], key=lambda x: x[:2])
    for h, is_tick, status in timeline:
        now = T0 + h * H
        if not is_tick:
            new = sheet(status, at=now, stale_at=current.stale_at if current else None)
            arm_shipment(current, new, RULES)
            current = new
            continue
        if current is None:
            continue
        decision = decide_stale(ShipmentState(current, STANDARD, False), now, RULES)
        true = stale_moment(current, RULES)
        assert bool(decision.firings) == (current.stale_at is not None and true is not None and true <= now)
        for firing in decision.firings:
            assert firing.due_at == true and firing.key == current.last_event_at.isoformat()
            seen.append(firing.key)
        if decision.shipment is not None:
            current = current.copy()
            current.stale_at = decision.shipment.stale_at
        assert current.stale_at is None or true is None or current.stale_at <= true  # never checked too late
    assert len(seen) == len(set(seen))


@pytest.mark.parametrize("status", ["delivered", "returned", "cancelled"])
def test_terminal_shipments_are_never_stale_or_overdue(status: str):
    done = sheet(ShipmentEventType(status), promised_delivery_at=T0 + H, stale_at=T0, overdue_at=T0)
    arm_shipment(sheet(), done, RULES)
    assert (done.stale_at, done.overdue_at) == (None, None)


def test_a_new_promise_re_arms_the_overdue_timer_and_the_same_one_does_not():
    before = sheet(promised_delivery_at=T0 + 10 * H, overdue_at=None)  # fired for that promise
    same = sheet(promised_delivery_at=T0 + 10 * H, at=T0 + H, overdue_at=None)
    arm_shipment(before, same, RULES)
    assert same.overdue_at is None
    later = sheet(promised_delivery_at=T0 + 20 * H, at=T0 + H, overdue_at=None)
    arm_shipment(before, later, RULES)
    assert later.overdue_at == T0 + 20 * H


# --- stale_shipment and delivery_overdue -------------------------------------------------------


def state(customer: CustomerInfo | None = STANDARD, told: bool = False, **fields) -> ShipmentState:
    defaults = {"stale_at": T0 + 48 * H, "overdue_at": T0 + 30 * H, "promised_delivery_at": T0 + 30 * H}
    return ShipmentState(sheet(**{**defaults, **fields}), customer, told)


def test_stale_fires_at_its_moment_with_a_p3_carrier_liaison_task_and_no_notice():
    assert decide_stale(state(), T0 + 47 * H, RULES).firings == ()
    decision = decide_stale(state(), T0 + 48 * H, RULES)
    assert fired(decision) == [("stale_shipment", T0.isoformat())]
    [main] = decision.tasks
    assert (main.department, main.kind, main.severity) == ("carrier_liaison", "stale_shipment", Severity.P3)
    assert main.opened_at == T0 + 48 * H and main.due_at == T0 + 72 * H
    [alert] = decision.alerts
    assert alert.queue is Queue.EXCEPTIONS and alert.alert.task_id == main.task_id
    assert decision.notifications == () and decision.shipment.stale_at is None


def test_a_key_accounts_stale_shipment_is_raised_and_followed_up():
    decision = decide_stale(state(KEY), T0 + 50 * H, RULES)
    assert [(t.department, t.severity) for t in decision.tasks] == [
        ("carrier_liaison", Severity.P2),
        ("key_accounts", Severity.P2),
    ]


def test_overdue_fires_at_the_promise_with_a_p2_task_and_a_delay_notice():
    decision = decide_overdue(state(), T0 + 30 * H, RULES)
    assert fired(decision) == [("delivery_overdue", (T0 + 30 * H).isoformat())]
    assert [(t.department, t.kind, t.severity) for t in decision.tasks] == [
        ("carrier_liaison", "delivery_overdue", Severity.P2)
    ]
    assert [n.kind for n in decision.notifications] == [NotificationKind.DELAY]
    assert decision.shipment.overdue_at is None and decision.shipment.stale_at == T0 + 48 * H


def test_overdue_sends_no_second_delay_notice_and_none_without_a_customer():
    assert decide_overdue(state(told=True), T0 + 31 * H, RULES).notifications == ()
    decision = decide_overdue(state(None), T0 + 31 * H, RULES)
    assert decision.notifications == () and decision.tasks[0].customer_id is None


@pytest.mark.parametrize("status", ["delivered", "returned", "cancelled"])
def test_a_terminal_shipment_fires_nothing_even_if_armed(status: str):
    armed = state(status=ShipmentEventType(status))
    assert decide_stale(armed, T0 + 100 * H, RULES).firings == () == decide_overdue(armed, T0 + 100 * H, RULES).firings


# --- key_account_review ----------------------------------------------------------------------------


def test_a_key_account_gets_a_p4_review_due_seven_days_later_and_no_alert():
    decision = decide_key_account_review(KEY, "2026-12", T0, RULES)
    assert fired(decision) == [(Timer.KEY_ACCOUNT_REVIEW.value, "2026-12")]
    [review] = decision.tasks
    assert (review.department, review.kind, review.severity) == ("key_accounts", "key_account_review", Severity.P4)
    assert review.due_at == T0 + timedelta(days=7) and decision.alerts == ()
    assert "2026-12" in review.title


def test_a_standard_customer_gets_no_review():
    assert decide_key_account_review(STANDARD, "2026-12", T0, RULES).firings == ()
