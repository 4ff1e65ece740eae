"""Pure routing decisions: (event, what is known) -> alerts, tasks, notifications, new sheet.

No I/O here. The store loads `Known`, calls one of the `route_*` functions per event in
occurred_at order and writes the returned `Decision` in the batch's transaction.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, NamedTuple

from hub.core.ids import stable_id
from hub.core.outputs import (
    AlertDecision,
    NotificationDecision,
    Source,
    TaskDecision,
    TaskUpdate,
    alert_source,
    key_account_follow_up,
    new_task,
    render_notification,
    sla_moments,
)
from hub.core.rules import ETA_PAST_PROMISE, LOW_SCORE, REPEAT_CONTACT, URGENT_CREATED, Rule, Rules
from hub.core.state import CustomerInfo, Known, OrphanTask, ShipmentSheet
from schemas.enums import (
    CARRIER_TO_SHIPMENT_STATUS,
    CallCategory,
    CarrierStatus,
    ExceptionCode,
    NotificationKind,
    Priority,
    Severity,
    ShipmentEventType,
)
from schemas.inbound import CallLog, CarrierUpdate, InboundEvent, ShipmentEvent
from schemas.outbound import Alert

MILESTONE_KINDS = (NotificationKind.DISPATCHED, NotificationKind.OUT_FOR_DELIVERY, NotificationKind.DELIVERED)
MILESTONE_RANK = {kind: rank for rank, kind in enumerate(MILESTONE_KINDS)}
# The latest milestone a status implies: a parcel in transit has been dispatched, a failed attempt was out for delivery.
MILESTONE_REACHED = {
    ShipmentEventType.DISPATCHED: NotificationKind.DISPATCHED,
    ShipmentEventType.IN_TRANSIT: NotificationKind.DISPATCHED,
    ShipmentEventType.OUT_FOR_DELIVERY: NotificationKind.OUT_FOR_DELIVERY,
    ShipmentEventType.DELIVERY_FAILED: NotificationKind.OUT_FOR_DELIVERY,
    ShipmentEventType.DELIVERED: NotificationKind.DELIVERED,
}


def field_of(event: InboundEvent, name: str) -> Any:
    """A declared field of this event's model, or None when its model has no such field.

    getattr() would fall into pydantic's slow __getattr__ for a missing name, and would also
    return an unknown extra field of that name, which routing must ignore.
    """
    return event.__dict__.get(name)


def customer_of(event: InboundEvent, sheet: ShipmentSheet | None) -> str | None:
    """The customer an event concerns. Carrier updates carry none: theirs is the shipment's, once known."""
    if isinstance(event, CarrierUpdate):
        return sheet.customer_id if sheet is not None else None
    customer_id: str | None = field_of(event, "customer_id")
    return customer_id


class Decision(NamedTuple):
    """What one event changes."""

    alerts: tuple[AlertDecision, ...] = ()
    tasks: tuple[TaskDecision, ...] = ()
    notifications: tuple[NotificationDecision, ...] = ()
    sheet: ShipmentSheet | None = None  # the shipment's sheet after this event, if one is involved
    new_customer: CustomerInfo | None = None  # an unknown customer, registered with defaults
    adopt_customer: str | None = None  # give the shipment's customerless tasks this customer
    task_updates: tuple[TaskUpdate, ...] = ()


class _Context(NamedTuple):
    """Facts of one event that every rule output needs."""

    event: InboundEvent
    source: Source
    shipment_id: str | None
    customer: CustomerInfo | None
    order_id: str | None
    promise: datetime | None
    now: datetime


# --- entry points ----------------------------------------------------------------------------


def route_event(event: InboundEvent, known: Known, source: Source, rules: Rules, now: datetime) -> Decision:
    if isinstance(event, ShipmentEvent):
        return route_shipment_event(event, known, source, rules, now)
    if isinstance(event, CarrierUpdate):
        return route_carrier_update(event, known, source, rules, now)
    if isinstance(event, CallLog):
        return route_call_log(event, known, source, rules, now)
    raise TypeError(f"no routing for {type(event).__name__}")


