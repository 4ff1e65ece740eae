"""What the hub knows before it decides: the tracking sheet, the customer, recent contacts.

Plain values: the store loads them, routing reads them and returns new ones (a sheet is
mutable only so routing can update the copy it returns, see ShipmentSheet).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, NamedTuple

from schemas.enums import CustomerTier, Language, NotificationChannel, Severity, ShipmentEventType


@dataclass(slots=True)
class ShipmentSheet:
    """One row of `shipments`: the latest known facts of a shipment.

    Mutable so routing can update its own working copy in place (`copy()` first, never the
    sheet it was given): copying a frozen dataclass for every changed fact cost ~7% of the hub.
    """

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
    # the clock's moments (hub/core/clock.py arms them; None: not armed, or fired)
    stale_at: datetime | None = None
    overdue_at: datetime | None = None
    survey_at: datetime | None = None

    def copy(self) -> ShipmentSheet:
        return ShipmentSheet(
            self.shipment_id,
            self.customer_id,
            self.order_id,
            self.status,
            self.last_event_at,
            self.promised_delivery_at,
            self.eta,
            self.eta_reported_at,
            self.eta_alerted,
            self.carrier_id,
            self.priority,
            self.notified_milestones,
            self.repeat_contact_fired,
            self.stale_at,
            self.overdue_at,
            self.survey_at,
        )

    def is_late(self, occurred_at: datetime) -> bool:
        """An event older than the sheet's latest status never moves it backwards."""
        return self.last_event_at is not None and occurred_at < self.last_event_at


@dataclass(frozen=True, slots=True)
class CustomerInfo:
    customer_id: str
    tier: CustomerTier = CustomerTier.STANDARD
    language: Language = Language.ZH
    preferred_channel: NotificationChannel = NotificationChannel.SMS


class OrphanTask(NamedTuple):
    """A task raised before its shipment's customer was known (a carrier update came first)."""

    task_id: str
    rule: str
    severity: Severity
    source_event_id: str
    occurred_at: datetime  # of the event that raised it
    details: dict[str, Any]
    active: bool  # open or in progress


class Known(NamedTuple):
    """Everything routing may consult for one event (a NamedTuple: built once per event)."""

    sheet: ShipmentSheet | None = None
    customer: CustomerInfo | None = None
    # occurred_at of earlier inbound query/complaint contacts about the event's shipment
    contacts: tuple[datetime, ...] = ()
    # the shipment's customerless tasks, loaded only while its sheet has no customer
    orphans: tuple[OrphanTask, ...] = ()
