"""The clock's decisions: (subject state, now) -> what fires. Pure; hub/clock/ runs them.

Every timer has an identity (timer, subject, key) and a moment. A tick fires what is due by its
`now`, in due order, each identity once; a subject that changed before its moment has no such
timer any more (a resolved task is not breached, a shipment that moved is not stale).

A task's window runs from `opened_at` to `due_at`: `sla_warning` fires at the warning point of
the window but only before `due_at`; `sla_breach` level 1 at `due_at`, level 2 one window later
(rules.clock.sla). A late tick catches up: a task long past due gets level 1 and 2 at once and
no warning. The moments that a task records (`warned_at`, `breached_at`) are the moments the
timers were due, not the tick's time, so many small ticks and one late tick leave the same task
(but for the warning, which only a tick inside the window can fire).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from hub.core.ids import stable_id
from hub.core.outputs import (
    AlertDecision,
    NotificationDecision,
    TaskDecision,
    TaskEvent,
    is_key_account,
    new_task,
    render_notification,
    timer_task_and_alert,
    trusted,
)
from hub.core.rules import TERMINAL_STATUSES, ClockTask, Escalation, Rules
from hub.core.state import CustomerInfo, ShipmentSheet
from hub.core.topics import Queue
from schemas.enums import AlertKind, NotificationKind, Severity, ShipmentEventType, TaskStatus
from schemas.outbound import Alert, EscalationTarget, TimerSource


class Timer(StrEnum):
    SLA_WARNING = "sla_warning"
    SLA_BREACH = "sla_breach"
    STALE_SHIPMENT = "stale_shipment"
    DELIVERY_OVERDUE = "delivery_overdue"
    KEY_ACCOUNT_REVIEW = "key_account_review"
    COMPLAINT_FOLLOW_UP = "complaint_follow_up"
    DELIVERY_SURVEY = "delivery_survey"
    MONTHLY_STATEMENT = "monthly_statement"


ACTIVE = (TaskStatus.OPEN.value, TaskStatus.IN_PROGRESS.value)


class Firing(NamedTuple):
    """One timer that fired: its identity, the moment it was due and the tick that fired it."""

    timer: Timer
    subject: str
    key: str
    due_at: datetime
    now: datetime
    summary: str  # for `hub tick` and the logs: no personal data


class TaskState(NamedTuple):
    """What the clock reads of a coordination task."""

    task_id: str
    department: str
    kind: str
    severity: Severity
    status: str
    shipment_id: str | None
    customer_id: str | None
    opened_at: datetime
    due_at: datetime
    warn_at: datetime
    escalate_at: datetime
    warned_at: datetime | None
    escalation_level: int
    follow_up_at: datetime | None = None  # a done complaints task: when it was resolved (0007's trigger)


class TaskChange(NamedTuple):
    task_id: str
    severity: Severity
    escalation_level: int
    warned_at: datetime | None
    breached_at: datetime | None


class ShipmentTimers(NamedTuple):
    """A shipment's clock moments after a firing (None: not armed)."""

    shipment_id: str
    stale_at: datetime | None
    overdue_at: datetime | None
    survey_at: datetime | None


class ClockDecision(NamedTuple):
    firings: tuple[Firing, ...] = ()
    alerts: tuple[AlertDecision, ...] = ()
    tasks: tuple[TaskDecision, ...] = ()
    notifications: tuple[NotificationDecision, ...] = ()
    task_change: TaskChange | None = None
    shipment: ShipmentTimers | None = None
    history: tuple[TaskEvent, ...] = ()
    follow_up_done: str | None = None  # the task whose complaint follow-up was decided (disarm it)


NOTHING = ClockDecision()


# --- arming: the moments a shipment's events set -------------------------------------------------


def stale_moment(sheet: ShipmentSheet, rules: Rules) -> datetime | None:
    """When the shipment goes stale if nothing else happens: last_event_at + its status' threshold."""
    if sheet.status is None or sheet.last_event_at is None or sheet.status in TERMINAL_STATUSES:
        return None
    return sheet.last_event_at + rules.clock.stale_after[sheet.status]


