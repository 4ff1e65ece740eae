"""The three inbound messages of the contract (shipment.events, call.logs, carrier.updates)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationInfo, model_validator

from schemas.enums import (
    CallCategory,
    CallChannel,
    CarrierStatus,
    Direction,
    ExceptionCode,
    Priority,
    ShipmentEventType,
)
from schemas.types import EventId, Id, Latitude, Longitude, Notes, Reference, ShortText, SourceName, Timestamp, find_nul

CONTRACT_VERSION = 1
NUL_CHECKED = "nul_checked"  # validation context flag set by hub.core.decoding


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False, frozen=True)


class ExceptionInfo(_Part):
    code: ExceptionCode
    description: ShortText | None = None


class Location(_Part):
    code: ShortText | None = None
    city: ShortText | None = None
    lat: Latitude | None = None
    lon: Longitude | None = None


class Money(_Part):
    amount: float = Field(ge=0)
    currency: str = Field(min_length=3, max_length=3, pattern=r"^[A-Z]{3}$")


class ProofOfDelivery(_Part):
    signed_by: ShortText | None = None
    photo_url: ShortText | None = None


class InboundEvent(BaseModel):
    """Fields every inbound message carries. Unknown extra fields are kept."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, frozen=True)
    topic_key: ClassVar[str]

    event_id: EventId
    occurred_at: Timestamp
    source: SourceName
    schema_version: StrictInt = CONTRACT_VERSION

    @model_validator(mode="before")
    @classmethod
    def _no_nul_anywhere(cls, data: Any, info: ValidationInfo) -> Any:
        if info.context and info.context.get(NUL_CHECKED):
            return data  # the decoder saw no \u0000 escape in the raw JSON, the only way to spell NUL there
        where = find_nul(data)
        if where:
            raise ValueError(f"NUL character (U+0000) in {where}; no string may contain it")
        return data

    @model_validator(mode="after")
    def _supported_version(self) -> InboundEvent:
        if self.schema_version != CONTRACT_VERSION:
            raise ValueError(
                f"schema_version {self.schema_version} is not supported (this hub reads {CONTRACT_VERSION})"
            )
        return self

    @property
    def key(self) -> str:
        value: str = getattr(self, self.topic_key)
        return value


class ShipmentEvent(InboundEvent):
    """`shipment.events`, keyed by shipment_id: warehouse systems and the logistics centre."""

    topic_key: ClassVar[str] = "shipment_id"

    shipment_id: Id
    customer_id: Id
    order_id: Id | None = None
    type: ShipmentEventType
    exception: ExceptionInfo | None = None
    priority: Priority = Priority.NORMAL
    promised_delivery_at: Timestamp | None = None
    carrier_id: Id | None = None
    location: Location | None = None
    declared_value: Money | None = None
    attributes: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _exception_needs_details(self) -> ShipmentEvent:
        if self.type is ShipmentEventType.EXCEPTION and self.exception is None:
            raise ValueError("type 'exception' needs an 'exception' object {code, description}")
        return self


class CallLog(InboundEvent):
    """`call.logs`, keyed by customer_id: call centre, e-mail and chat desk."""

    topic_key: ClassVar[str] = "customer_id"

    call_id: Id
    customer_id: Id
    shipment_id: Id | None = None
    order_id: Id | None = None
    direction: Direction
    channel: CallChannel
    category: CallCategory
    agent_id: Id | None = None
    duration_s: StrictInt | None = Field(None, ge=0, le=10_000_000)
    caller_phone: ShortText | None = Field(None, description="Personal data: never logged in clear")
    satisfaction_score: StrictInt | None = Field(None, ge=1, le=5)
    requested_deadline: Timestamp | None = None
    notes: Notes | None = None
    reference: Reference | None = None  # a survey answer: the notification_id of the survey it answers


class CarrierUpdate(InboundEvent):
    """`carrier.updates`, keyed by shipment_id: carriers."""

    topic_key: ClassVar[str] = "shipment_id"

    carrier_id: Id
    carrier_tracking_no: Reference
    shipment_id: Id
    status: CarrierStatus
    raw_code: ShortText | None = None
    raw_description: ShortText | None = None
    eta: Timestamp | None = None
    exception_code: ExceptionCode | None = None
    location: Location | None = None
    proof_of_delivery: ProofOfDelivery | None = None


AnyInbound = ShipmentEvent | CallLog | CarrierUpdate
