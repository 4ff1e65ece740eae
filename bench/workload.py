"""The benchmark's traffic. Pure: no I/O, no wall clock; the same seed gives the same bytes.

Two kinds:

- `drain_workload`: the hub's own traffic model (hub/simulator.py) for preloading: shipment
  lifecycles, carrier updates with ETAs, calls, incidents, urgent orders, complaints, a customer
  register with key accounts. Duplicates and malformed messages are switched off so every record
  is one new event (the drain is done when a pipeline has stored as many rows as records), and
  the share of shipments with an incident is raised so that about 10% of the events need
  attention (alerts), the share the benchmark's issue asks for. About 52% shipment events,
  32% carrier updates and 16% calls.
- `task_events`: an endless stream for the latency runs in which every event raises an alert
  and creates a coordination task, so each one has a measurable effect.
"""

from __future__ import annotations

import itertools
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from hub.dev.simulator import CALL, CARRIER, SHIPMENT, customers, generate
from schemas.customers import Customer

# Simulated seconds per second of (notional) traffic: 50,000 events then cover about two days of
# business, so shipments show whole lives rather than fragments, and generation takes seconds.
SIMULATION_SPEED = 6000.0
# Share of shipments that hit an incident; with the complaints, claims and urgent orders this puts
# about 10% of all events on a handler queue.
INCIDENT_RATE = 0.7
NOMINAL_RATE = 2000.0  # only spaces out simulated time; a preload is sent as fast as possible

ATTENTION_SHIPMENT_TYPES = frozenset({"exception", "delivery_failed"})
ATTENTION_CARRIER_STATUSES = frozenset({"exception", "attempt_failed"})
ATTENTION_CALL_CATEGORIES = frozenset({"complaint", "claim", "urgent_order"})


@dataclass(frozen=True, slots=True)
class Message:
    kind: str  # SHIPMENT, CARRIER or CALL (hub.dev.simulator)
    key: bytes
    value: bytes
    event_id: str


def register(seed: int) -> list[Customer]:
    """The customer register both workloads refer to (about 8% key accounts)."""
    return customers(seed)


def drain_workload(seed: int, events: int, start: datetime) -> list[Message]:
    planned = generate(
        seed,
        NOMINAL_RATE,
        events / NOMINAL_RATE,
        start=start,
        exception_rate=INCIDENT_RATE,
        duplicate_rate=0.0,
        malformed_rate=0.0,
        speed=SIMULATION_SPEED,
    )
    return [Message(m.kind, m.key, m.value, m.event_id) for m in planned]


def needs_attention(kind: str, status: str, priority: str | None = None) -> bool:
    """The events the baselines re-publish: roughly those the hub raises an alert for.

    `status` is the shipment event's type, the carrier update's status or the call's category.
    """
    if kind == SHIPMENT:
        return status in ATTENTION_SHIPMENT_TYPES or (status == "created" and priority == "urgent")
    if kind == CARRIER:
        return status in ATTENTION_CARRIER_STATUSES
    return status in ATTENTION_CALL_CATEGORIES


# ------------------------------------------------------------------------------ latency traffic

# (stream, what) in contract proportions: 55% shipment events, 30% carrier updates, 15% calls.
_TASK_MIX = (
    *[
        (SHIPMENT, code)
        for code in (
            "damaged",
            "lost",
            "customs_hold",
            "delayed",
            "address_issue",
            "refused",
            "weather",
            "other",
            "damaged",
            "delayed",
        )
    ],
    (SHIPMENT, "urgent_created"),
    *[(CARRIER, code) for code in ("delayed", "weather", "customs_hold", "lost", "address_issue")],
    (CARRIER, "attempt_failed"),
    (CALL, "complaint"),
    (CALL, "claim"),
    (CALL, "urgent_order"),
)


def task_events(seed: int, start: datetime, rate: float) -> Iterator[Message]:
    """Endless events that each create a coordination task (and an alert), one shipment each."""
    rng = random.Random(f"bench-task-events:{seed}:{start.isoformat()}")
    people = register(seed)
    for index in range(10**12):
        kind, what = _TASK_MIX[index % len(_TASK_MIX)]
        event_id = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        shipment_id = f"LT{rng.getrandbits(48):012X}"
        customer = people[rng.randrange(len(people))]
        occurred_at = (start + timedelta(seconds=index / rate)).isoformat(timespec="milliseconds")
        doc = _task_document(kind, what, event_id, shipment_id, customer.customer_id, occurred_at, rng)
        key = customer.customer_id if kind == CALL else shipment_id
        yield Message(kind, key.encode(), orjson.dumps(doc), event_id)


def _task_document(
    kind: str, what: str, event_id: str, shipment_id: str, customer_id: str, occurred_at: str, rng: random.Random
) -> dict:
    common = {"event_id": event_id, "occurred_at": occurred_at}
    if kind == SHIPMENT and what == "urgent_created":
        return {
            **common,
            "source": "wms-sh-01",
            "shipment_id": shipment_id,
            "customer_id": customer_id,
            "order_id": f"SO{rng.randrange(10**9):09d}",
            "type": "created",
            "priority": "urgent",
        }
    if kind == SHIPMENT:
        return {
            **common,
            "source": "wms-sz-02",
            "shipment_id": shipment_id,
            "customer_id": customer_id,
            "type": "exception",
            "exception": {"code": what, "description": f"bench: {what}"},
            "declared_value": {"amount": round(rng.uniform(50, 5000), 2), "currency": "CNY"},
        }
    if kind == CARRIER:
        status = "attempt_failed" if what == "attempt_failed" else "exception"
        doc = {
            **common,
            "source": "carrier:SF",
            "carrier_id": "SF",
            "carrier_tracking_no": f"SF{shipment_id}",
            "shipment_id": shipment_id,
            "status": status,
        }
        return doc if status == "attempt_failed" else {**doc, "exception_code": what}
    return {
        **common,
        "source": "cc-genesys",
        "call_id": f"CL{rng.getrandbits(40):010X}",
        "customer_id": customer_id,
        "shipment_id": shipment_id,
        "direction": "inbound",
        "channel": "phone",
        "category": what,
        "notes": "bench call",
    }


def task_workload(seed: int, events: int, start: datetime) -> list[Message]:
    """A preloadable batch of the latency runs' traffic: the hub's maximum for it."""
    return list(itertools.islice(task_events(seed, start, NOMINAL_RATE), events))