def stale_check(armed: datetime | None, moment: datetime | None) -> datetime | None:
    """When the clock next looks at a shipment that moved: the moment armed already if it is no
    later than the new stale moment (the tick then re-arms it, see decide_stale), else the new one.

    A move then seldom changes the indexed `stale_at`, so Postgres updates the sheet in place (a
    HOT update, no index entries) instead of adding entries to every index of `shipments`.
    """
    if armed is not None and moment is not None and armed <= moment:
        return armed
    return moment


def arm_shipment(before: ShipmentSheet | None, after: ShipmentSheet, rules: Rules) -> None:
    """Set `after`'s clock moments from what the event changed (in place: the fold's working copy).

    stale: checked no later than last_event_at + the status' threshold (stale_check; once per
    shipment and last_event_at);
    overdue: armed for each new promise (once per shipment and promise); both disarmed for good
    when the shipment is delivered, returned or cancelled; survey: armed when it is delivered.
    """
    delivered_now = after.status is ShipmentEventType.DELIVERED and (
        before is None or before.status is not after.status
    )
    if delivered_now and after.last_event_at is not None:  # delivery_survey: once, a day after delivery
        after.survey_at = after.last_event_at + rules.surveys.survey_delay
    if after.status in TERMINAL_STATUSES:
        after.stale_at = after.overdue_at = None
        return
    if before is None or (before.last_event_at, before.status) != (after.last_event_at, after.status):
        after.stale_at = stale_check(before.stale_at if before else None, stale_moment(after, rules))
    if after.promised_delivery_at != (before.promised_delivery_at if before else None):
        after.overdue_at = after.promised_delivery_at


# --- tasks: sla_warning and sla_breach ------------------------------------------------------------


def decide_task(task: TaskState, now: datetime, rules: Rules) -> ClockDecision:
    """Everything the task's SLA timers owe by `now`, in due order."""
    if task.status not in ACTIVE:
        return NOTHING
    level, severity, warned_at, breached_at = task.escalation_level, task.severity, task.warned_at, None
    firings: list[Firing] = []
    alerts: list[AlertDecision] = []
    history: list[TaskEvent] = []
    if level == 0 and warned_at is None and task.warn_at <= now < task.due_at:
        warned_at = task.warn_at
        firings.append(_firing(Timer.SLA_WARNING, task, "0", task.warn_at, now, severity))
        alerts.append(_sla_alert(task, Timer.SLA_WARNING, None, task.warn_at, severity, now))
        history.append(TaskEvent(task.task_id, now, "warned", {"due_at": task.due_at.isoformat()}))
    for next_level, moment, escalation in (
        (1, task.due_at, rules.clock.sla.level_1),
        (2, task.escalate_at, rules.clock.sla.level_2),
    ):
        if level >= next_level or moment > now:
            continue
        level, severity = next_level, _escalated(severity, escalation)
        breached_at = breached_at or task.due_at
        firings.append(_firing(Timer.SLA_BREACH, task, str(level), moment, now, severity))
        alerts.append(_sla_alert(task, Timer.SLA_BREACH, escalation, moment, severity, now, level))
        history.append(
            TaskEvent(
                task.task_id,
                now,
                "escalated",
                {
                    "level": level,
                    "escalated_to": escalation.escalated_to.value,
                    "severity": severity.value,
                    "due_at": moment.isoformat(),
                },
            )
        )
    if not firings:
        return NOTHING
    change = TaskChange(task.task_id, severity, level, warned_at, breached_at)
    return ClockDecision(tuple(firings), tuple(alerts), task_change=change, history=tuple(history))


def _escalated(severity: Severity, escalation: Escalation) -> Severity:
    return escalation.severity or severity.raised(escalation.raise_severity_by)


def _firing(timer: Timer, task: TaskState, key: str, due: datetime, now: datetime, severity: Severity) -> Firing:
    level = f" level {key}" if timer is Timer.SLA_BREACH else ""
    return Firing(
        timer,
        task.task_id,
        key,
        due,
        now,
        f"{timer.value}{level}: task {task.task_id} ({task.department}, {severity.value}, "
        f"due {task.due_at.isoformat()})",
    )


