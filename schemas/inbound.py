"""The three inbound messages of the contract (shipment.events, call.logs, carrier.updates).

Each field carries its description and each model its examples and cross-field rules, so the
JSON Schema exported from these models (`hub schema export`) says everything the hub enforces
that JSON Schema can say. docs/contract.md is the integrators' guide to them.
"""

from __future__ import annotations

import inspect
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict, Field, GetJsonSchemaHandler, StrictInt, ValidationInfo, model_validator
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from schemas.enums import (
    CallCategory,
    CallChannel,
    CarrierStatus,
    Direction,
    ExceptionCode,
    Priority,
    ShipmentEventType,
)
from schemas.types import (
    EventId,
    FreeForm,
    Id,
    Latitude,
    Longitude,
    Notes,
    Reference,
    ShortText,
    SourceName,
    Timestamp,
    find_nul,
    open_object_schema,
)

CONTRACT_VERSION = 1
NUL_CHECKED = "nul_checked"  # validation context flag set by hub.core.decoding

# What the hub refuses before it reads any field, which no JSON Schema can say (hub.core.decoding).
BEYOND_THE_SCHEMA = (
    "Before the fields are read, the hub also dead-letters a record whose value is over 1 MiB "
    "(reason `oversized`), is not UTF-8 (`undecodable`), is not strict JSON, e.g. NaN, Infinity or "
    "1e400 (`invalid_json`), or nests objects and arrays more than 64 levels deep (`validation_error`). "
    "Integers are written without a fraction: 1.0 is not an integer to the hub. "
    "A `schema_version` other than 1 is dead-lettered as `unsupported_version`, any other "
    "violation of this schema as `validation_error`."
)


def _inbound_schema(schema: dict[str, Any], cls: type[Any]) -> None:
    """The parts of an inbound message's JSON Schema that are not per field."""
    schema["description"] = f"{inspect.cleandoc(cls.__doc__ or '')}\n\n{BEYOND_THE_SCHEMA}"
    schema.update(getattr(cls, "schema_rules", {}))
    examples = getattr(cls, "schema_examples", ())
    if examples:
        schema["examples"] = list(examples)


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow", allow_inf_nan=False, frozen=True)

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return open_object_schema(core_schema, handler)  # unknown fields are kept, but hold no NUL either


class ExceptionInfo(_Part):
    """What went wrong with the shipment; required when `type` is `exception`."""

    code: ExceptionCode = Field(description="What kind of exception; decides the alert, task and notice.")
    description: ShortText | None = Field(None, description="Free text for the people who handle it.")


class Location(_Part):
    """Where the event happened."""

    code: ShortText | None = Field(None, description="The site's own code, e.g. a warehouse or hub code.")
    city: ShortText | None = Field(None, description="City name, any language.")
    lat: Latitude | None = Field(None, description="Latitude in degrees (WGS 84).")
    lon: Longitude | None = Field(None, description="Longitude in degrees (WGS 84).")


class Money(_Part):
    """An amount of money."""

    amount: float = Field(ge=0, description="The amount, not negative.")
    currency: str = Field(
        min_length=3, max_length=3, pattern=r"^[A-Z]{3}$", description="ISO 4217 code in capitals, e.g. CNY."
    )


class ProofOfDelivery(_Part):
    """Who took the parcel, as the carrier recorded it."""

    signed_by: ShortText | None = Field(None, description="Name of the person who signed. Personal data.")
    photo_url: ShortText | None = Field(None, description="Where the carrier keeps the delivery photo.")


