"""Deterministic workloads for the scorecard, and the ledger of what was published.

`generate(seed, spec)` returns a `Ledger`: the publications in the order they will be sent,
each a good event (with the effects the contract requires of it, see oracle.py) or a hostile
message (with the dead-letter reason it must get). The same seed and spec give the same
bytes. The publisher fills in each publication's acknowledged (partition, offset).

Shapes of a workload (all optional, see `WorkloadSpec`): shipments living through warehouse
and carrier events with incidents, calls about no shipment, events published twice or three
times, shuffled within a window per shipment, stale carrier updates (older occurred_at),
hostile messages from the catalogue below, SQL-looking text that must be stored verbatim,
PII canaries, a 900 KB valid event and over-limit (oversized) values.
"""

from __future__ import annotations

import json
import random
import uuid
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from functools import cached_property

import orjson

from tests.reliability.oracle import (
    CALL,
    CARRIER,
    EXPECT,
    SHIPMENT,
    Expectation,
    ExpectedSheet,
    SheetFact,
    expected_sheet,
    sheet_status,
)

T0 = datetime(2026, 11, 27, 1, 0, tzinfo=UTC)
CHINA = timezone(timedelta(hours=8))  # warehouses and the call centre stamp local time; carriers stamp UTC
NAMESPACE = uuid.UUID("0b6b1f3e-2c4d-4e5f-8a9b-7c6d5e4f3a2b")

# Canaries: planted personal data and secrets that must never show up in logs, headers or metrics.
CANARY_PHONE = "+1 555 0100 0199"
CANARY_PHONE_DIGITS = "5550100199"
CANARY_NAME = "Qzv Canaryson"
SQL_TEXTS = (
    "'); DROP TABLE inbox;--",
    "Robert'); DELETE FROM shipments WHERE ('1'='1",
    '$1 $2 %s %(x)s {0} {shipment_id} \\x00 \\\\ "quoted"',
    "1; TRUNCATE coordination_tasks CASCADE; SELECT pg_sleep(10);--",
)

# The life of a shipment, in order; each shipment lives through a prefix of it.
LIFE = (
    (SHIPMENT, "created"),
    (SHIPMENT, "picked"),
    (SHIPMENT, "packed"),
    (SHIPMENT, "dispatched"),
    (CARRIER, "accepted"),
    (CARRIER, "in_transit"),
    (CARRIER, "arrived_at_hub"),
    (SHIPMENT, "in_transit"),
    (CARRIER, "out_for_delivery"),
    (CARRIER, "delivered"),
    (SHIPMENT, "delivered"),
)
INCIDENTS = (
    *(
        (SHIPMENT, "exception", code)
        for code in ("damaged", "lost", "delayed", "address_issue", "refused", "customs_hold", "weather", "other")
    ),
    (SHIPMENT, "delivery_failed", None),
    *((CARRIER, "exception", code) for code in ("damaged", "lost", "customs_hold", "weather", None)),
    (CARRIER, "attempt_failed", None),
)
ENDINGS = ((SHIPMENT, "returned"), (SHIPMENT, "cancelled"), (CARRIER, "returned_to_sender"))
CALL_CATEGORIES = (
    ("query", 30),
    ("complaint", 15),
    ("booking", 10),
    ("urgent_order", 5),
    ("claim", 10),
    ("feedback", 15),
    ("survey", 15),
)
ETA_STATUSES = {"accepted", "in_transit", "arrived_at_hub", "out_for_delivery"}


# --- what a ledger holds -----------------------------------------------------------------------


@dataclass(frozen=True)
class GoodEvent:
    event_id: str
    stream: str
    key: bytes
    value: bytes
    shipment_id: str | None
    occurred_at: datetime
    status: str | None  # in the sheet's vocabulary
    eta: datetime | None
    expect: Expectation
    verbatim: tuple[tuple[tuple[str, ...], str], ...] = ()  # (json path, text) stored exactly as sent
    tags: frozenset[str] = frozenset()


PROCESSED = "processed"  # an outcome some hostile messages may have instead of a dead letter


