"""What the hub publishes: handler-queue alerts and dead-letter headers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, ClassVar

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer
from pydantic.fields import ComputedFieldInfo, FieldInfo

from schemas.enums import AlertKind, DeadLetterReason, Severity
from schemas.types import WrittenTimestamp


class AlertSource(BaseModel):
    """The inbound record that raised the alert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str = Field(description="The inbound topic of the record.")
    partition: int = Field(description="Its partition.")
    offset: int = Field(description="Its offset.")
    event_id: str = Field(description="Its `event_id`.")


class TimerSource(BaseModel):
    """The clock's timer that raised the alert, and the moment it was due."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timer: str = Field(description="The timer: `sla_warning`, `sla_breach`, `stale_shipment`, `delivery_overdue`, ...")
    due_at: WrittenTimestamp = Field(description="The moment the timer was due (not when a tick noticed it).")


class EscalationTarget(StrEnum):
    """Who an SLA breach is escalated to: level 1 the supervisor, level 2 the manager."""

    SUPERVISOR = "supervisor"
    MANAGER = "manager"


_SLA_BREACH = AlertKind.SLA_BREACH.value
_ONLY_ON_BREACH = ("level", "escalated_to")


class Alert(BaseModel):
    """One message on a handler queue (`alerts.*`), keyed by shipment_id, else customer_id.

    `alert_id` is derived from the source event and the rule (or the timer, subject and level),
    so a re-sent alert is identical to the first copy and consumers can drop duplicates.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        json_schema_extra={
            # level and escalated_to: on every sla_breach alert, on no other
            "if": {"properties": {"kind": {"const": _SLA_BREACH}}, "required": ["kind"]},
            "then": {"required": list(_ONLY_ON_BREACH)},
            "else": {"not": {"anyOf": [{"required": [name]} for name in _ONLY_ON_BREACH]}},
            # Real alerts: the schema examples of the inbound topics routed by the default rules, and
            # the clock's timers (tests/test_contract_kit.py routes them again and compares).
            "examples": [
                {
                    "alert_id": "3f0fe577-6c78-57ec-9bce-7cbe937ad95c",
                    "kind": "damage",
                    "severity": "P1",
                    "rule": "damage",
                    "shipment_id": "SF1400123456790",
                    "customer_id": "CUST-00042",
                    "summary": "damage: shipment SF1400123456790 (shipment exception/damaged, from lc-sz-02)",
                    "task_id": "931481cf-9070-501f-9675-ead0de61f9be",
                    "source": {
                        "topic": "shipment.events",
                        "partition": 3,
                        "offset": 18211,
                        "event_id": "0b6f3c1e-8a51-4d6e-9f0a-2c7d1e5b9a03",
                    },
                    "created_at": "2026-11-28T02:05:01.200000Z",
                    "due_at": "2026-11-28T04:05:00Z",
                },
                {
                    "alert_id": "a97e1b0f-a463-51d8-a5c7-44196bffed52",
                    "kind": "stale_shipment",
                    "severity": "P3",
                    "rule": "stale_shipment",
                    "shipment_id": "YT7700112233",
                    "customer_id": "CUST-00105",
                    "summary": "stale shipment: shipment YT7700112233 "
                    "(no movement since 2026-11-27T15:40:00+00:00 (in_transit))",
                    "task_id": "50654560-e87b-5f83-a249-c2652043d085",
                    "source": {"timer": "stale_shipment", "due_at": "2026-11-29T15:40:00Z"},
                    "created_at": "2026-11-29T15:45:00Z",
                    "due_at": "2026-11-30T15:40:00Z",
                },
                {
                    "alert_id": "2cf6fcbf-6371-5ecc-87de-047649dd519b",
                    "kind": "urgent_order",
                    "severity": "P1",
                    "rule": "urgent_order",
                    "shipment_id": "SF1400123456790",
                    "customer_id": "CUST-00042",
                    "summary": "urgent order: shipment SF1400123456790 (shipment created, from wms-sh-01)",
                    "task_id": "de5e14ed-9661-5c9c-8f98-e9042a643ced",
                    "source": {
                        "topic": "shipment.events",
                        "partition": 3,
                        "offset": 18190,
                        "event_id": "0b6f3c1e-8a51-4d6e-9f0a-2c7d1e5b9a02",
                    },
                    "created_at": "2026-11-27T09:31:13.450000+08:00",
                    "due_at": "2026-11-27T11:31:12.250000+08:00",
                },
                {
                    "alert_id": "7e9cc884-aa68-5448-abd2-cbba60ef04a6",
                    "kind": "urgent_order",
                    "severity": "P1",
                    "rule": "urgent_order",
                    "shipment_id": None,
                    "customer_id": "CUST-00077",
                    "summary": "urgent order: customer CUST-00077 (call urgent_order, from chat-desk-01)",
                    "task_id": "0d262fdf-b7d5-5e7a-bbc3-bc174753b4b8",
                    "source": {
                        "topic": "call.logs",
                        "partition": 4,
                        "offset": 77131,
                        "event_id": "c7a1d2e3-0000-4b5c-8d9e-0f1a2b3c4d02",
                    },
                    "created_at": "2026-11-28T11:00:01.200000+08:00",
                    "due_at": "2026-11-28T12:30:00+08:00",
                },
                {
                    "alert_id": "d9cce3e0-f09f-536f-9869-0967eb778e01",
                    "kind": "complaint",
                    "severity": "P2",
                    "rule": "complaint",
                    "shipment_id": "SF1400123456790",
                    "customer_id": "CUST-00042",
                    "summary": "complaint: shipment SF1400123456790 (call complaint, from cc-shanghai)",
                    "task_id": "731dc193-6e4a-55d7-ab4d-55e52512ff85",
                    "source": {
                        "topic": "call.logs",
                        "partition": 1,
                        "offset": 77120,
                        "event_id": "c7a1d2e3-0000-4b5c-8d9e-0f1a2b3c4d01",
                    },
                    "created_at": "2026-11-28T10:15:01.200000+08:00",
                    "due_at": "2026-11-28T18:15:00+08:00",
                },
                {
                    "alert_id": "0fec346a-b67c-52d9-90a7-2e18eb1466a3",
                    "kind": "repeat_contact",
                    "severity": "P2",
                    "rule": "repeat_contact",
                    "shipment_id": "SF1400123456790",
                    "customer_id": "CUST-00042",
                    "summary": "repeat contact: shipment SF1400123456790 (call query, from cc-shanghai)",
                    "task_id": "b0ee0619-274d-5bc9-9842-9d1a59853c74",
                    "source": {
                        "topic": "call.logs",
                        "partition": 1,
                        "offset": 77304,
                        "event_id": "c7a1d2e3-0000-4b5c-8d9e-0f1a2b3c4d05",
                    },
                    "created_at": "2026-11-28T16:40:00.800000+08:00",
                    "due_at": "2026-11-29T00:40:00+08:00",
                },
                {
                    "alert_id": "9e95ea3f-e9bd-5500-8da1-0aa019a75021",
                    "kind": "sla_breach",
                    "severity": "P1",
                    "rule": "sla_breach",
                    "shipment_id": "SF1400123456790",
                    "customer_id": "CUST-00042",
                    "summary": "complaint task breached, escalated to supervisor: "
                    "shipment SF1400123456790 (complaints)",
                    "task_id": "5b0e6c1d-3f2a-5e4b-9c8d-7a6b5c4d3e21",
                    "source": {"timer": "sla_breach", "due_at": "2026-11-28T10:15:00Z"},
                    "created_at": "2026-11-28T12:00:00Z",
                    "due_at": "2026-11-28T10:15:00Z",
                    "level": 1,
                    "escalated_to": "supervisor",
                },
                {
                    "alert_id": "b393fcdb-7bc6-57f8-af81-c90eeffcfa3f",
                    "kind": "sla_warning",
                    "severity": "P2",
                    "rule": "sla_warning",
                    "shipment_id": "SF1400123456790",
                    "customer_id": "CUST-00042",
                    "summary": "complaint task due soon: shipment SF1400123456790 (complaints)",
                    "task_id": "5b0e6c1d-3f2a-5e4b-9c8d-7a6b5c4d3e21",
                    "source": {"timer": "sla_warning", "due_at": "2026-11-28T08:15:00Z"},
                    "created_at": "2026-11-28T09:15:00Z",
                    "due_at": "2026-11-28T10:15:00Z",
                },
            ],
        },
    )

    alert_id: str = Field(
        description="Deterministic: the same source event and rule (or timer, subject and level) give the "
        "same id. De-duplicate by it."
    )
    kind: AlertKind = Field(description="What the alert is about.")
    severity: Severity = Field(description="P1 (highest) to P4; a key account's is raised one level.")
    rule: str = Field(description="The id of the rule in the rules file, or the clock's timer, that raised it.")
    shipment_id: str | None = Field(description="The shipment, if the alert is about one (then also the key).")
    customer_id: str | None = Field(description="The customer, if known (a carrier-first shipment has none yet).")
    summary: str = Field(description="One line for the ops team; no personal data.")
    task_id: str = Field(description="The coordination task opened for it (the main task).")
    source: AlertSource | TimerSource = Field(
        description="What raised it: an inbound record, or a clock timer and the moment it was due."
    )
    created_at: WrittenTimestamp = Field(
        description="When the hub raised it (a tick's time for the clock); a re-sent alert keeps it."
    )
    due_at: WrittenTimestamp = Field(description="When its task is due.")
    # sla_breach only, absent from every other alert: 1 (supervisor) or 2 (manager)
    level: int | None = Field(
        None,
        ge=1,
        le=2,
        exclude_if=lambda v: v is None,
        description="`sla_breach` only: 1 (escalated to the supervisor) or 2 (to the manager). Absent otherwise.",
    )
    escalated_to: EscalationTarget | None = Field(
        None, exclude_if=lambda v: v is None, description="`sla_breach` only: who it is escalated to."
    )

    @property
    def key(self) -> str | None:
        return self.shipment_id or self.customer_id


