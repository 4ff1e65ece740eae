"""Load and check the routing rules (YAML) and notification templates.

A bad file is refused at start with a message naming the file and line, so an operator
who edits `HUB_RULES_FILE` finds the mistake without reading a traceback.
"""

from __future__ import annotations

import string
from datetime import timedelta
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from hub.core.topics import Queue
from schemas.enums import (
    AlertKind,
    CallCategory,
    CarrierStatus,
    CustomerTier,
    Department,
    Direction,
    ExceptionCode,
    Language,
    NotificationKind,
    Severity,
    ShipmentEventType,
)
from schemas.inbound import CallLog, InboundEvent
from schemas.outbound import EscalationTarget

DEFAULT_RULES_FILE = Path(__file__).with_name("rules.yaml")
DEFAULT_TEMPLATES_FILE = Path(__file__).with_name("templates.yaml")

URGENT_CREATED = "shipment:urgent_created"
LOW_SCORE = "survey:low_score"
ETA_PAST_PROMISE = "eta_past_promise"
REPEAT_CONTACT = "repeat_contact"
TITLE_FIELDS = {"shipment_id", "customer_id", "order_id", "event_id"}
TEMPLATE_FIELDS = {"shipment_id", "order_id", "reference", "eta", "promised"}


def known_triggers() -> set[str]:
    """Every trigger name a rule may use."""
    names = {f"shipment:{t}" for t in ShipmentEventType} | {URGENT_CREATED, ETA_PAST_PROMISE, REPEAT_CONTACT, LOW_SCORE}
    names |= {f"carrier:{s}" for s in CarrierStatus}
    names |= {f"exception:{c}" for c in ExceptionCode}
    names |= {f"call:{c}" for c in CallCategory}
    return names


def _placeholders(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name is not None}


def _known_trigger(name: str) -> str:
    if name not in known_triggers():
        raise ValueError(f"unknown trigger {name!r}; see the list at the top of the default rules file")
    return name


