"""What a privacy erasure (`hub customers erase`) leaves of a stored event: its facts, and nothing else.

An inbound payload is kept as received, unknown fields included. Erasing keeps only the fields of
the contract that are facts about a shipment or a contact (ids, types, statuses, times, codes,
amounts, the city) and drops everything else: personal data (`caller_phone`,
`proof_of_delivery.signed_by`), free text (`notes`, `exception.description`, `raw_description`),
free-form `attributes`, exact coordinates, and every field the contract does not define, since
nobody can say what those hold. Reports and the tracking sheet read only facts, so they still add up.
"""

from __future__ import annotations

from typing import Any

ERASED = "[erased: privacy request]"  # stands in for texts that cannot simply be dropped (bodies, errors)

# Top-level fields of the three inbound streams that are facts (schemas/inbound.py).
EVENT_FACTS = frozenset(
    {
        # every stream
        "event_id",
        "occurred_at",
        "source",
        "schema_version",
        # shipment.events
        "shipment_id",
        "customer_id",
        "order_id",
        "type",
        "priority",
        "promised_delivery_at",
        "carrier_id",
        "declared_value",
        # call.logs
        "call_id",
        "direction",
        "channel",
        "category",
        "agent_id",
        "duration_s",
        "satisfaction_score",
        "requested_deadline",
        "reference",
        # carrier.updates
        "carrier_tracking_no",
        "status",
        "raw_code",
        "eta",
        "exception_code",
    }
)
# Objects kept with some of their fields only.
NESTED_FACTS = {
    "exception": frozenset({"code"}),
    "location": frozenset({"code", "city"}),
    "declared_value": frozenset({"amount", "currency"}),
}
# What the hub itself writes into a task's details that can quote the customer (a call-back's
# script with their name, a failed notice's error with their address).
TASK_DETAIL_TEXTS = ("script", "error")


def erase_payload(payload: dict[str, Any]) -> dict[str, Any]:
    """The payload's facts only. Erasing twice gives the same result as once."""
    kept: dict[str, Any] = {}
    for name, value in payload.items():
        if name in NESTED_FACTS:
            if isinstance(value, dict):
                kept[name] = {k: v for k, v in value.items() if k in NESTED_FACTS[name]}
        elif name in EVENT_FACTS and not isinstance(value, dict | list):
            kept[name] = value
    return kept


def erase_task_details(details: dict[str, Any]) -> dict[str, Any]:
    """A task's details with the texts that may quote the customer replaced."""
    return {k: (ERASED if k in TASK_DETAIL_TEXTS and v is not None else v) for k, v in details.items()}