def _header_name(name: str, field: FieldInfo | ComputedFieldInfo) -> str:
    return (field.serialization_alias if isinstance(field, FieldInfo) else None) or name


_Number = Annotated[int, PlainSerializer(str, return_type=str, when_used="json")]  # header values are text


def _utc_header(value: datetime) -> str:
    return value.isoformat().replace("+00:00", "Z")


class DeadLetterHeaders(BaseModel):
    """Headers added to a dead letter; the original key, value and headers stay untouched.

    Names mirror Kafka Connect's `__connect.errors.*` context headers under a `hub.` prefix. Header
    values are UTF-8 text. The record also keeps every header it arrived with, byte for byte.
    """

    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        field_title_generator=_header_name,
        json_schema_extra={
            "additionalProperties": {"description": "A header the record arrived with, kept byte for byte."},
            "examples": [
                {
                    "hub.errors.reason": "validation_error",
                    "hub.errors.class": "ValidationError",
                    "hub.errors.message": "ShipmentEvent: type: Input should be 'created', 'picked', 'packed', "
                    "'dispatched', 'in_transit', 'out_for_delivery', 'delivered', 'delivery_failed', 'returned', "
                    "'cancelled' or 'exception'",
                    "hub.errors.topic": "shipment.events",
                    "hub.errors.partition": "2",
                    "hub.errors.offset": "48117",
                    "hub.errors.timestamp": "2026-11-28T02:06:10.503000Z",
                },
                {
                    "hub.errors.reason": "invalid_json",
                    "hub.errors.class": "JSONDecodeError",
                    "hub.errors.message": "value is not JSON: unexpected character, expected a JSON value: "
                    "line 1 column 163 (char 162)",
                    "hub.errors.topic": "carrier.updates",
                    "hub.errors.partition": "0",
                    "hub.errors.offset": "9921",
                    "hub.errors.timestamp": "2026-11-28T02:07:44Z",
                },
            ],
        },
    )

    reason: DeadLetterReason = Field(
        serialization_alias="hub.errors.reason", description="Why the record could not be processed."
    )
    error_class: str = Field(
        serialization_alias="hub.errors.class",
        description="The kind of error, an identifier such as `ValidationError` or `JSONDecodeError`.",
    )
    message: str = Field(
        serialization_alias="hub.errors.message",
        description="What was wrong, readable: field names and rules, never the input's values (no personal "
        "data). At most 1,000 characters.",
    )
    topic: str = Field(serialization_alias="hub.errors.topic", description="The topic the record was read from.")
    partition: _Number = Field(
        serialization_alias="hub.errors.partition",
        description="Its partition, in decimal.",
        json_schema_extra={"pattern": "^[0-9]+$"},
    )
    offset: _Number = Field(
        serialization_alias="hub.errors.offset",
        description="Its offset, in decimal.",
        json_schema_extra={"pattern": "^[0-9]+$"},
    )
    timestamp: Annotated[WrittenTimestamp, PlainSerializer(_utc_header, return_type=str, when_used="json")] = Field(
        serialization_alias="hub.errors.timestamp",
        description="When the hub dead-lettered it, RFC 3339 in UTC.",
    )

    HEADER_PREFIX: ClassVar[str] = "hub.errors."

    def to_kafka(self) -> list[tuple[str, bytes]]:
        """The headers as the hub writes them: the JSON Schema's names and values, UTF-8."""
        return [(name, value.encode()) for name, value in self.model_dump(mode="json", by_alias=True).items()]

    @classmethod
    def from_kafka(cls, headers: list[tuple[str, bytes]]) -> DeadLetterHeaders:
        found = {k.removeprefix(cls.HEADER_PREFIX): v.decode() for k, v in headers if k.startswith(cls.HEADER_PREFIX)}
        return cls(
            reason=found["reason"],
            error_class=found["class"],
            message=found["message"],
            topic=found["topic"],
            partition=int(found["partition"]),
            offset=int(found["offset"]),
            timestamp=found["timestamp"],
        )