KnownTrigger = Annotated[str, AfterValidator(_known_trigger)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class TaskSpec(_Strict):
    department: Department
    severity: Severity
    title: str
    due: Literal["response_time", "urgent_order"] = "response_time"
    attach_declared_value: bool = False

    @field_validator("title")
    @classmethod
    def _title_fields(cls, title: str) -> str:
        unknown = _placeholders(title) - TITLE_FIELDS
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; use {sorted(TITLE_FIELDS)}")
        return title


class Rule(_Strict):
    id: str = Field(pattern=r"^[a-z][a-z0-9_.-]{0,63}$")
    when: tuple[str, ...] = Field(min_length=1)
    queue: Queue
    kind: AlertKind
    task: TaskSpec
    notify: NotificationKind | None = None

    @field_validator("when")
    @classmethod
    def _known(cls, when: tuple[str, ...]) -> tuple[str, ...]:
        unknown = [t for t in when if t not in known_triggers()]
        if unknown:
            raise ValueError(f"unknown trigger(s) {unknown}; see the list at the top of the default rules file")
        return when


class KeyAccountTask(_Strict):
    department: Department
    kind: str
    title: str


class KeyAccount(_Strict):
    tier: CustomerTier = CustomerTier.KEY
    raise_severity_by: int = Field(1, ge=0, le=3)
    task: KeyAccountTask


class RepeatContact(_Strict):
    window_hours: float = Field(24, gt=0)
    categories: tuple[CallCategory, ...] = (CallCategory.QUERY, CallCategory.COMPLAINT)

    @property
    def window(self) -> timedelta:
        return timedelta(hours=self.window_hours)

    def counts(self, event: InboundEvent) -> bool:
        """Is this event a contact the rule counts: an inbound call about a shipment, in one of its categories?"""
        return (
            isinstance(event, CallLog)
            and event.shipment_id is not None
            and event.direction is Direction.INBOUND
            and event.category in self.categories
        )


TERMINAL_STATUSES = frozenset({ShipmentEventType.DELIVERED, ShipmentEventType.RETURNED, ShipmentEventType.CANCELLED})
CLOCK_TITLE_FIELDS = {"shipment_id", "customer_id", "order_id", "period"}


class ClockTask(_Strict):
    """The task a timer opens (stale shipment, overdue delivery, key-account review)."""

    department: Department
    severity: Severity
    title: str
    due_days: float | None = Field(None, gt=0)  # a fixed due time; default: the severity's response time

    @field_validator("title")
    @classmethod
    def _title_fields(cls, title: str) -> str:
        unknown = _placeholders(title) - CLOCK_TITLE_FIELDS
        if unknown:
            raise ValueError(f"unknown placeholder(s) {sorted(unknown)}; use {sorted(CLOCK_TITLE_FIELDS)}")
        return title


class Escalation(_Strict):
    """What an sla_breach level does to its task: who it goes to and how urgent it becomes."""

    escalated_to: EscalationTarget
    raise_severity_by: int = Field(0, ge=0, le=3)
    severity: Severity | None = None  # set the severity outright (level 2: P1)


class Sla(_Strict):
    warning_at: float = Field(0.75, gt=0, lt=1)  # share of the task's window when sla_warning fires
    level_2_after_windows: float = Field(1.0, gt=0)  # level 2 fires this many windows after due_at
    level_1: Escalation = Escalation(escalated_to=EscalationTarget.SUPERVISOR, raise_severity_by=1)
    level_2: Escalation = Escalation(escalated_to=EscalationTarget.MANAGER, severity=Severity.P1)


class Clock(_Strict):
    sla: Sla = Sla()
    stale_after_hours: dict[ShipmentEventType, float]
    stale_shipment: ClockTask
    delivery_overdue: ClockTask
    delivery_overdue_notify: NotificationKind | None = NotificationKind.DELAY
    key_account_review: ClockTask

    @field_validator("stale_after_hours")
    @classmethod
    def _every_moving_status(cls, hours: dict[ShipmentEventType, float]) -> dict[ShipmentEventType, float]:
        missing = sorted(s.value for s in ShipmentEventType if s not in TERMINAL_STATUSES and s not in hours)
        terminal = sorted(s.value for s in hours if s in TERMINAL_STATUSES)
        if missing:
            raise ValueError(f"stale_after_hours misses {missing}")
        if terminal:
            raise ValueError(f"{terminal} are terminal: a delivered, returned or cancelled shipment is never stale")
        if any(h <= 0 for h in hours.values()):
            raise ValueError("stale_after_hours must all be above 0")
        return hours

    @cached_property
    def stale_after(self) -> dict[ShipmentEventType, timedelta]:
        return {status: timedelta(hours=hours) for status, hours in self.stale_after_hours.items()}


class Surveys(_Strict):
    """When satisfaction surveys go out and what a low score is (contract 1.1, "Surveys")."""

    complaint_follow_up_hours: float = Field(24, ge=0)  # after a complaints task is done
    delivery_survey_hours: float = Field(24, ge=0)  # after delivery
    at_most_one_per_days: float = Field(30, ge=0)  # per customer, for delivery surveys
    low_score_at_most: int = Field(2, ge=1, le=4)  # an answer at or below raises low_satisfaction
    follow_up_visit: ClockTask  # a key account's visit after its complaint is resolved

    @property
    def follow_up_delay(self) -> timedelta:
        return timedelta(hours=self.complaint_follow_up_hours)

    @property
    def survey_delay(self) -> timedelta:
        return timedelta(hours=self.delivery_survey_hours)

    @property
    def quiet_period(self) -> timedelta:
        return timedelta(days=self.at_most_one_per_days)


class Rules(_Strict):
    version: Literal[1] = 1
    response_hours: dict[Severity, float]
    key_account: KeyAccount
    repeat_contact: RepeatContact = RepeatContact()
    rules: tuple[Rule, ...] = Field(min_length=1)
    milestones: dict[NotificationKind, tuple[KnownTrigger, ...]]
    clock: Clock
    surveys: Surveys
    templates: dict[NotificationKind, dict[Language, str]] = {}

    @field_validator("response_hours")
    @classmethod
    def _every_severity(cls, hours: dict[Severity, float]) -> dict[Severity, float]:
        missing = [s.value for s in Severity if s not in hours]
        if missing:
            raise ValueError(f"response_hours misses {missing}")
        return hours

    @model_validator(mode="after")
    def _consistent(self) -> Rules:
        ids = [r.id for r in self.rules]
        dupes = {i for i in ids if ids.count(i) > 1}
        if dupes:
            raise ValueError(f"rule ids must be unique; repeated: {sorted(dupes)}")
        return self

    def response_time(self, severity: Severity) -> timedelta:
        return self._response_times[severity]

    # Lookups routing makes for every event, computed once per rules file.
    @cached_property
    def _response_times(self) -> dict[Severity, timedelta]:
        return {severity: timedelta(hours=hours) for severity, hours in self.response_hours.items()}

    @cached_property
    def rules_by_trigger(self) -> dict[str, tuple[int, ...]]:
        """trigger -> indexes (file order) of the rules it matches."""
        found: dict[str, list[int]] = {}
        for index, rule in enumerate(self.rules):
            for trigger in rule.when:
                found.setdefault(trigger, []).append(index)
        return {trigger: tuple(indexes) for trigger, indexes in found.items()}

    @cached_property
    def milestone_by_trigger(self) -> dict[str, NotificationKind]:
        """trigger -> milestone kind; the first milestone listed wins, as in the file."""
        found: dict[str, NotificationKind] = {}
        for kind, triggers in self.milestones.items():
            for trigger in triggers:
                found.setdefault(trigger, kind)
        return found


class RulesError(ValueError):
    """A rules or templates file that cannot be used; the message names the file and line."""


def load_rules(path: Path | None = None, templates_path: Path | None = None) -> Rules:
    path = path or DEFAULT_RULES_FILE
    data, lines = _read_yaml(path)
    templates, template_lines = _read_yaml(templates_path or DEFAULT_TEMPLATES_FILE)
    _check_templates(templates, template_lines, templates_path or DEFAULT_TEMPLATES_FILE)
    if not isinstance(data, dict):
        raise RulesError(
            f"{path}: line 1: the rules file must be a mapping (see the default {DEFAULT_RULES_FILE.name})"
        )
    _check_unique_ids(data, lines, path)
    try:
        return Rules.model_validate({**data, "templates": templates})
    except ValidationError as exc:
        error = exc.errors(include_url=False, include_input=False)[0]
        line = _line_for(lines, error["loc"])
        where = ".".join(str(p) for p in error["loc"]) or "(top level)"
        raise RulesError(f"{path}: line {line}: {where}: {error['msg']}") from None


def _check_unique_ids(data: dict[str, Any], lines: dict[tuple[str | int, ...], int], path: Path) -> None:
    seen: set[str] = set()
    rules = data.get("rules")
    for index, rule in enumerate(rules if isinstance(rules, list) else []):
        rule_id = rule.get("id") if isinstance(rule, dict) else None
        if isinstance(rule_id, str) and rule_id in seen:
            line = _line_for(lines, ("rules", index, "id"))
            raise RulesError(
                f"{path}: line {line}: rules.{index}.id: rule id {rule_id!r} is already used; ids must be unique"
            )
        if isinstance(rule_id, str):
            seen.add(rule_id)


def _check_templates(templates: Any, lines: dict[tuple[str | int, ...], int], path: Path) -> None:
    if not isinstance(templates, dict):
        raise RulesError(f"{path}: line 1: templates must map a notification kind to zh/en texts")
    for kind in NotificationKind:
        for language in Language:
            text = (
                templates.get(kind.value, {}).get(language.value)
                if isinstance(templates.get(kind.value), dict)
                else None
            )
            if not isinstance(text, str):
                line = _line_for(lines, (kind.value,))
                raise RulesError(
                    f"{path}: line {line}: missing '{language.value}' text for notification kind '{kind.value}'"
                )
            unknown = _placeholders(text) - TEMPLATE_FIELDS
            if unknown:
                line = _line_for(lines, (kind.value, language.value))
                raise RulesError(
                    f"{path}: line {line}: unknown placeholder(s) {sorted(unknown)}; use {sorted(TEMPLATE_FIELDS)}"
                )


def _read_yaml(path: Path) -> tuple[Any, dict[tuple[str | int, ...], int]]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise RulesError(f"{path}: cannot read the file ({exc.strerror}); check HUB_RULES_FILE") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark else "?"
        raise RulesError(f"{path}: line {line}: not valid YAML: {getattr(exc, 'problem', exc)}") from None
    lines: dict[tuple[str | int, ...], int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return data, lines


def _index_lines(node: yaml.Node, path: tuple[str | int, ...], lines: dict[tuple[str | int, ...], int]) -> None:
    lines[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            child = (*path, key.value)
            lines[child] = key.start_mark.line + 1
            _index_lines(value, child, lines)
            lines[child] = key.start_mark.line + 1
    elif isinstance(node, yaml.SequenceNode):
        for index, item in enumerate(node.value):
            _index_lines(item, (*path, index), lines)


def _line_for(lines: dict[tuple[str | int, ...], int], loc: tuple[str | int, ...]) -> int | str:
    path = tuple(str(p) if not isinstance(p, int) else p for p in loc)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return lines.get((), "?")
