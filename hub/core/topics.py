"""The hub's topics, one table per concept: the inbound streams and the handler queues.

Every module that needs to know which streams or queues exist, which setting names their topic,
which model a stream carries or what a queue is for reads it here. A new stream or queue is a row
below plus its `HUB_TOPIC_*` setting in hub/config.py (and, for a queue, the rules that use it).
"""

from __future__ import annotations

from enum import StrEnum
from typing import NamedTuple

from schemas.inbound import CallLog, CarrierUpdate, InboundEvent, ShipmentEvent


class Stream(NamedTuple):
    """One inbound stream."""

    name: str  # stable: metrics label, simulator kind, never a topic name
    topic_setting: str  # the Settings field (HUB_TOPIC_...) that names its topic
    model: type[InboundEvent]
    published_by: str  # for integrators' documents


SHIPMENT_EVENTS = Stream(
    "shipment_events", "topic_shipment_events", ShipmentEvent, "Warehouse systems and the logistics centre"
)
CALL_LOGS = Stream("call_logs", "topic_call_logs", CallLog, "Call centre, e-mail and chat desk")
CARRIER_UPDATES = Stream("carrier_updates", "topic_carrier_updates", CarrierUpdate, "Carriers' status updates")

STREAMS: tuple[Stream, ...] = (SHIPMENT_EVENTS, CALL_LOGS, CARRIER_UPDATES)
STREAM_BY_NAME: dict[str, Stream] = {s.name: s for s in STREAMS}


class Queue(StrEnum):
    """A handler queue, as the rules file, the metrics and `hub alerts watch --queue` name it."""

    EXCEPTIONS = "exceptions"
    URGENT_ORDERS = "urgent_orders"
    COMPLAINTS = "complaints"
    ESCALATIONS = "escalations"


class QueueSpec(NamedTuple):
    """One handler queue (an `alerts.*` topic the ops team watches)."""

    queue: Queue
    topic_setting: str
    carries: str  # what its alerts are about, for documents and screens


QUEUES: tuple[QueueSpec, ...] = (
    QueueSpec(Queue.EXCEPTIONS, "topic_alerts_exceptions", "damage, loss, delivery problems, customs, delays, claims"),
    QueueSpec(Queue.URGENT_ORDERS, "topic_alerts_urgent", "urgent orders"),
    QueueSpec(Queue.COMPLAINTS, "topic_alerts_complaints", "complaints, repeat contacts, low satisfaction"),
    QueueSpec(
        Queue.ESCALATIONS,
        "topic_alerts_escalations",
        "SLA warnings and breaches (escalated to supervisor, then manager), notifications that failed",
    ),
)
QUEUE_SPECS: dict[Queue, QueueSpec] = {q.queue: q for q in QUEUES}

DEAD_LETTER_SETTING = "topic_dead_letter"


class Destinations(NamedTuple):
    """Where the store sends what it writes to the outbox: each queue's topic and the dead-letter topic."""

    queues: dict[Queue, str]
    dead_letter: str


def parse_queue(text: str) -> Queue:
    """A queue by its name; the topic's spelling (`urgent-orders`) is accepted too."""
    return Queue(text.strip().lower().replace("-", "_"))
