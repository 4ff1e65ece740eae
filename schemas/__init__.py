"""The hub's public contract (../shared/spec/CONTRACT.md) as pydantic v2 models."""

from schemas.customers import Customer
from schemas.inbound import CallLog, CarrierUpdate, InboundEvent, ShipmentEvent
from schemas.outbound import Alert, AlertSource, DeadLetterHeaders

__all__ = [
    "Alert",
    "AlertSource",
    "CallLog",
    "CarrierUpdate",
    "Customer",
    "DeadLetterHeaders",
    "InboundEvent",
    "ShipmentEvent",
]
