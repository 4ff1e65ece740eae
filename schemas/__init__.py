"""The hub's public contract as pydantic v2 models: the source of the JSON Schemas and the AsyncAPI
document in schemas/json/ (`hub schema export`). The guide for integrators is docs/contract.md."""

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
