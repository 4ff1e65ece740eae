"""Every enumerated value of the contract, in one place.

Code compares against these members, never against string literals.
"""

from enum import StrEnum


class ShipmentEventType(StrEnum):
    """What happened to a shipment (`shipment.events` `type`); also the tracking sheet's status."""

    CREATED = "created"
    PICKED = "picked"
    PACKED = "packed"
    DISPATCHED = "dispatched"
    IN_TRANSIT = "in_transit"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    DELIVERY_FAILED = "delivery_failed"
    RETURNED = "returned"
    CANCELLED = "cancelled"
    EXCEPTION = "exception"


class ExceptionCode(StrEnum):
    """What went wrong, in both inbound streams' vocabulary (`exception.code`, `exception_code`)."""

    DAMAGED = "damaged"
    LOST = "lost"
    DELAYED = "delayed"
    ADDRESS_ISSUE = "address_issue"
    REFUSED = "refused"
    CUSTOMS_HOLD = "customs_hold"
    WEATHER = "weather"
    OTHER = "other"


class Priority(StrEnum):
    """A shipment's priority: `urgent` on `created` raises an urgent-order alert."""

    NORMAL = "normal"
    URGENT = "urgent"


class CarrierStatus(StrEnum):
    """A carrier's status (`carrier.updates` `status`); mapped onto the shipment vocabulary for the tracking sheet."""

    ACCEPTED = "accepted"
    IN_TRANSIT = "in_transit"
    ARRIVED_AT_HUB = "arrived_at_hub"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    ATTEMPT_FAILED = "attempt_failed"
    EXCEPTION = "exception"
    RETURNED_TO_SENDER = "returned_to_sender"


# The tracking sheet speaks the shipment.events vocabulary; carriers map onto it.
CARRIER_TO_SHIPMENT_STATUS: dict[CarrierStatus, ShipmentEventType] = {
    CarrierStatus.ACCEPTED: ShipmentEventType.DISPATCHED,
    CarrierStatus.IN_TRANSIT: ShipmentEventType.IN_TRANSIT,
    CarrierStatus.ARRIVED_AT_HUB: ShipmentEventType.IN_TRANSIT,
    CarrierStatus.OUT_FOR_DELIVERY: ShipmentEventType.OUT_FOR_DELIVERY,
    CarrierStatus.DELIVERED: ShipmentEventType.DELIVERED,
    CarrierStatus.ATTEMPT_FAILED: ShipmentEventType.DELIVERY_FAILED,
    CarrierStatus.EXCEPTION: ShipmentEventType.EXCEPTION,
    CarrierStatus.RETURNED_TO_SENDER: ShipmentEventType.RETURNED,
}


class Direction(StrEnum):
    """Who started the contact: `inbound`, the customer; `outbound`, the desk."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


class CallChannel(StrEnum):
    """How a contact happened."""

    PHONE = "phone"
    EMAIL = "email"
    CHAT = "chat"
    WECHAT = "wechat"


class CallCategory(StrEnum):
    """What a contact was about."""

    QUERY = "query"
    COMPLAINT = "complaint"
    BOOKING = "booking"
    URGENT_ORDER = "urgent_order"
    CLAIM = "claim"
    FEEDBACK = "feedback"
    SURVEY = "survey"


class Severity(StrEnum):
    """Alert and task severity, P1 (highest) to P4."""

    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"

    def raised(self, levels: int = 1) -> "Severity":
        """One level more urgent per step; P1 stays P1."""
        return _SEVERITIES[max(0, _SEVERITY_RANK[self] - levels)]


_SEVERITIES = tuple(Severity)  # most urgent first (a clock tick raises thousands)
_SEVERITY_RANK = {severity: rank for rank, severity in enumerate(_SEVERITIES)}


class AlertKind(StrEnum):
    """What an alert is about."""

    DAMAGE = "damage"
    LOSS = "loss"
    DELIVERY_PROBLEM = "delivery_problem"
    CUSTOMS_HOLD = "customs_hold"
    DELAY = "delay"
    URGENT_ORDER = "urgent_order"
    COMPLAINT = "complaint"
    CLAIM = "claim"
    REPEAT_CONTACT = "repeat_contact"
    # raised by the clock and by dispatch (contract 1.1)
    STALE_SHIPMENT = "stale_shipment"
    DELIVERY_OVERDUE = "delivery_overdue"
    LOW_SATISFACTION = "low_satisfaction"
    SLA_WARNING = "sla_warning"
    SLA_BREACH = "sla_breach"
    NOTIFICATION_FAILED = "notification_failed"


class Department(StrEnum):
    """The department a coordination task is for."""

    WAREHOUSE = "warehouse"
    CARRIER_LIAISON = "carrier_liaison"
    CLAIMS = "claims"
    COMPLAINTS = "complaints"
    KEY_ACCOUNTS = "key_accounts"
    DISPATCH = "dispatch"
    CALL_CENTRE = "call_centre"


class TaskStatus(StrEnum):
    """A coordination task's status."""

    OPEN = "open"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


class NotificationKind(StrEnum):
    """What a customer notification says."""

    EXCEPTION = "exception"
    DELIVERY_PROBLEM = "delivery_problem"
    DELAY = "delay"
    URGENT_ORDER_CONFIRMED = "urgent_order_confirmed"
    COMPLAINT_RECEIVED = "complaint_received"
    CLAIM_RECEIVED = "claim_received"
    DISPATCHED = "dispatched"
    OUT_FOR_DELIVERY = "out_for_delivery"
    DELIVERED = "delivered"
    # contract 1.1: surveys and reports
    SATISFACTION_SURVEY = "satisfaction_survey"
    MONTHLY_STATEMENT = "monthly_statement"


class NotificationChannel(StrEnum):
    """How a customer is notified."""

    SMS = "sms"
    EMAIL = "email"
    WECHAT = "wechat"
    PHONE = "phone"
    WEBHOOK = "webhook"


class NotificationStatus(StrEnum):
    """A customer notification's status (written as `pending`)."""

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"
    SUPPRESSED = "suppressed"


class Language(StrEnum):
    """A customer's language."""

    ZH = "zh"
    EN = "en"


class CreditRating(StrEnum):
    A = "A"
    B = "B"
    C = "C"
    D = "D"


class CustomerTier(StrEnum):
    """A customer's tier: `key` accounts get raised severity and a key-account task."""

    KEY = "key"
    STANDARD = "standard"


class DeadLetterReason(StrEnum):
    """Why a record went to the dead-letter topic (header `hub.errors.reason`)."""

    UNDECODABLE = "undecodable"
    INVALID_JSON = "invalid_json"
    VALIDATION_ERROR = "validation_error"
    CONFLICTING_DUPLICATE = "conflicting_duplicate"
    UNSUPPORTED_VERSION = "unsupported_version"
    OVERSIZED = "oversized"
    UNPROCESSABLE = "unprocessable"