def _sla_alert(
    task: TaskState,
    timer: Timer,
    escalation: Escalation | None,
    due: datetime,
    severity: Severity,
    now: datetime,
    level: int | None = None,
) -> AlertDecision:
    key = str(level or 0)
    subject = f"shipment {task.shipment_id}" if task.shipment_id else f"customer {task.customer_id or '-'}"
    what = "due soon" if timer is Timer.SLA_WARNING else f"breached, escalated to {_to(escalation)}"
    return AlertDecision(
        Queue.ESCALATIONS,
        trusted(
            Alert,
            alert_id=stable_id("alert", timer.value, task.task_id, key),
            kind=AlertKind(timer.value),
            severity=severity,
            rule=timer.value,
            shipment_id=task.shipment_id,
            customer_id=task.customer_id,
            summary=f"{task.kind.replace('_', ' ')} task {what}: {subject} ({task.department})",
            task_id=task.task_id,
            source=trusted(TimerSource, timer=timer.value, due_at=due),
            created_at=now,
            due_at=task.due_at,
            level=level,
            escalated_to=escalation.escalated_to if escalation else None,
        ),
    )


def _to(escalation: Escalation | None) -> str:
    return escalation.escalated_to.value if escalation else EscalationTarget.SUPERVISOR.value


# --- shipments: stale_shipment and delivery_overdue ----------------------------------------------


class ShipmentState(NamedTuple):
    """What the clock reads of a shipment."""

    sheet: ShipmentSheet
    customer: CustomerInfo | None
    has_delay_notice: bool  # the customer was told of a delay already


def decide_stale(state: ShipmentState, now: datetime, rules: Rules) -> ClockDecision:
    sheet = state.sheet
    due = stale_moment(sheet, rules)  # `stale_at` may be earlier: a check armed before the last move
    if sheet.stale_at is None or sheet.stale_at > now:
        return NOTHING
    if due is None or due > now or sheet.last_event_at is None:  # moved since: checked again at its moment
        return ClockDecision(shipment=ShipmentTimers(sheet.shipment_id, due, sheet.overdue_at, sheet.survey_at))
    key = sheet.last_event_at.isoformat()
    status = sheet.status.value if sheet.status else "-"
    firing = Firing(
        Timer.STALE_SHIPMENT,
        sheet.shipment_id,
        key,
        due,
        now,
        f"stale_shipment: shipment {sheet.shipment_id} ({status} since {key})",
    )
    out = _shipment_task(
        Timer.STALE_SHIPMENT,
        rules.clock.stale_shipment,
        state,
        key,
        due,
        now,
        rules,
        f"no movement since {key} ({status})",
    )
    timers = ShipmentTimers(sheet.shipment_id, None, sheet.overdue_at, sheet.survey_at)
    return out._replace(firings=(firing,), shipment=timers)


def decide_overdue(state: ShipmentState, now: datetime, rules: Rules) -> ClockDecision:
    sheet = state.sheet
    due = sheet.overdue_at
    if due is None or due > now or sheet.status in TERMINAL_STATUSES:
        return NOTHING
    key = due.isoformat()
    firing = Firing(
        Timer.DELIVERY_OVERDUE,
        sheet.shipment_id,
        key,
        due,
        now,
        f"delivery_overdue: shipment {sheet.shipment_id} (promised {key})",
    )
    out = _shipment_task(
        Timer.DELIVERY_OVERDUE,
        rules.clock.delivery_overdue,
        state,
        key,
        due,
        now,
        rules,
        f"promised delivery {key} passed",
    )
    notify = rules.clock.delivery_overdue_notify
    notices = out.notifications
    if notify is not None and state.customer is not None and not state.has_delay_notice:
        notices = (
            render_notification(
                notify,
                state.customer,
                rules,
                source_event_id=_source_id(Timer.DELIVERY_OVERDUE, sheet.shipment_id, key),
                shipment_id=sheet.shipment_id,
                order_id=sheet.order_id,
                eta=sheet.eta,
                promise=sheet.promised_delivery_at,
            ),
        )
    timers = ShipmentTimers(sheet.shipment_id, sheet.stale_at, None, sheet.survey_at)
    return out._replace(firings=(firing,), notifications=notices, shipment=timers)


def _source_id(timer: Timer, subject: str, key: str) -> str:
    """The `source_event_id` of what a timer writes: its identity, in the events' id column."""
    return f"clock:{timer.value}:{subject}:{key}"


