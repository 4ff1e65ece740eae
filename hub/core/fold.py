"""Fold one batch of new events over what is known of their shipments: the batch's decisions.

Pure: the store loads a `KnownState`, calls `fold`, and writes what comes back. Each event is
routed against the state the events before it (in occurred_at order) left behind, so a batch
decides exactly what the same events would decide one batch each.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from hub.core.clock import arm_shipment
from hub.core.decoding import Accepted
from hub.core.outputs import NotificationDecision, SourceRef, TaskUpdate
from hub.core.routing import MILESTONE_RANK, Decision, customer_of, field_of, route_event
from hub.core.rules import Rules
from hub.core.state import CustomerInfo, Known, OrphanTask, ShipmentSheet
from schemas.inbound import InboundEvent


def shipment_of(event: InboundEvent) -> str | None:
    """The shipment an event is about (every inbound model declares shipment_id; a call may lack it)."""
    shipment_id: str | None = field_of(event, "shipment_id")
    return shipment_id


@dataclass
class KnownState:
    """What the store loaded for a batch, updated as the fold goes."""

    sheets: dict[str, ShipmentSheet]
    customers: dict[str, CustomerInfo]
    contacts: dict[str, list[datetime]]  # shipment -> occurred_at of earlier contacts about it
    orphans: dict[str, list[OrphanTask]] = field(default_factory=dict)  # shipment -> its customerless tasks


@dataclass
class BatchDecisions:
    """Everything a batch changes, for the store to write."""

    decisions: list[Decision] = field(default_factory=list)
    sheets: dict[str, ShipmentSheet] = field(default_factory=dict)  # changed sheets by shipment
    new_customers: dict[str, CustomerInfo] = field(default_factory=dict)
    adoptions: dict[str, str] = field(default_factory=dict)  # shipment -> customer its tasks now take

    @property
    def task_updates(self) -> list[TaskUpdate]:
        return [u for d in self.decisions for u in d.task_updates]


def fold(items: list[Accepted], state: KnownState, rules: Rules, now: datetime) -> BatchDecisions:
    """Route each event against the state left by the events before it (occurred_at order)."""
    out = BatchDecisions()
    arrival = {id(item): index for index, item in enumerate(items)}
    routed = sorted(items, key=lambda a: a.event.occurred_at)
    for item in routed:
        decision = route_event(item.event, _known(item.event, state), _source(item), rules, now)
        _remember(state, out, item.event, decision, rules)
        out.decisions.append(decision)
    out.decisions = _without_superseded_milestones(out.decisions, [arrival[id(item)] for item in routed], out)
    return out


def _without_superseded_milestones(
    decisions: list[Decision], arrived: list[int], out: BatchDecisions
) -> list[Decision]:
    """Drop a milestone notice when a later milestone of its shipment arrived before it in this batch.

    Routed in occurred_at order, a late `out_for_delivery` comes before the `delivered` that arrived
    ahead of it and would be notified; one event per batch, it would have been late and superseded.
    So a batch notifies exactly what its events would, arriving one at a time.
    """
    reached: dict[str, list[tuple[int, int]]] = {}  # shipment -> (arrival, rank) of its milestone notices
    for decision, index in zip(decisions, arrived, strict=True):
        for n in decision.notifications:
            if n.kind in MILESTONE_RANK and n.shipment_id is not None:
                reached.setdefault(n.shipment_id, []).append((index, MILESTONE_RANK[n.kind]))

    def superseded(n: NotificationDecision, index: int) -> bool:
        if n.kind not in MILESTONE_RANK or n.shipment_id is None:
            return False
        rank = MILESTONE_RANK[n.kind]
        return any(other < index and later > rank for other, later in reached[n.shipment_id])

    kept = []
    for decision, index in zip(decisions, arrived, strict=True):
        dropped = [n for n in decision.notifications if superseded(n, index)]
        if dropped:
            decision = decision._replace(notifications=tuple(n for n in decision.notifications if n not in dropped))
            for n in dropped:  # never notified: the sheet must not remember it as notified
                sheet = out.sheets[n.shipment_id or ""]
                sheet.notified_milestones = sheet.notified_milestones - {n.kind.value}
        kept.append(decision)
    return kept


def _known(event: InboundEvent, state: KnownState) -> Known:
    shipment_id = shipment_of(event)
    sheet = state.sheets.get(shipment_id) if shipment_id else None
    customer_id = customer_of(event, sheet)
    customer = state.customers.get(customer_id) if customer_id else None
    contacts = tuple(state.contacts.get(shipment_id, ())) if shipment_id else ()
    orphans = tuple(state.orphans.get(shipment_id, ())) if shipment_id and sheet and not sheet.customer_id else ()
    return Known(sheet, customer, contacts, orphans)


def _source(item: Accepted) -> SourceRef:
    record = item.record
    return SourceRef(record.topic, record.partition, record.offset, item.event.event_id)


def _remember(state: KnownState, out: BatchDecisions, event: InboundEvent, decision: Decision, rules: Rules) -> None:
    if decision.sheet is not None:
        arm_shipment(state.sheets.get(decision.sheet.shipment_id), decision.sheet, rules)
        state.sheets[decision.sheet.shipment_id] = decision.sheet
        out.sheets[decision.sheet.shipment_id] = decision.sheet
    if decision.new_customer is not None:
        state.customers[decision.new_customer.customer_id] = decision.new_customer
        out.new_customers[decision.new_customer.customer_id] = decision.new_customer
    if decision.adopt_customer is not None and decision.sheet is not None:
        out.adoptions[decision.sheet.shipment_id] = decision.adopt_customer
        state.orphans.pop(decision.sheet.shipment_id, None)
    if rules.repeat_contact.counts(event):
        state.contacts.setdefault(shipment_of(event) or "", []).append(event.occurred_at)