def route_shipment_event(event: ShipmentEvent, known: Known, source: Source, rules: Rules, now: datetime) -> Decision:
    before = known.sheet or ShipmentSheet(event.shipment_id)
    late = before.is_late(event.occurred_at)
    sheet = before.copy()
    _apply_shipment_facts(sheet, event, late)
    triggers = shipment_triggers(event)
    eta_trigger = _eta_check(sheet, before)
    customer, new_customer = _customer(event.customer_id, known.customer)
    ctx = _Context(
        event, source, event.shipment_id, customer, event.order_id or sheet.order_id, sheet.promised_delivery_at, now
    )
    fired = fire(triggers | eta_trigger, rules)
    _mark_eta_alerted(sheet, fired, eta_trigger)
    alerts, tasks, notifications = _raise(fired, ctx, rules)
    _notify_milestone(sheet, triggers, late, ctx, rules, notifications)
    if before.customer_id is not None or known.sheet is None:
        return Decision(tuple(alerts), tuple(tasks), tuple(notifications), sheet, new_customer)
    # The shipment was known only from carriers or calls: its tasks take the customer now, the
    # customer hears of the current milestone (never a superseded one) and gets the notices the
    # earlier alerts would have written; a key account's tasks are raised and followed up.
    _notify_current_milestone(sheet, ctx, rules, notifications)
    adopted = _adopt_orphans(known.orphans, ctx, sheet, rules)
    return Decision(
        tuple(alerts),
        (*tasks, *adopted.tasks),
        (*notifications, *adopted.notifications),
        sheet,
        new_customer,
        event.customer_id,
        adopted.updates,
    )


def route_carrier_update(event: CarrierUpdate, known: Known, source: Source, rules: Rules, now: datetime) -> Decision:
    before = known.sheet or ShipmentSheet(event.shipment_id)
    late = before.is_late(event.occurred_at)
    sheet = before.copy()
    if not late:
        sheet.status, sheet.last_event_at = CARRIER_TO_SHIPMENT_STATUS[event.status], event.occurred_at
    if event.carrier_id and (sheet.carrier_id is None or not late):
        sheet.carrier_id = event.carrier_id
    if event.eta is not None and (sheet.eta_reported_at is None or event.occurred_at >= sheet.eta_reported_at):
        sheet.eta, sheet.eta_reported_at = event.eta, event.occurred_at
    triggers = carrier_triggers(event)
    eta_trigger = _eta_check(sheet, before)
    customer = known.customer if customer_of(event, sheet) else None
    ctx = _Context(event, source, event.shipment_id, customer, sheet.order_id, sheet.promised_delivery_at, now)
    fired = fire(triggers | eta_trigger, rules)
    _mark_eta_alerted(sheet, fired, eta_trigger)
    alerts, tasks, notifications = _raise(fired, ctx, rules)
    _notify_milestone(sheet, triggers, late, ctx, rules, notifications)
    return Decision(tuple(alerts), tuple(tasks), tuple(notifications), sheet)


def route_call_log(event: CallLog, known: Known, source: Source, rules: Rules, now: datetime) -> Decision:
    customer, new_customer = _customer(event.customer_id, known.customer)
    sheet = known.sheet.copy() if known.sheet else (ShipmentSheet(event.shipment_id) if event.shipment_id else None)
    triggers = call_triggers(event, rules)
    if sheet is not None and _is_repeat_contact(event, known, sheet, rules):
        triggers = triggers | {REPEAT_CONTACT}
    ctx = _Context(
        event,
        source,
        event.shipment_id,
        customer,
        event.order_id or (sheet.order_id if sheet else None),
        sheet.promised_delivery_at if sheet else None,
        now,
    )
    fired = fire(triggers, rules)
    if sheet is not None and any(REPEAT_CONTACT in rule.when for rule in fired):
        sheet.repeat_contact_fired = (*sheet.repeat_contact_fired, event.occurred_at)
    alerts, tasks, notifications = _raise(fired, ctx, rules)
    return Decision(tuple(alerts), tuple(tasks), tuple(notifications), sheet, new_customer)


# --- triggers --------------------------------------------------------------------------------


def shipment_triggers(event: ShipmentEvent) -> frozenset[str]:
    triggers = {f"shipment:{event.type.value}"}
    if event.type is ShipmentEventType.EXCEPTION and event.exception is not None:
        triggers.add(f"exception:{event.exception.code.value}")
    if event.type is ShipmentEventType.CREATED and event.priority is Priority.URGENT:
        triggers.add(URGENT_CREATED)
    return frozenset(triggers)


def carrier_triggers(event: CarrierUpdate) -> frozenset[str]:
    triggers = {f"carrier:{event.status.value}"}
    if event.status is CarrierStatus.EXCEPTION:
        # An exception_code on any other status is informational only.
        triggers.add(f"exception:{(event.exception_code or ExceptionCode.OTHER).value}")
    return frozenset(triggers)