def _shipment_task(
    timer: Timer, spec: ClockTask, state: ShipmentState, key: str, due: datetime, now: datetime, rules: Rules, why: str
) -> ClockDecision:
    """The task (and its alert) a shipment timer opens; a key account's is raised and followed up."""
    sheet = state.sheet
    names = {
        "shipment_id": sheet.shipment_id,
        "customer_id": state.customer.customer_id if state.customer else "-",
        "order_id": sheet.order_id or "-",
        "period": "-",
    }
    tasks, alert = timer_task_and_alert(
        rules,
        timer=timer.value,
        subject=sheet.shipment_id,
        key=key,
        due=due,
        now=now,
        department=spec.department.value,
        kind=timer.value,
        severity=spec.severity,
        title=spec.title.format_map(names),
        queue=Queue.EXCEPTIONS,
        shipment_id=sheet.shipment_id,
        customer=state.customer,
        summary=f"{timer.value.replace('_', ' ')}: shipment {sheet.shipment_id} ({why})",
        details={"why": why, "status": sheet.status.value if sheet.status else None, "carrier_id": sheet.carrier_id},
        due_at=_task_due(spec, due, spec.severity, rules),
        alert_kind=timer.value,
    )
    created = tuple(
        TaskEvent(t.task_id, now, "created", {"timer": timer.value, "severity": t.severity.value}) for t in tasks
    )
    return ClockDecision(alerts=(alert,) if alert else (), tasks=tuple(tasks), history=created)


def _task_due(spec: ClockTask, opened: datetime, severity: Severity, rules: Rules) -> datetime:
    return opened + (timedelta(days=spec.due_days) if spec.due_days else rules.response_time(severity))


# --- calendar: key_account_review ----------------------------------------------------------------


def decide_key_account_review(customer: CustomerInfo, period: str, now: datetime, rules: Rules) -> ClockDecision:
    """The month's review task for a key account (no alert). `period` is the month, e.g. 2026-12.

    Its subject is the key account itself, so the key-account raise and follow-up do not apply.
    """
    if customer.tier is not rules.key_account.tier:
        return NOTHING
    spec = rules.clock.key_account_review
    timer = Timer.KEY_ACCOUNT_REVIEW
    source_id = _source_id(timer, customer.customer_id, period)
    names = {"shipment_id": "-", "customer_id": customer.customer_id, "order_id": "-", "period": period}
    task = new_task(
        rules,
        task_id=stable_id("task", timer.value, customer.customer_id, period),
        department=spec.department.value,
        kind=timer.value,
        severity=spec.severity,
        shipment_id=None,
        customer_id=customer.customer_id,
        title=spec.title.format_map(names),
        details={"timer": timer.value, "period": period},
        opened_at=now,
        due_at=_task_due(spec, now, spec.severity, rules),
        source_event_id=source_id,
        rule=timer.value,
        alert_id=None,
    )
    firing = Firing(
        timer, customer.customer_id, period, now, now, f"key_account_review: customer {customer.customer_id} ({period})"
    )
    return ClockDecision(
        (firing,), tasks=(task,), history=(TaskEvent(task.task_id, now, "created", {"timer": timer.value}),)
    )


def month_of(moment: datetime) -> str:
    """The calendar month of an aware datetime, in its own timezone (callers convert to HUB_TIMEZONE)."""
    return f"{moment.year:04d}-{moment.month:02d}"


# --- surveys: complaint_follow_up and delivery_survey --------------------------------------------