@dataclass(frozen=True)
class Hostile:
    name: str
    stream: str
    key: bytes | None
    value: bytes | None
    reason: str  # the dead-letter reason the contract gives it
    alternatives: frozenset[str] = frozenset()  # other outcomes the contract allows (reasons, or PROCESSED)
    event_id: str | None = None  # when the value carries one


@dataclass
class Publication:
    item: GoodEvent | Hostile
    copy: int = 1  # 2 and 3 are re-publications of the same event
    partition: int | None = None  # None: the key's partition; -1: the partition after the key's
    position: tuple[int, int] | None = None  # (partition, offset) once the broker acknowledged it
    reserialized: bytes | None = None  # the same content in other bytes (key order, spacing, nulls)

    @property
    def value(self) -> bytes | None:
        return self.reserialized if self.reserialized is not None else self.item.value


@dataclass
class Ledger:
    seed: int
    publications: list[Publication]

    @cached_property
    def events(self) -> dict[str, GoodEvent]:
        return {p.item.event_id: p.item for p in self.publications if isinstance(p.item, GoodEvent)}

    @cached_property
    def hostile(self) -> list[Publication]:
        return [p for p in self.publications if isinstance(p.item, Hostile)]

    def expected_sheets(self, without: frozenset[str] = frozenset()) -> dict[str, ExpectedSheet]:
        """Each shipment's sheet after its events, leaving out the event ids in `without`."""
        facts: dict[str, list[SheetFact]] = defaultdict(list)
        for event in self.events.values():
            if event.status is not None and event.event_id not in without:
                facts[event.shipment_id].append(SheetFact(event.occurred_at, event.status, event.eta))
        return {shipment_id: expected_sheet(items) for shipment_id, items in facts.items()}

    def summary(self) -> dict:
        return {
            "good_events": len(self.events),
            "publications": len(self.publications),
            "hostile": len(self.hostile),
            "shipments": len({e.shipment_id for e in self.events.values() if e.shipment_id}),
        }

    def rows(self) -> list[dict]:
        """One JSON-able line per publication, for the scenario's ledger file."""
        out = []
        for p in self.publications:
            item = p.item
            base = {
                "copy": p.copy,
                "stream": item.stream,
                "position": p.position,
                "bytes": len(p.value) if p.value is not None else None,
                "reserialized": p.reserialized is not None,
            }
            if isinstance(item, GoodEvent):
                base.update(
                    event_id=item.event_id,
                    shipment_id=item.shipment_id,
                    status=item.status,
                    occurred_at=item.occurred_at.isoformat(),
                    rules=item.expect.rules,
                    notifications=item.expect.notifications,
                    tags=sorted(item.tags),
                )
            else:
                base.update(hostile=item.name, reason=item.reason)
            out.append(base)
        return out


# --- what to generate -------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkloadSpec:
    events: int  # good events (unique), before copies
    call_share: float = 0.15
    incident_share: float = 0.15  # shipments with an exception, failed delivery or failed attempt
    urgent_share: float = 0.04
    ending_share: float = 0.05  # shipments returned or cancelled
    copies: int = 1  # every good event published this many times ...
    third_copy_share: float = 0.0  # ... and this share once more, on another partition
    reserialized_share: float = 0.0  # share of second copies sent as other bytes with the same content
    shuffle_window: int = 0  # permute each shipment's events within windows of this size
    stale_share: float = 0.0  # shipments that get a carrier update older than their latest event
    hostile_share: float = 0.0  # hostile messages per good event (every catalogue entry at least once)
    hostile_names: tuple[str, ...] = ()  # catalogue entries to use (default: all)
    sql_share: float = 0.0  # share of calls and shipment exceptions whose free text looks like SQL
    canaries: bool = False  # good and hostile events carrying the PII canaries
    big_valid_bytes: int = 0  # one valid shipment event of about this size
    oversized_bytes: tuple[int, ...] = ()  # hostile values of these sizes (over HUB_MAX_MESSAGE_BYTES)
    customers: int = 0  # size of the customer pool (default: events / 8)
    # The clock scenarios date a workload relative to the wall clock: its first moment, and a factor
    # on every gap between events (shipments' steps, arrivals of shipments and calls).
    t0: datetime | None = None  # default T0, a fixed date in the past
    time_scale: float = 1.0