def call_triggers(event: CallLog, rules: Rules) -> frozenset[str]:
    triggers = {f"call:{event.category.value}"}
    score = event.satisfaction_score
    if event.category is CallCategory.SURVEY and score is not None and score <= rules.surveys.low_score_at_most:
        triggers.add(LOW_SCORE)
    return frozenset(triggers)


def fire(triggers: frozenset[str] | set[str], rules: Rules) -> list[Rule]:
    """The first matching rule per handler queue, in rules-file order."""
    by_trigger = rules.rules_by_trigger
    matching = sorted({i for trigger in triggers for i in by_trigger.get(trigger, ())})
    fired: dict[str, Rule] = {}
    for index in matching:
        rule = rules.rules[index]
        fired.setdefault(rule.queue, rule)
    return list(fired.values())


# --- sheet updates ---------------------------------------------------------------------------


def _apply_shipment_facts(sheet: ShipmentSheet, event: ShipmentEvent, late: bool) -> None:
    if not late:
        sheet.status, sheet.last_event_at = event.type, event.occurred_at
    if sheet.customer_id is None or not late:
        sheet.customer_id = event.customer_id
    # A late event only fills facts the sheet lacks; a current one may correct them.
    if event.order_id is not None and (sheet.order_id is None or not late):
        sheet.order_id = event.order_id
    if event.carrier_id is not None and (sheet.carrier_id is None or not late):
        sheet.carrier_id = event.carrier_id
    if event.promised_delivery_at is not None and (sheet.promised_delivery_at is None or not late):
        sheet.promised_delivery_at = event.promised_delivery_at
    if event.priority is Priority.URGENT:
        sheet.priority = Priority.URGENT.value


_NO_TRIGGER: frozenset[str] = frozenset()
_ETA_TRIGGER = frozenset({ETA_PAST_PROMISE})


def _eta_check(sheet: ShipmentSheet, before: ShipmentSheet) -> frozenset[str]:
    """ETA past the promise fires once while it stays past; an ETA within the promise re-arms it."""
    if sheet.eta is None or sheet.promised_delivery_at is None:
        return _NO_TRIGGER
    if sheet.eta <= sheet.promised_delivery_at:
        sheet.eta_alerted = False
        return _NO_TRIGGER
    changed = (sheet.eta, sheet.promised_delivery_at) != (before.eta, before.promised_delivery_at)
    if sheet.eta_alerted or not changed:
        return _NO_TRIGGER
    return _ETA_TRIGGER


def _mark_eta_alerted(sheet: ShipmentSheet, fired: list[Rule], eta_trigger: frozenset[str]) -> None:
    if eta_trigger and any(ETA_PAST_PROMISE in rule.when for rule in fired):
        sheet.eta_alerted = True


def _is_repeat_contact(event: CallLog, known: Known, sheet: ShipmentSheet, rules: Rules) -> bool:
    spec = rules.repeat_contact
    if not spec.counts(event):
        return False
    t, window = event.occurred_at, spec.window
    if any(abs(fired - t) <= window for fired in sheet.repeat_contact_fired):
        return False
    return any(abs(other - t) <= window for other in known.contacts)


def _customer(customer_id: str, known: CustomerInfo | None) -> tuple[CustomerInfo, CustomerInfo | None]:
    """The event's customer; an unknown one is registered as standard, zh, sms."""
    if known is not None:
        return known, None
    fresh = CustomerInfo(customer_id)
    return fresh, fresh


# --- outputs ---------------------------------------------------------------------------------


def _raise(
    fired: list[Rule], ctx: _Context, rules: Rules
) -> tuple[list[AlertDecision], list[TaskDecision], list[NotificationDecision]]:
    """The alerts, tasks and notices of the fired rules; callers add milestone notices."""
    alerts, tasks, notifications = [], [], []
    for rule in fired:
        task, key_task = _tasks(rule, ctx, rules)
        tasks.append(task)
        if key_task is not None:
            tasks.append(key_task)
        alerts.append(AlertDecision(rule.queue, _alert(rule, task, ctx)))
        if rule.notify is not None and ctx.customer is not None:
            notifications.append(_notification(rule.notify, ctx, rules, reference=task.task_id))
    return alerts, tasks, notifications