def decide_complaint_follow_up(
    task: TaskState, customer: CustomerInfo | None, now: datetime, rules: Rules
) -> ClockDecision:
    """A done complaints task, a day after it was resolved: a satisfaction survey referring to it,
    and for a key account a follow-up visit."""
    if task.follow_up_at is None or task.status != TaskStatus.DONE.value:
        return ClockDecision(follow_up_done=task.task_id) if task.follow_up_at else NOTHING
    due = task.follow_up_at + rules.surveys.follow_up_delay
    if due > now:
        return NOTHING
    timer, key = Timer.COMPLAINT_FOLLOW_UP, task.follow_up_at.isoformat()
    firing = Firing(
        timer,
        task.task_id,
        key,
        due,
        now,
        f"complaint_follow_up: task {task.task_id} (customer {task.customer_id or '-'})",
    )
    notices = (
        ()
        if customer is None
        else (_survey(customer, timer, task.task_id, key, task.shipment_id, rules, reference=task.task_id),)
    )
    tasks: tuple[TaskDecision, ...] = ()
    if is_key_account(customer, rules) and customer is not None:
        spec = rules.surveys.follow_up_visit
        names = {
            "shipment_id": task.shipment_id or "-",
            "customer_id": customer.customer_id,
            "order_id": "-",
            "period": "-",
        }
        tasks = (
            new_task(
                rules,
                task_id=stable_id("task", timer.value, task.task_id, key),
                department=spec.department.value,
                kind="follow_up_visit",
                severity=spec.severity,
                shipment_id=task.shipment_id,
                customer_id=customer.customer_id,
                title=spec.title.format_map(names),
                details={"timer": timer.value, "complaint": task.task_id},
                opened_at=due,
                due_at=_task_due(spec, due, spec.severity, rules),
                source_event_id=_source_id(timer, task.task_id, key),
                rule=timer.value,
                alert_id=None,
            ),
        )
    history = tuple(TaskEvent(t.task_id, now, "created", {"timer": timer.value}) for t in tasks)
    return ClockDecision((firing,), tasks=tasks, notifications=notices, history=history, follow_up_done=task.task_id)


def sampled(shipment_id: str, rate: float) -> bool:
    """A deterministic sample: the same shipment is always in or always out, whoever evaluates it."""
    digest = hashlib.sha256(shipment_id.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < rate


def decide_delivery_survey(
    state: ShipmentState, last_survey: datetime | None, sample_rate: float, now: datetime, rules: Rules
) -> ClockDecision:
    """A day after delivery: a satisfaction survey for every key account and a deterministic sample
    of the others, at most one per customer in 30 days. Either way the timer is disarmed."""
    sheet, customer = state.sheet, state.customer
    due = sheet.survey_at
    if due is None or due > now:
        return NOTHING
    disarm = ShipmentTimers(sheet.shipment_id, sheet.stale_at, sheet.overdue_at, None)
    wanted = customer is not None and (is_key_account(customer, rules) or sampled(sheet.shipment_id, sample_rate))
    recent = last_survey is not None and now - last_survey < rules.surveys.quiet_period
    if not wanted or recent or customer is None:
        return ClockDecision(shipment=disarm)
    timer, key = Timer.DELIVERY_SURVEY, due.isoformat()
    firing = Firing(
        timer,
        sheet.shipment_id,
        key,
        due,
        now,
        f"delivery_survey: shipment {sheet.shipment_id} (customer {customer.customer_id})",
    )
    notice = _survey(customer, timer, sheet.shipment_id, key, sheet.shipment_id, rules)
    return ClockDecision((firing,), notifications=(notice,), shipment=disarm)


def _survey(
    customer: CustomerInfo,
    timer: Timer,
    subject: str,
    key: str,
    shipment_id: str | None,
    rules: Rules,
    reference: str = "",
) -> NotificationDecision:
    return render_notification(
        NotificationKind.SATISFACTION_SURVEY,
        customer,
        rules,
        source_event_id=_source_id(timer, subject, key),
        shipment_id=shipment_id,
        order_id=None,
        reference=reference,
    )


# --- calendar: monthly_statement -----------------------------------------------------------------


def decide_monthly_statement(customer: CustomerInfo, period: str, now: datetime, rules: Rules) -> ClockDecision:
    """The statement notice of a customer with shipments in `period` (the statement itself is built
    and stored by the engine, in the same transaction)."""
    timer = Timer.MONTHLY_STATEMENT
    firing = Firing(
        timer, customer.customer_id, period, now, now, f"monthly_statement: customer {customer.customer_id} ({period})"
    )
    notice = render_notification(
        NotificationKind.MONTHLY_STATEMENT,
        customer,
        rules,
        source_event_id=_source_id(timer, customer.customer_id, period),
        shipment_id=None,
        order_id=None,
        reference=period,
    )._replace(statement_period=period)
    return ClockDecision((firing,), notifications=(notice,))
