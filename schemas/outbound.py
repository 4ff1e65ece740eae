"""What the hub publishes: handler-queue alerts and dead-letter headers."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import BaseModel, ConfigDict, Field

from schemas.enums import AlertKind, DeadLetterReason, Severity


class AlertSource(BaseModel):
    """The inbound record that raised the alert."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str
    partition: int
    offset: int
    event_id: str


class TimerSource(BaseModel):
    """The clock's timer that raised the alert, and the moment it was due."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    timer: str
    due_at: datetime


class EscalationTarget(StrEnum):
    SUPERVISOR = "supervisor"
    MANAGER = "manager"


class Alert(BaseModel):
    """One message on a handler queue (`alerts.*`), keyed by shipment_id, else customer_id.

    `alert_id` is derived from the source event and the rule, so a re-sent alert is identical
    to the first copy and consumers can drop duplicates.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    alert_id: str
    kind: AlertKind
    severity: Severity
    rule: str
    shipment_id: str | None
    customer_id: str | None
    summary: str
    task_id: str
    source: AlertSource | TimerSource
    created_at: datetime
    due_at: datetime
    # sla_breach only, absent from every other alert: 1 (supervisor) or 2 (manager)
    level: int | None = Field(None, ge=1, le=2, exclude_if=lambda v: v is None)
    escalated_to: EscalationTarget | None = Field(None, exclude_if=lambda v: v is None)

    @property
    def key(self) -> str | None:
        return self.shipment_id or self.customer_id


class DeadLetterHeaders(BaseModel):
    """Headers added to a dead letter; the original key, value and headers stay untouched.

    Names mirror Kafka Connect's `__connect.errors.*` context headers under a `hub.` prefix.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    reason: DeadLetterReason
    error_class: str
    message: str
    topic: str
    partition: int
    offset: int
    timestamp: datetime

    HEADER_PREFIX: ClassVar[str] = "hub.errors."

    def to_kafka(self) -> list[tuple[str, bytes]]:
        fields = {
            "reason": self.reason.value,
            "class": self.error_class,
            "message": self.message,
            "topic": self.topic,
            "partition": str(self.partition),
            "offset": str(self.offset),
            "timestamp": self.timestamp.isoformat().replace("+00:00", "Z"),
        }
        return [(f"{self.HEADER_PREFIX}{name}", value.encode()) for name, value in fields.items()]

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