def _severity(rule: Rule, ctx: _Context, rules: Rules) -> tuple[Severity, bool]:
    key = ctx.customer is not None and ctx.customer.tier is rules.key_account.tier
    if key:
        return rule.task.severity.raised(rules.key_account.raise_severity_by), True
    return rule.task.severity, False


def _due_at(rule: Rule, severity: Severity, ctx: _Context, rules: Rules) -> datetime:
    due = ctx.event.occurred_at + rules.response_time(severity)
    if rule.task.due == "urgent_order":
        deadline = field_of(ctx.event, "requested_deadline")
        due = min(d for d in (due, deadline, ctx.promise) if d is not None)
    return due


def _tasks(rule: Rule, ctx: _Context, rules: Rules) -> tuple[TaskDecision, TaskDecision | None]:
    event = ctx.event
    severity, key_account = _severity(rule, ctx, rules)
    customer_id = ctx.customer.customer_id if ctx.customer else None
    alert_id = stable_id("alert", event.event_id, rule.id)
    details: dict[str, Any] = {
        "rule": rule.id,
        "alert_id": alert_id,
        "source": alert_source(ctx.source).model_dump(),
        "event_type": _event_type(event),
    }
    declared = field_of(event, "declared_value") if rule.task.attach_declared_value else None
    if declared is not None:
        details["declared_value"] = declared.model_dump(mode="json")
    names = {
        "shipment_id": ctx.shipment_id or "-",
        "customer_id": customer_id or "-",
        "order_id": ctx.order_id or "-",
        "event_id": event.event_id,
    }
    main = new_task(
        rules,
        task_id=stable_id("task", event.event_id, rule.id),
        department=rule.task.department.value,
        kind=rule.kind.value,
        severity=severity,
        shipment_id=ctx.shipment_id,
        customer_id=customer_id,
        title=rule.task.title.format_map(names),
        details=details,
        opened_at=event.occurred_at,
        due_at=_due_at(rule, severity, ctx, rules),
        source_event_id=event.event_id,
        rule=rule.id,
        alert_id=alert_id,
    )
    if not key_account:
        return main, None
    return main, key_account_follow_up(main, rules, names, event.event_id, rule.id)


def _alert(rule: Rule, task: TaskDecision, ctx: _Context) -> Alert:
    assert task.alert_id is not None  # routing's tasks always come with their alert
    # Every value is already typed and checked: skip a second validation on the hot path.
    return Alert.model_construct(
        alert_id=task.alert_id,
        kind=rule.kind,
        severity=task.severity,
        rule=rule.id,
        shipment_id=ctx.shipment_id,
        customer_id=task.customer_id,
        summary=_summary(rule, ctx),
        task_id=task.task_id,
        source=alert_source(ctx.source),
        created_at=ctx.now,
        due_at=task.due_at,
    )


def _summary(rule: Rule, ctx: _Context) -> str:
    # No personal data: ids, the event's type and its producing system only.
    customer_id = ctx.customer.customer_id if ctx.customer else "-"
    subject = f"shipment {ctx.shipment_id}" if ctx.shipment_id else f"customer {customer_id}"
    return f"{rule.kind.value.replace('_', ' ')}: {subject} ({_event_type(ctx.event)}, from {ctx.event.source})"


def _event_type(event: InboundEvent) -> str:
    if isinstance(event, ShipmentEvent):
        code = f"/{event.exception.code.value}" if event.exception and event.type is ShipmentEventType.EXCEPTION else ""
        return f"shipment {event.type.value}{code}"
    if isinstance(event, CarrierUpdate):
        code = f"/{event.exception_code.value}" if event.exception_code else ""
        return f"carrier {event.status.value}{code}"
    assert isinstance(event, CallLog)
    return f"call {event.category.value}"


def _notification(
    kind: NotificationKind,
    ctx: _Context,
    rules: Rules,
    reference: str = "",
    source_event_id: str | None = None,
    eta: datetime | None = None,
) -> NotificationDecision:
    """`source_event_id` and `eta` default to the routed event's."""
    assert ctx.customer is not None
    return render_notification(
        kind,
        ctx.customer,
        rules,
        source_event_id=source_event_id or ctx.event.event_id,
        shipment_id=ctx.shipment_id,
        order_id=ctx.order_id,
        reference=reference,
        eta=eta or field_of(ctx.event, "eta"),
        promise=ctx.promise,
    )


