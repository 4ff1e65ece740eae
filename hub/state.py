"""What the hub knows before it decides: the tracking sheet, the customer, recent contacts.

Plain immutable values: the store loads them, routing reads them and returns new ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from datetime import datetime

from schemas.enums import CustomerTier, Language, NotificationChannel, ShipmentEventType


@dataclass(frozen=True, slots=True)
class ShipmentSheet:
    """One row of `shipments`: the latest known facts of a shipment."""

    shipment_id: str
    customer_id: str | None = None
    order_id: str | None = None
    status: ShipmentEventType | None = None
    last_event_at: datetime | None = None
    promised_delivery_at: datetime | None = None
    eta: datetime | None = None
    eta_reported_at: datetime | None = None
    eta_alerted: bool = False
    carrier_id: str | None = None
    priority: str | None = None
    notified_milestones: frozenset[str] = frozenset()
    repeat_contact_fired: tuple[datetime, ...] = ()

    def evolve(self, **changes: object) -> "ShipmentSheet":
        """A copy with some facts changed (dataclasses.replace, without its per-call introspection:
        routing evolves a sheet several times per event on the hot path)."""
        new = object.__new__(ShipmentSheet)
        for name in _SHEET_FIELDS:
            object.__setattr__(new, name, changes[name] if name in changes else getattr(self, name))
        return new

    def is_late(self, occurred_at: datetime) -> bool:
        """An event older than the sheet's latest status never moves it backwards."""
        return self.last_event_at is not None and occurred_at < self.last_event_at


_SHEET_FIELDS = tuple(f.name for f in fields(ShipmentSheet))


@dataclass(frozen=True, slots=True)
class CustomerInfo:
    customer_id: str
    tier: CustomerTier = CustomerTier.STANDARD
    language: Language = Language.ZH
    preferred_channel: NotificationChannel = NotificationChannel.SMS


@dataclass(frozen=True, slots=True)
class Known:
    """Everything routing may consult for one event."""

    sheet: ShipmentSheet | None = None
    customer: CustomerInfo | None = None
    # occurred_at of earlier inbound query/complaint contacts about the event's shipment
    contacts: tuple[datetime, ...] = field(default_factory=tuple)