def customer_pool(seed: int, spec: WorkloadSpec) -> list[str]:
    """The customer ids a workload's events name (for scenarios that import them first)."""
    return [f"CUST-{seed % 1000:03d}-{i:05d}" for i in range(max(20, spec.customers or spec.events // 8))]


def interleave(*ledgers: Ledger) -> Ledger:
    """One ledger publishing several side by side: each keeps its order, spread over the whole run."""
    keyed = [
        (i / len(ledger.publications), n, pub)
        for n, ledger in enumerate(ledgers)
        for i, pub in enumerate(ledger.publications)
    ]
    merged = Ledger(ledgers[0].seed, [pub for _, _, pub in sorted(keyed, key=lambda k: (k[0], k[1]))])
    if len(merged.events) != sum(len(ledger.events) for ledger in ledgers):
        raise ValueError("the ledgers share event ids")
    return merged


def retime(ledger: Ledger, first: datetime, span: timedelta) -> Ledger:
    """The same events dated evenly over [first, first + span] in their occurred_at order (so each
    shipment keeps its order and distinct moments): with the ledger published at a steady rate, the
    k-th event's timers then come due a fixed time after it arrives, whatever the ledger's shape."""
    events = sorted(ledger.events.values(), key=lambda e: (e.occurred_at, e.event_id))
    step = span / max(1, len(events) - 1)
    moved = {}
    for k, event in enumerate(events):
        doc = orjson.loads(event.value)
        doc["occurred_at"] = _stamp(first + step * k, event.stream)
        moved[event.event_id] = _good(doc, event.stream, event.key.decode(), event.verbatim, event.tags)
    return Ledger(
        ledger.seed,
        [replace(p, item=moved[p.item.event_id]) if isinstance(p.item, GoodEvent) else p for p in ledger.publications],
    )


def _at(spec: WorkloadSpec, offset: timedelta) -> datetime:
    return (spec.t0 or T0) + offset * spec.time_scale


def generate(seed: int, spec: WorkloadSpec) -> Ledger:
    rng = random.Random(seed)
    ids = _Ids(seed)
    customers = customer_pool(seed, spec)
    shipments, calls = _good_events(rng, ids, spec, customers)
    order = _arrival_order(rng, shipments, calls, spec.shuffle_window)
    publications = [Publication(e) for e in order]
    publications = _with_stale_updates(rng, ids, publications, shipments, spec.stale_share)
    publications = _with_copies(rng, publications, spec.copies, spec.third_copy_share, spec.reserialized_share)
    publications = _with_hostile(rng, ids, publications, spec, customers)
    if spec.big_valid_bytes:
        big = _big_valid_event(ids, customers[0], spec.big_valid_bytes)
        publications.insert(len(publications) // 3, Publication(big))
    return Ledger(seed, publications)


class _Ids:
    def __init__(self, seed: int) -> None:
        self.seed, self.n = seed, 0

    def next(self, what: str) -> str:
        self.n += 1
        return str(uuid.uuid5(NAMESPACE, f"{self.seed}/{what}/{self.n}"))


def _stamp(when: datetime, stream: str) -> str:
    if stream == CARRIER:
        return when.astimezone(UTC).isoformat().replace("+00:00", "Z")
    return when.astimezone(CHINA).isoformat()


def _dump(doc: dict) -> bytes:
    return orjson.dumps(doc)


def _good(doc: dict, stream: str, key: str, verbatim=(), tags=()) -> GoodEvent:
    occurred = datetime.fromisoformat(doc["occurred_at"].replace("Z", "+00:00"))
    eta = datetime.fromisoformat(doc["eta"].replace("Z", "+00:00")) if doc.get("eta") else None
    return GoodEvent(
        doc["event_id"],
        stream,
        key.encode(),
        _dump(doc),
        doc.get("shipment_id"),
        occurred,
        sheet_status(stream, doc),
        eta,
        EXPECT[stream](doc),
        tuple(verbatim),
        frozenset(tags),
    )


# --- good events -------------------------------------------------------------------------------


def _good_events(
    rng: random.Random, ids: _Ids, spec: WorkloadSpec, customers: list[str]
) -> tuple[dict[str, list[GoodEvent]], list[GoodEvent]]:
    n_calls = round(spec.events * spec.call_share)
    shipments: dict[str, list[GoodEvent]] = {}
    produced = 0
    while produced < spec.events - n_calls:
        index = len(shipments)
        shipment_id = f"SH{rng.randrange(10**9):09d}-{index}"
        life = _shipment_life(rng, ids, spec, shipment_id, rng.choice(customers), index)
        life = life[: spec.events - n_calls - produced]
        shipments[shipment_id] = life
        produced += len(life)
    calls = [_call(rng, ids, spec, rng.choice(customers), i) for i in range(n_calls)]
    return shipments, calls


def _shipment_life(
    rng: random.Random, ids: _Ids, spec: WorkloadSpec, shipment_id: str, customer_id: str, index: int
) -> list[GoodEvent]:
    steps: list[tuple[str, str, str | None]] = [(s, t, None) for s, t in LIFE[: rng.randint(2, len(LIFE))]]
    if rng.random() < spec.incident_share:
        steps.insert(rng.randint(1, len(steps)), rng.choice(INCIDENTS))
    if rng.random() < spec.ending_share:
        steps.append((*rng.choice(ENDINGS), None))
    offset = timedelta(seconds=index * 17 + rng.randrange(3600))
    urgent = rng.random() < spec.urgent_share
    order_id = f"ORD-{rng.randrange(10**8):08d}"
    events = []
    for stream, kind, code in steps:
        offset += timedelta(minutes=rng.randint(10, 240), seconds=rng.randrange(60))  # distinct per shipment
        when = _at(spec, offset)
        doc = _movement(rng, ids, stream, kind, code, shipment_id, customer_id, order_id, when, urgent)
        verbatim = ()
        if spec.sql_share and stream == SHIPMENT and kind == "exception" and rng.random() < spec.sql_share:
            text = rng.choice(SQL_TEXTS)
            doc["exception"]["description"] = text
            verbatim = ((("exception", "description"), text),)
        events.append(_good(doc, stream, shipment_id, verbatim))
    return events


def _movement(
    rng: random.Random,
    ids: _Ids,
    stream: str,
    kind: str,
    code: str | None,
    shipment_id: str,
    customer_id: str,
    order_id: str,
    when: datetime,
    urgent: bool,
) -> dict:
    if stream == SHIPMENT:
        doc = {
            "event_id": ids.next("shipment"),
            "occurred_at": _stamp(when, stream),
            "source": "wms-sh-01",
            "shipment_id": shipment_id,
            "customer_id": customer_id,
            "order_id": order_id,
            "type": kind,
            "location": {"code": "SHA-DC1", "city": "Shanghai"},
        }
        if kind == "created" and urgent:
            doc["priority"] = "urgent"
        if kind == "exception":
            doc["exception"] = {"code": code, "description": f"{code} reported at the depot"}
            doc["declared_value"] = {"amount": round(rng.uniform(10, 5000), 2), "currency": "CNY"}
        return doc
    doc = {
        "event_id": ids.next("carrier"),
        "occurred_at": _stamp(when, stream),
        "source": "carrier:SF",
        "carrier_id": "SF",
        "carrier_tracking_no": f"SF{shipment_id}",
        "shipment_id": shipment_id,
        "status": kind,
        "raw_code": kind.upper()[:6],
    }
    if kind in ETA_STATUSES:
        doc["eta"] = _stamp(when + timedelta(hours=rng.randint(2, 96), minutes=rng.randrange(60)), CARRIER)
    if kind == "exception" and code is not None:
        doc["exception_code"] = code
    if kind == "delivered":
        doc["proof_of_delivery"] = {"signed_by": "front desk"}
    return doc


def _call(rng: random.Random, ids: _Ids, spec: WorkloadSpec, customer_id: str, index: int) -> GoodEvent:
    category = rng.choices([c for c, _ in CALL_CATEGORIES], weights=[w for _, w in CALL_CATEGORIES])[0]
    when = _at(spec, timedelta(seconds=index * 23 + rng.randrange(7200)))
    doc = {
        "event_id": ids.next("call"),
        "occurred_at": _stamp(when, CALL),
        "source": "callcentre-01",
        "call_id": f"CALL-{rng.randrange(10**9):09d}",
        "customer_id": customer_id,
        "direction": "inbound" if rng.random() < 0.85 else "outbound",
        "channel": rng.choice(("phone", "email", "chat", "wechat")),
        "category": category,
        "agent_id": f"AG-{rng.randrange(200):03d}",
        "duration_s": rng.randrange(20, 1800),
    }
    if category == "survey":
        doc["satisfaction_score"] = rng.randint(1, 5)
    if doc["channel"] == "phone":
        doc["caller_phone"] = f"+86 139 {rng.randrange(10**4):04d} {rng.randrange(10**4):04d}"
    verbatim, tags = (), ()
    if spec.sql_share and rng.random() < spec.sql_share:
        doc["notes"] = rng.choice(SQL_TEXTS)
        verbatim = ((("notes",), doc["notes"]),)
    if spec.canaries and index % 10 == 0:
        doc.update(caller_phone=CANARY_PHONE, customer_name=CANARY_NAME, notes=f"caller {CANARY_NAME} asked")
        tags = ("canary",)
    return _good(doc, CALL, customer_id, verbatim, tags)


def _big_valid_event(ids: _Ids, customer_id: str, size: int) -> GoodEvent:
    shipment_id = "SH-BIG-VALID"
    doc = {
        "event_id": ids.next("big"),
        "occurred_at": _stamp(T0, SHIPMENT),
        "source": "wms-sh-01",
        "shipment_id": shipment_id,
        "customer_id": customer_id,
        "type": "created",
        "attributes": {"manifest": "M" * max(0, size - 400)},
    }
    return _good(doc, SHIPMENT, shipment_id, tags=("big",))


# --- arrival order -----------------------------------------------------------------------------


def _arrival_order(
    rng: random.Random, shipments: dict[str, list[GoodEvent]], calls: list[GoodEvent], window: int
) -> list[GoodEvent]:
    """By occurred_at (as live traffic), then each shipment's events permuted within windows."""
    everything = sorted(
        [e for life in shipments.values() for e in life] + calls, key=lambda e: (e.occurred_at, e.event_id)
    )
    if window < 2:
        return everything
    slots: dict[str, list[int]] = defaultdict(list)
    for i, event in enumerate(everything):
        if event.shipment_id:
            slots[event.shipment_id].append(i)
    shuffled = list(everything)
    for positions in slots.values():
        for start in range(0, len(positions), window):
            chunk = positions[start : start + window]
            items = [everything[i] for i in chunk]
            rng.shuffle(items)
            for i, item in zip(chunk, items, strict=True):
                shuffled[i] = item
    return shuffled


def _with_stale_updates(
    rng: random.Random, ids: _Ids, publications: list[Publication], shipments: dict[str, list[GoodEvent]], share: float
) -> list[Publication]:
    """Carrier updates stamped between two older events of a shipment, sent after its latest one."""
    if not share:
        return publications
    last_slot = {p.item.shipment_id: i for i, p in enumerate(publications) if p.item.shipment_id}
    inserts: list[tuple[int, Publication]] = []
    for shipment_id, life in shipments.items():
        if len(life) < 2 or rng.random() >= share:
            continue
        times = sorted(e.occurred_at for e in life)
        j = rng.randrange(len(times) - 1)
        when = times[j] + (times[j + 1] - times[j]) / 2
        status = rng.choice(("in_transit", "arrived_at_hub", "accepted"))
        doc = {
            "event_id": ids.next("stale"),
            "occurred_at": _stamp(when, CARRIER),
            "source": "carrier:SF",
            "carrier_id": "SF",
            "carrier_tracking_no": f"SF{shipment_id}",
            "shipment_id": shipment_id,
            "status": status,
            "raw_code": "LATE",
            "eta": _stamp(when + timedelta(hours=rng.randint(1, 200)), CARRIER),
        }
        at = rng.randint(last_slot[shipment_id] + 1, len(publications))
        inserts.append((at, Publication(_good(doc, CARRIER, shipment_id, tags=("stale",)))))
    return _insert_all(publications, inserts)


def _with_copies(
    rng: random.Random, publications: list[Publication], copies: int, third_share: float, reserialized_share: float
) -> list[Publication]:
    """Re-publish each event (copy 2 a little later, some in other bytes; copy 3, for a share, on
    another partition)."""
    if copies < 2:
        return publications
    inserts: list[tuple[int, Publication]] = []
    for i, p in enumerate(publications):
        other_bytes = reserialize(p.item.stream, p.item.value, rng) if rng.random() < reserialized_share else None
        inserts.append(
            (rng.randint(i + 1, min(len(publications), i + 200)), replace(p, copy=2, reserialized=other_bytes))
        )
        if rng.random() < third_share:
            inserts.append((rng.randint(i + 1, len(publications)), replace(p, copy=3, partition=-1)))
    return _insert_all(publications, inserts)


# Optional fields a re-publish may spell out as null ("JSON null on an optional field means absent").
OPTIONAL_FIELDS = {
    SHIPMENT: ("order_id", "carrier_id", "promised_delivery_at", "declared_value", "attributes", "location"),
    CARRIER: ("raw_description", "eta", "exception_code", "location", "proof_of_delivery"),
    CALL: ("shipment_id", "order_id", "caller_phone", "satisfaction_score", "requested_deadline", "notes"),
}


def reserialize(stream: str, value: bytes, rng: random.Random) -> bytes:
    """The same payload as the contract compares them: other key order, spacing and explicit nulls."""
    doc = orjson.loads(value)
    for name in rng.sample(OPTIONAL_FIELDS[stream], 2):
        if name not in doc:
            doc[name] = None
    reordered = dict(reversed(list(doc.items())))
    return json.dumps(reordered, indent=rng.choice((1, 2, None)), ensure_ascii=rng.random() < 0.5).encode()


def _insert_all(items: list[Publication], inserts: list[tuple[int, Publication]]) -> list[Publication]:
    """Insert each (index, item) before the original element at that index (stable for equal indexes)."""
    by_index: dict[int, list[Publication]] = defaultdict(list)
    for at, item in inserts:
        by_index[at].append(item)
    out: list[Publication] = []
    for i in range(len(items) + 1):
        out.extend(by_index.get(i, ()))
        if i < len(items):
            out.append(items[i])
    return out


# --- hostile messages ----------------------------------------------------------------------------


def _valid_call(ids: _Ids, customer_id: str, **changes) -> dict:
    doc = {
        "event_id": ids.next("hostile-call"),
        "occurred_at": _stamp(T0, CALL),
        "source": "callcentre-01",
        "call_id": "CALL-HOSTILE",
        "customer_id": customer_id,
        "direction": "inbound",
        "channel": "phone",
        "category": "query",
    }
    return {**doc, **changes}


def _valid_shipment(ids: _Ids, customer_id: str, **changes) -> dict:
    doc = {
        "event_id": ids.next("hostile-shipment"),
        "occurred_at": _stamp(T0, SHIPMENT),
        "source": "wms-sh-01",
        "shipment_id": "SH-HOSTILE",
        "customer_id": customer_id,
        "type": "created",
    }
    return {**doc, **changes}


def _valid_carrier(ids: _Ids, **changes) -> dict:
    doc = {
        "event_id": ids.next("hostile-carrier"),
        "occurred_at": _stamp(T0, CARRIER),
        "source": "carrier:SF",
        "carrier_id": "SF",
        "carrier_tracking_no": "SFX",
        "shipment_id": "SH-HOSTILE",
        "status": "in_transit",
    }
    return {**doc, **changes}


def _deep(levels: int) -> bytes:
    return b"[" * levels + b"]" * levels


# name -> (stream, reason, builder(ids, customer) -> value bytes or None)
HostileBuilder = Callable[[_Ids, str], bytes | None]
CATALOGUE: dict[str, tuple[str, str, HostileBuilder]] = {
    "bad_json": (SHIPMENT, "invalid_json", lambda ids, c: b'{"event_id": "' + ids.next("x").encode() + b'", "type"'),
    "invalid_utf8": (
        CARRIER,
        "undecodable",
        lambda ids, c: _dump(_valid_carrier(ids)).replace(b'"carrier:SF"', b'"carrier:\xff\xfeSF"'),
    ),
    "nan_literal": (
        SHIPMENT,
        "invalid_json",
        lambda ids, c: _dump(_valid_shipment(ids, c, declared_value={"amount": 1, "currency": "CNY"})).replace(
            b'"amount":1', b'"amount":NaN'
        ),
    ),
    "nan_string": (
        SHIPMENT,
        "validation_error",
        lambda ids, c: _dump(_valid_shipment(ids, c, declared_value={"amount": "NaN", "currency": "CNY"})),
    ),
    "infinity": (
        SHIPMENT,
        "invalid_json",
        lambda ids, c: _dump(_valid_shipment(ids, c, declared_value={"amount": 1, "currency": "CNY"})).replace(
            b'"amount":1', b'"amount":1e400'
        ),
    ),
    "nul_in_text": (CALL, "validation_error", lambda ids, c: _dump(_valid_call(ids, c, notes="before\u0000after"))),
    "naive_timestamp": (
        SHIPMENT,
        "validation_error",
        lambda ids, c: _dump(_valid_shipment(ids, c, occurred_at="2026-11-27T09:00:00")),
    ),
    "epoch_timestamp": (CARRIER, "validation_error", lambda ids, c: _dump(_valid_carrier(ids, occurred_at=1795770000))),
    "unknown_enum": (SHIPMENT, "validation_error", lambda ids, c: _dump(_valid_shipment(ids, c, type="teleported"))),
    "unknown_carrier_status": (CARRIER, "validation_error", lambda ids, c: _dump(_valid_carrier(ids, status="beamed"))),
    "huge_string": (CALL, "validation_error", lambda ids, c: _dump(_valid_call(ids, c, notes="x" * 1_000_000))),
    "deep_nesting": (
        SHIPMENT,
        "invalid_json",
        lambda ids, c: _dump(_valid_shipment(ids, c, attributes={"a": 1})).replace(b'"a":1', b'"a":' + _deep(5000)),
    ),
    # Valid JSON (orjson parses 1,024 levels) and schema-valid (attributes are free-form), but absurd.
    "deep_nesting_300": (
        SHIPMENT,
        "validation_error",
        lambda ids, c: _dump(_valid_shipment(ids, c, attributes={"a": 1})).replace(b'"a":1', b'"a":' + _deep(300)),
    ),
    "lone_surrogate": (
        CALL,
        "invalid_json",
        lambda ids, c: _dump(_valid_call(ids, c, notes="@")).replace(b'"notes":"@"', b'"notes":"\\ud800"'),
    ),
    "missing_field": (
        CARRIER,
        "validation_error",
        lambda ids, c: _dump({k: v for k, v in _valid_carrier(ids).items() if k != "shipment_id"}),
    ),
    "control_char_id": (
        SHIPMENT,
        "validation_error",
        lambda ids, c: _dump(_valid_shipment(ids, c, shipment_id="SH\u0007BELL")),
    ),
    "not_an_object": (CALL, "validation_error", lambda ids, c: b'["an", "array", 1]'),
    "tombstone": (CARRIER, "invalid_json", lambda ids, c: None),
    "unsupported_version": (
        SHIPMENT,
        "unsupported_version",
        lambda ids, c: _dump(_valid_shipment(ids, c, schema_version=2)),
    ),
}
# Invalid events carrying the PII canaries: their headers and the hub's logs must not repeat them.
CANARY_HOSTILE: dict[str, tuple[str, str, HostileBuilder]] = {
    "canary_naive_timestamp": (
        CALL,
        "validation_error",
        lambda ids, c: _dump(
            _valid_call(ids, c, caller_phone=CANARY_PHONE, customer_name=CANARY_NAME, occurred_at="2026-11-27T09:00:00")
        ),
    ),
    "canary_unknown_enum": (
        CALL,
        "validation_error",
        lambda ids, c: _dump(_valid_call(ids, c, caller_phone=CANARY_PHONE, notes=CANARY_NAME, category="gossip")),
    ),
    "canary_bad_json": (
        CALL,
        "invalid_json",
        lambda ids, c: ('{"caller_phone": "' + CANARY_PHONE + '", "customer_name": "' + CANARY_NAME + '", ').encode(),
    ),
    "canary_nul": (
        CALL,
        "validation_error",
        lambda ids, c: _dump(_valid_call(ids, c, caller_phone=CANARY_PHONE, notes=CANARY_NAME + "\u0000")),
    ),
}


# The contract neither caps nesting nor says how deep is too deep: storing it is right too.
ALTERNATIVES = {"deep_nesting_300": frozenset({PROCESSED, "invalid_json"})}


def _event_id_of(value: bytes | None) -> str | None:
    try:
        doc = orjson.loads(value)
    except (orjson.JSONDecodeError, TypeError):
        return None
    return doc.get("event_id") if isinstance(doc, dict) else None


def _hostile(ids: _Ids, name: str, customer_id: str, table: dict) -> Hostile:
    stream, reason, build = table[name]
    key = b"SH-HOSTILE" if stream != CALL else customer_id.encode()
    value = build(ids, customer_id)
    return Hostile(name, stream, key, value, reason, ALTERNATIVES.get(name, frozenset()), _event_id_of(value))


def _conflicting_copy(ids: _Ids, original: GoodEvent) -> Hostile:
    doc = orjson.loads(original.value)
    doc["source"] = f"{doc['source']}-replayed-differently"
    return Hostile("conflicting_duplicate", original.stream, original.key, _dump(doc), "conflicting_duplicate")


def _respaced(original: Hostile) -> Hostile:
    """The same (deep) event re-published with other spacing: the contract calls that the same payload."""
    value = json.dumps(json.loads(original.value), indent=1).encode()
    return replace(original, name=f"{original.name}_respaced", value=value)


def _oversized(ids: _Ids, customer_id: str, size: int) -> Hostile:
    doc = _valid_shipment(ids, customer_id, attributes={"blob": "B" * size})
    return Hostile(f"oversized_{size // 1000}kB", SHIPMENT, b"SH-OVERSIZED", _dump(doc), "oversized")


def _with_hostile(
    rng: random.Random, ids: _Ids, publications: list[Publication], spec: WorkloadSpec, customers: list[str]
) -> list[Publication]:
    hostile: list[Hostile] = []
    if spec.hostile_share:
        names = [n for n in (spec.hostile_names or CATALOGUE) if n in CATALOGUE]
        wanted = max(len(names), round(spec.events * spec.hostile_share))
        hostile += [_hostile(ids, names[i % len(names)], rng.choice(customers), CATALOGUE) for i in range(wanted)]
    if spec.canaries:
        hostile += [_hostile(ids, name, rng.choice(customers), CANARY_HOSTILE) for name in CANARY_HOSTILE]
    hostile += [_oversized(ids, customers[0], size) for size in spec.oversized_bytes]
    inserts = [(rng.randint(0, len(publications)), Publication(h)) for h in hostile]
    inserts += [(at + 1, Publication(_respaced(h.item))) for at, h in inserts if h.item.name == "deep_nesting_300"]
    if spec.hostile_share and ("conflicting_duplicate" in (spec.hostile_names or ("conflicting_duplicate",))):
        inserts += _conflicts(rng, ids, publications)
    return _insert_all(publications, inserts)


def _conflicts(rng: random.Random, ids: _Ids, publications: list[Publication]) -> list[tuple[int, Publication]]:
    """Two events re-published with a different payload, after their original (same key, same partition)."""
    goods = [i for i, p in enumerate(publications) if isinstance(p.item, GoodEvent) and p.copy == 1]
    chosen = rng.sample(goods, k=min(2, len(goods)))
    return [
        (rng.randint(i + 1, len(publications)), Publication(_conflicting_copy(ids, publications[i].item)))
        for i in chosen
    ]


__all__ = [
    "CANARY_NAME",
    "CANARY_PHONE",
    "CANARY_PHONE_DIGITS",
    "CATALOGUE",
    "PROCESSED",
    "SQL_TEXTS",
    "GoodEvent",
    "Hostile",
    "Ledger",
    "Publication",
    "WorkloadSpec",
    "customer_pool",
    "generate",
    "interleave",
    "retime",
]