class InboundEvent(BaseModel):
    """Fields every inbound message carries. Unknown extra fields are kept."""

    model_config = ConfigDict(extra="allow", allow_inf_nan=False, frozen=True, json_schema_extra=_inbound_schema)
    topic_key: ClassVar[str]
    schema_rules: ClassVar[dict[str, Any]] = {}  # cross-field rules, as JSON Schema (if/then)
    schema_examples: ClassVar[tuple[dict[str, Any], ...]] = ()

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        return open_object_schema(core_schema, handler)  # unknown fields are kept, but hold no NUL either

    event_id: EventId = Field(
        description="Unique per event across all three inbound topics (a UUID is recommended). "
        "The idempotency key: a re-published event has no second effect; the same id with "
        "different content, or on another topic, is dead-lettered as `conflicting_duplicate`."
    )
    occurred_at: Timestamp = Field(
        description="When it happened, RFC 3339 with an offset (Z or +-hh:mm); a naive time is invalid. "
        "The hub orders a shipment's facts by this, never by arrival."
    )
    source: SourceName = Field(description="The producing system, e.g. `wms-sh-01` or `carrier:SF`.")
    schema_version: StrictInt = Field(
        CONTRACT_VERSION,
        description="Contract version of this message. Absent means 1; any other integer is "
        "dead-lettered as `unsupported_version`.",
        json_schema_extra={"const": CONTRACT_VERSION},
    )

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
    schema_rules: ClassVar[dict[str, Any]] = {
        "if": {"properties": {"type": {"const": ShipmentEventType.EXCEPTION.value}}, "required": ["type"]},
        "then": {"required": ["exception"], "properties": {"exception": {"type": "object"}}},
    }
    schema_examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "event_id": "0b6f3c1e-8a51-4d6e-9f0a-2c7d1e5b9a02",
            "occurred_at": "2026-11-27T09:31:12.250+08:00",
            "source": "wms-sh-01",
            "shipment_id": "SF1400123456790",
            "customer_id": "CUST-00042",
            "order_id": "PO-2026-118833",
            "type": "created",
            "priority": "urgent",
            "promised_delivery_at": "2026-11-28T18:00:00+08:00",
            "carrier_id": "SF",
            "location": {"code": "SHA-WH-03", "city": "Shanghai", "lat": 31.2304, "lon": 121.4737},
            "declared_value": {"amount": 12800.5, "currency": "CNY"},
        },
        {
            "event_id": "0b6f3c1e-8a51-4d6e-9f0a-2c7d1e5b9a03",
            "occurred_at": "2026-11-28T02:05:00Z",
            "source": "lc-sz-02",
            "shipment_id": "SF1400123456790",
            "customer_id": "CUST-00042",
            "type": "exception",
            "exception": {"code": "damaged", "description": "Outer carton crushed at sorting"},
            "carrier_id": "SF",
            "location": {"code": "SZX-HUB-1", "city": "Shenzhen"},
        },
        {
            "event_id": "0b6f3c1e-8a51-4d6e-9f0a-2c7d1e5b9a04",
            "occurred_at": "2026-11-28T16:45:30-05:00",
            "source": "wms-us-nj-01",
            "shipment_id": "DHL-7781230045",
            "customer_id": "CUST-US-0007",
            "type": "delivered",
            "carrier_id": "DHL",
        },
    )

    shipment_id: Id = Field(description="The waybill number; also the Kafka key of the record.")
    customer_id: Id = Field(description="The customer the shipment belongs to.")
    order_id: Id | None = Field(None, description="The customer's order, if any.")
    type: ShipmentEventType = Field(description="What happened to the shipment.")
    exception: ExceptionInfo | None = Field(
        None, description="Required when `type` is `exception`; informational on any other type."
    )
    priority: Priority = Field(Priority.NORMAL, description="`urgent` on `created` raises an urgent-order alert.")
    promised_delivery_at: Timestamp | None = Field(
        None, description="The delivery promise (SLA); a carrier ETA later than this raises a delay alert."
    )
    carrier_id: Id | None = Field(None, description="The carrier that carries it, e.g. `SF`.")
    location: Location | None = Field(None, description="Where it happened.")
    declared_value: Money | None = Field(None, description="Declared value; attached to insurance claims.")
    attributes: FreeForm | None = Field(None, description="Free-form facts, kept with the event.")

    @model_validator(mode="after")
    def _exception_needs_details(self) -> ShipmentEvent:
        if self.type is ShipmentEventType.EXCEPTION and self.exception is None:
            raise ValueError("type 'exception' needs an 'exception' object {code, description}")
        return self


