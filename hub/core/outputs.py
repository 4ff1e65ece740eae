"""What the core decides, as values the store writes: tasks, alerts, notifications, task changes.

Routing (an event arrived) and the clock (a moment passed) build the same outputs with the same
builders, so a task has its SLA moments and a notice its template wherever it comes from.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any, NamedTuple, TypeVar

from pydantic import BaseModel

from hub.core.ids import stable_id
from hub.core.rules import Rules
from hub.core.state import CustomerInfo
from hub.core.topics import Queue
from schemas.enums import AlertKind, NotificationKind, Severity
from schemas.outbound import Alert, AlertSource, TimerSource

M = TypeVar("M", bound=BaseModel)
_set = object.__setattr__
_PLAIN: dict[type, tuple[str, ...] | None] = {}


def _plain_fields(cls: type[BaseModel]) -> tuple[str, ...] | None:
    """The model's field names, if `trusted` may fill them directly: no aliases, no post-init hook,
    no extra fields kept (what makes model_construct do more than fill `__dict__`)."""
    if cls not in _PLAIN:
        fields = cls.__pydantic_fields__
        plain = (
            not cls.__pydantic_post_init__
            and not cls.__pydantic_root_model__
            and cls.model_config.get("extra") != "allow"
            and all(f.alias is None and f.validation_alias is None for f in fields.values())
        )
        _PLAIN[cls] = tuple(fields) if plain else None
    return _PLAIN[cls]


def trusted(cls: type[M], **values: Any) -> M:
    """`cls.model_construct(**values)` (already typed and checked values, no second validation) at a
    fraction of its cost when `values` names every field; otherwise model_construct itself.

    The clock builds an alert per timer: model_construct's per-field alias and default handling
    was most of a tick's Python time."""
    names = _plain_fields(cls)
    if names is None or len(values) != len(names):
        return cls.model_construct(**values)
    try:
        fields = {name: values[name] for name in names}  # field order, as model_construct
    except KeyError:
        return cls.model_construct(**values)
    model = cls.__new__(cls)
    _set(model, "__dict__", fields)
    _set(model, "__pydantic_fields_set__", set(names))
    _set(model, "__pydantic_extra__", None)
    _set(model, "__pydantic_private__", None)
    return model


class SourceRef(NamedTuple):
    """Where an event was read; becomes the alert's `source` only when an alert is raised."""

    topic: str
    partition: int
    offset: int
    event_id: str


Source = AlertSource | SourceRef


def alert_source(source: Source) -> AlertSource:
    return source if isinstance(source, AlertSource) else AlertSource(**source._asdict())


# Decisions are NamedTuples: immutable, and built for every event at a fifth of a frozen
# dataclass's cost.


class TaskDecision(NamedTuple):
    task_id: str
    department: str
    kind: str
    severity: Severity
    shipment_id: str | None
    customer_id: str | None
    title: str
    details: dict[str, Any]
    opened_at: datetime  # the triggering event's occurred_at (or the timer's moment): the window's start
    due_at: datetime
    warn_at: datetime  # the clock's moments for this task (see sla_moments)
    escalate_at: datetime
    source_event_id: str
    rule: str
    alert_id: str | None


class AlertDecision(NamedTuple):
    queue: Queue
    alert: Alert


class NotificationDecision(NamedTuple):
    notification_id: str
    customer_id: str
    shipment_id: str | None
    kind: NotificationKind
    channel: str
    language: str
    body: str
    source_event_id: str
    statement_period: str | None = None  # a monthly statement: the stored statement it carries


class TaskUpdate(NamedTuple):
    """An existing task's new severity and window (a key account adopted it)."""

    task_id: str
    severity: Severity
    due_at: datetime
    warn_at: datetime
    escalate_at: datetime


class TaskEvent(NamedTuple):
    """One row of a task's history (task_events)."""

    task_id: str
    at: datetime
    action: str
    detail: dict[str, Any]
    actor: str = "hub"


def sla_moments(opened_at: datetime, due_at: datetime, rules: Rules) -> tuple[datetime, datetime]:
    """(warn_at, escalate_at): the warning point into the window, and level 2 that many windows after due."""
    sla = rules.clock.sla
    window = max(due_at - opened_at, timedelta(0))
    return opened_at + window * sla.warning_at, due_at + window * sla.level_2_after_windows