def milestone_of(triggers: frozenset[str], rules: Rules) -> NotificationKind | None:
    kinds = [kind for trigger in triggers if (kind := rules.milestone_by_trigger.get(trigger)) is not None]
    if not kinds:
        return None
    order = list(rules.milestones)
    return min(kinds, key=order.index)


def _notify_milestone(
    sheet: ShipmentSheet,
    triggers: frozenset[str],
    late: bool,
    ctx: _Context,
    rules: Rules,
    out: list[NotificationDecision],
) -> None:
    kind = milestone_of(triggers, rules)
    if kind is None or kind.value in sheet.notified_milestones or (late and _superseded(kind, sheet)):
        return
    if ctx.customer is None:
        return  # unknown shipment: notified when its customer becomes known
    out.append(_notification(kind, ctx, rules))
    sheet.notified_milestones = sheet.notified_milestones | {kind.value}


def _superseded(kind: NotificationKind, sheet: ShipmentSheet) -> bool:
    """A later milestone was reached or notified already."""
    rank = MILESTONE_KINDS.index
    reached = [MILESTONE_REACHED[sheet.status]] if sheet.status in MILESTONE_REACHED else []
    reached += [k for k in MILESTONE_KINDS if k.value in sheet.notified_milestones]
    return any(rank(other) > rank(kind) for other in reached)


def _notify_current_milestone(
    sheet: ShipmentSheet, ctx: _Context, rules: Rules, out: list[NotificationDecision]
) -> None:
    if sheet.status is None:
        return
    kind = MILESTONE_REACHED.get(sheet.status)
    if kind is None or kind.value in sheet.notified_milestones:
        return
    out.append(_notification(kind, ctx, rules))
    sheet.notified_milestones = sheet.notified_milestones | {kind.value}


class _Adopted(NamedTuple):
    tasks: tuple[TaskDecision, ...] = ()
    notifications: tuple[NotificationDecision, ...] = ()
    updates: tuple[TaskUpdate, ...] = ()


def _adopt_orphans(orphans: tuple[OrphanTask, ...], ctx: _Context, sheet: ShipmentSheet, rules: Rules) -> _Adopted:
    """What a shipment's customerless tasks owe its customer, now that it is known (contract 1.1).

    Each task's rule notice is written once, with the task's own source event (so its id is the
    one routing would have given it); a key account's tasks are raised and get their follow-up.
    """
    rule_by_id = {rule.id: rule for rule in rules.rules}
    tasks, notices, updates = [], [], []
    key = ctx.customer is not None and ctx.customer.tier is rules.key_account.tier
    for orphan in orphans:
        rule = rule_by_id.get(orphan.rule)
        if rule is None:
            continue  # its rule is gone from the rules file: nothing to catch up on
        if rule.notify is not None:
            notices.append(
                _notification(
                    rule.notify,
                    ctx,
                    rules,
                    reference=orphan.task_id,
                    source_event_id=orphan.source_event_id,
                    eta=sheet.eta,
                )
            )
        if key and orphan.active:
            update, follow_up = _raise_for_key_account(orphan, rule, ctx, rules)
            updates.append(update)
            tasks.append(follow_up)
    return _Adopted(tuple(tasks), tuple(notices), tuple(updates))


def _raise_for_key_account(
    orphan: OrphanTask, rule: Rule, ctx: _Context, rules: Rules
) -> tuple[TaskUpdate, TaskDecision]:
    severity = orphan.severity.raised(rules.key_account.raise_severity_by)
    due = orphan.occurred_at + rules.response_time(severity)
    warn_at, escalate_at = sla_moments(orphan.occurred_at, due, rules)
    customer_id = ctx.customer.customer_id if ctx.customer else None
    names = {
        "shipment_id": ctx.shipment_id or "-",
        "customer_id": customer_id or "-",
        "order_id": ctx.order_id or "-",
        "event_id": orphan.source_event_id,
    }
    main = new_task(
        rules,
        task_id=orphan.task_id,
        department="",
        kind="",
        severity=severity,
        shipment_id=ctx.shipment_id,
        customer_id=customer_id,
        title="",
        details=orphan.details,
        opened_at=orphan.occurred_at,
        due_at=due,
        source_event_id=orphan.source_event_id,
        rule=rule.id,
        alert_id=str(orphan.details.get("alert_id") or stable_id("alert", orphan.source_event_id, rule.id)),
    )
    follow_up = key_account_follow_up(main, rules, names, orphan.source_event_id, rule.id)
    return TaskUpdate(orphan.task_id, severity, due, warn_at, escalate_at), follow_up