class CallLog(InboundEvent):
    """`call.logs`, keyed by customer_id: call centre, e-mail and chat desk."""

    topic_key: ClassVar[str] = "customer_id"
    schema_examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "event_id": "c7a1d2e3-0000-4b5c-8d9e-0f1a2b3c4d01",
            "occurred_at": "2026-11-28T10:15:00+08:00",
            "source": "cc-shanghai",
            "call_id": "CALL-20261128-000731",
            "customer_id": "CUST-00042",
            "shipment_id": "SF1400123456790",
            "direction": "inbound",
            "channel": "phone",
            "category": "complaint",
            "agent_id": "AG-118",
            "duration_s": 412,
            "caller_phone": "+86 138 0013 8000",
            "notes": "Customer reports a crushed carton.",
        },
        {
            "event_id": "c7a1d2e3-0000-4b5c-8d9e-0f1a2b3c4d02",
            "occurred_at": "2026-11-28T11:00:00+08:00",
            "source": "chat-desk-01",
            "call_id": "WX-88120931",
            "customer_id": "CUST-00077",
            "order_id": "PO-2026-120001",
            "direction": "inbound",
            "channel": "wechat",
            "category": "urgent_order",
            "requested_deadline": "2026-11-28T12:30:00+08:00",
            "notes": "Needs 20 cartons at the Pudong site before lunch.",
        },
        {
            "event_id": "c7a1d2e3-0000-4b5c-8d9e-0f1a2b3c4d03",
            "occurred_at": "2026-11-29T15:20:00Z",
            "source": "cc-survey-bot",
            "call_id": "SRV-552019",
            "customer_id": "CUST-US-0007",
            "shipment_id": "DHL-7781230045",
            "direction": "outbound",
            "channel": "email",
            "category": "survey",
            "satisfaction_score": 5,
        },
    )

    call_id: Id = Field(description="The contact's id in the call centre's system.")
    customer_id: Id = Field(description="Who called or was called; also the Kafka key of the record.")
    shipment_id: Id | None = Field(None, description="The shipment the contact is about, if any.")
    order_id: Id | None = Field(None, description="The order the contact is about, if any.")
    direction: Direction = Field(description="`inbound`: the customer reached us; `outbound`: we reached them.")
    channel: CallChannel = Field(description="How the contact happened.")
    category: CallCategory = Field(description="What the contact was about; decides the alert, task and notice.")
    agent_id: Id | None = Field(None, description="The agent who handled it.")
    duration_s: StrictInt | None = Field(None, ge=0, le=10_000_000, description="Length of the contact in seconds.")
    caller_phone: ShortText | None = Field(None, description="Personal data: never logged in clear.")
    satisfaction_score: StrictInt | None = Field(None, ge=1, le=5, description="Survey answer, 1 (worst) to 5.")
    requested_deadline: Timestamp | None = Field(
        None, description="For bookings and urgent orders: when the customer needs it."
    )
    notes: Notes | None = Field(None, description="Free text, up to 10,000 characters.")
    reference: Reference | None = Field(
        None, description="A survey answer: the notification_id of the survey it answers."
    )


class CarrierUpdate(InboundEvent):
    """`carrier.updates`, keyed by shipment_id: carriers."""

    topic_key: ClassVar[str] = "shipment_id"
    schema_examples: ClassVar[tuple[dict[str, Any], ...]] = (
        {
            "event_id": "sf-evt-0000000000000002",
            "occurred_at": "2026-11-27T23:40:00+08:00",
            "source": "carrier:SF",
            "carrier_id": "SF",
            "carrier_tracking_no": "SF1400123456790",
            "shipment_id": "SF1400123456790",
            "status": "arrived_at_hub",
            "raw_code": "30",
            "raw_description": "快件已到达【深圳转运中心】",
            "eta": "2026-11-29T12:00:00+08:00",
            "location": {"code": "SZX-HUB-1", "city": "Shenzhen", "lat": 22.5431, "lon": 114.0579},
        },
        {
            "event_id": "dhl-3c8a0b9e-4f6d-4a3b-8e2f-71c5d9a0e113",
            "occurred_at": "2026-11-28T16:44:00-05:00",
            "source": "carrier:DHL",
            "carrier_id": "DHL",
            "carrier_tracking_no": "7781230045",
            "shipment_id": "DHL-7781230045",
            "status": "delivered",
            "raw_code": "OK",
            "proof_of_delivery": {"signed_by": "J. SMITH", "photo_url": "https://pod.example.com/7781230045.jpg"},
        },
        {
            "event_id": "yto-20261128-000991",
            "occurred_at": "2026-11-28T08:00:00+08:00",
            "source": "carrier:YTO",
            "carrier_id": "YTO",
            "carrier_tracking_no": "YT7700112233",
            "shipment_id": "YT7700112233",
            "status": "exception",
            "exception_code": "customs_hold",
            "raw_code": "E31",
            "raw_description": "Held by customs for inspection",
        },
    )

    carrier_id: Id = Field(description="The carrier, e.g. `SF`.")
    carrier_tracking_no: Reference = Field(description="The carrier's own tracking number.")
    shipment_id: Id = Field(description="The hub's waybill number; also the Kafka key of the record.")
    status: CarrierStatus = Field(description="The carrier's status, in the contract's vocabulary.")
    raw_code: ShortText | None = Field(None, description="The carrier's own status code, kept for audit.")
    raw_description: ShortText | None = Field(None, description="The carrier's own status text, kept for audit.")
    eta: Timestamp | None = Field(
        None, description="The carrier's current estimated delivery; later than the promise raises a delay alert."
    )
    exception_code: ExceptionCode | None = Field(
        None,
        description="What went wrong: acted on with status `exception` (absent there counts as `other`), "
        "informational with any other status.",
    )
    location: Location | None = Field(None, description="Where the carrier saw the parcel.")
    proof_of_delivery: ProofOfDelivery | None = Field(None, description="With status `delivered`.")


AnyInbound = ShipmentEvent | CallLog | CarrierUpdate