def new_task(
    rules: Rules,
    *,
    task_id: str,
    department: str,
    kind: str,
    severity: Severity,
    shipment_id: str | None,
    customer_id: str | None,
    title: str,
    details: dict[str, Any],
    opened_at: datetime,
    due_at: datetime,
    source_event_id: str,
    rule: str,
    alert_id: str | None,
) -> TaskDecision:
    warn_at, escalate_at = sla_moments(opened_at, due_at, rules)
    return TaskDecision(
        task_id,
        department,
        kind,
        severity,
        shipment_id,
        customer_id,
        title,
        details,
        opened_at,
        due_at,
        warn_at,
        escalate_at,
        source_event_id,
        rule,
        alert_id,
    )


def key_account_follow_up(main: TaskDecision, rules: Rules, names: dict[str, str], *id_parts: str) -> TaskDecision:
    """The key_accounts task beside a key account's main task: same severity and due time."""
    spec = rules.key_account.task
    return main._replace(
        task_id=stable_id("task", *id_parts, spec.kind),
        department=spec.department.value,
        kind=spec.kind,
        title=spec.title.format_map(names),
        details={**main.details, "main_task_id": main.task_id},
    )


def is_key_account(customer: CustomerInfo | None, rules: Rules) -> bool:
    return customer is not None and customer.tier is rules.key_account.tier


def render_notification(
    kind: NotificationKind,
    customer: CustomerInfo,
    rules: Rules,
    *,
    source_event_id: str,
    shipment_id: str | None,
    order_id: str | None,
    reference: str = "",
    eta: datetime | None = None,
    promise: datetime | None = None,
) -> NotificationDecision:
    """A notice in the customer's language, by its preferred channel; one per source event and kind."""
    body = rules.templates[kind][customer.language].format_map(
        {
            "shipment_id": shipment_id or "-",
            "order_id": order_id or shipment_id or "-",
            "reference": reference,
            "eta": eta.isoformat() if eta else "-",
            "promised": promise.isoformat() if promise else "-",
        }
    )
    return NotificationDecision(
        notification_id=stable_id("notification", source_event_id, kind.value),
        customer_id=customer.customer_id,
        shipment_id=shipment_id,
        kind=kind,
        channel=customer.preferred_channel.value,
        language=customer.language.value,
        body=body,
        source_event_id=source_event_id,
    )


def timer_task_and_alert(
    rules: Rules,
    *,
    timer: str,
    subject: str,
    key: str,
    due: datetime,
    now: datetime,
    department: str,
    kind: str,
    severity: Severity,
    title: str,
    queue: Queue,
    shipment_id: str | None,
    customer: CustomerInfo | None,
    summary: str,
    details: dict[str, Any],
    due_at: datetime | None = None,
    alert_kind: str | None = None,
) -> tuple[list[TaskDecision], AlertDecision | None]:
    """The task (its key-account raise and follow-up included) and alert that something time-driven
    raises: a clock timer, or dispatch giving up on a notice. Ids derive from (timer, subject, key).

    `alert_kind` None: a task without an alert.
    """
    key_account = is_key_account(customer, rules)
    severity = severity.raised(rules.key_account.raise_severity_by) if key_account else severity
    source_id = f"clock:{timer}:{subject}:{key}"
    alert_id = stable_id("alert", timer, subject, key) if alert_kind else None
    customer_id = customer.customer_id if customer else None
    main = new_task(
        rules,
        task_id=stable_id("task", timer, subject, key),
        department=department,
        kind=kind,
        severity=severity,
        shipment_id=shipment_id,
        customer_id=customer_id,
        title=title,
        details={**details, "timer": timer, "due_at": due.isoformat(), "alert_id": alert_id},
        opened_at=due,
        due_at=due_at or due + rules.response_time(severity),
        source_event_id=source_id,
        rule=timer,
        alert_id=alert_id,
    )
    tasks = [main]
    if key_account:
        names = {
            "shipment_id": shipment_id or "-",
            "customer_id": customer_id or "-",
            "order_id": "-",
            "event_id": source_id,
        }
        tasks.append(key_account_follow_up(main, rules, names, source_id, timer))
    if alert_kind is None or alert_id is None:
        return tasks, None
    alert = trusted(
        Alert,
        alert_id=alert_id,
        kind=AlertKind(alert_kind),
        severity=severity,
        rule=timer,
        shipment_id=shipment_id,
        customer_id=customer_id,
        summary=summary,
        task_id=main.task_id,
        source=trusted(TimerSource, timer=timer, due_at=due),
        created_at=now,
        due_at=main.due_at,
        level=None,
        escalated_to=None,
    )
    return tasks, AlertDecision(queue, alert)
