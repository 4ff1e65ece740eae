"""Realistic, reproducible traffic for the three inbound topics (`hub simulate`, `hub demo`).

Pure: no I/O and no wall clock. `generate(seed, rate, duration_s, start=...)` returns the
`rate * duration_s` messages a logistics desk would see, in arrival order, each with the
offset (seconds after the first one) at which to send it. The same seed, start and options
always give the same bytes: every random choice, id and timestamp comes from one seeded
`random.Random` and from `start` plus simulated time.

The model is a small discrete-event simulation over simulated time (`speed` simulated
seconds per wall-clock second):

- a register of customers (`customers(seed)`: some key accounts, some English-speaking),
  plus a few unregistered ones the hub has to create on the fly;
- shipments arriving as a Poisson process, each with a whole life planned when it is born:
  warehouse events created -> picked -> packed -> dispatched -> in_transit ->
  out_for_delivery -> delivered, and carrier updates (accepted, in_transit, arrived_at_hub,
  out_for_delivery, delivered) carrying ETAs against the promised delivery;
- incidents on `exception_rate` of the shipments (damaged, lost, delayed, address_issue,
  refused, customs_hold, weather, a carrier's failed attempt) and ETA slips past the promise;
- the calls they provoke (where-is-my-parcel queries and their repeat contacts within hours,
  complaints, claims, surveys) and calls about no shipment (bookings, urgent orders, feedback);
- a small share of exact duplicates, late events and malformed messages.

The simulation starts warm (shipments already on their way), so every stage and the mix of
roughly 55% shipment events, 30% carrier updates and 15% calls shows from the first second.
"""

from __future__ import annotations

import csv
import heapq
import io
import itertools
import math
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson

from hub.core.topics import CALL_LOGS, CARRIER_UPDATES, SHIPMENT_EVENTS
from schemas.customers import CSV_COLUMNS, Customer
from schemas.enums import CustomerTier, Language, NotificationChannel

# Kinds are the stream names of the topic table, so every tool maps them to topics the same way.
SHIPMENT, CARRIER, CALL = SHIPMENT_EVENTS.name, CARRIER_UPDATES.name, CALL_LOGS.name
KINDS = (SHIPMENT, CARRIER, CALL)

# Tags on planned messages: what makes a message special (counted by `hub simulate`).
DUPLICATE, LATE, MALFORMED = "duplicate", "late", "malformed"
URGENT, ETA_SLIP, REPEAT_CONTACT, EXCEPTION = "urgent", "eta_slip", "repeat_contact", "exception"
UNKNOWN_CUSTOMER = "unknown_customer"
MALFORMATIONS = ("bad_json", "naive_timestamp", "unknown_enum", "nul")

DEFAULT_CUSTOMERS = 500
DEFAULT_SPEED = 600.0  # simulated seconds per wall-clock second: a 60 s demo covers 10 hours of business

HOUR = 3600.0
CHINA = timezone(timedelta(hours=8))  # warehouses and the call centre stamp local time; carriers stamp UTC
# Shipments born this long before the start still have events to send (all but the longest lives, whose
# tails are rare): the first second already shows every stage in its steady-state share.
_WARM_UP_S = 4 * 24 * HOUR
# Messages one shipment brings on average (its events, its calls, the specials). Measured: with it, a run
# covers `duration_s * speed` simulated seconds (tested).
_MESSAGES_PER_SHIPMENT = 12.6

# Incident weights (codes of the contract, plus a carrier's failed delivery attempt).
_INCIDENTS = {
    "delayed": 22,
    "attempt_failed": 16,
    "address_issue": 12,
    "damaged": 12,
    "weather": 10,
    "customs_hold": 8,
    "refused": 8,
    "lost": 6,
    "other": 6,
}
_DESCRIPTIONS = {
    "damaged": "Parcel crushed in sorting, contents visibly damaged",
    "lost": "Parcel not found at the transit hub after scan gap",
    "delayed": "Linehaul departure missed, next departure in one day",
    "address_issue": "Address incomplete: building number missing",
    "refused": "Recipient refused to accept the parcel",
    "customs_hold": "Held by customs pending documents",
    "weather": "Typhoon warning: road transport suspended",
    "other": "Vehicle breakdown on route",
    "attempt_failed": "Recipient not at home, card left",
}
# Carrier statuses a carrier reports, and how often it bothers to (the warehouse always reports).
_CARRIER_REPORTS = {
    "accepted": 0.85,
    "in_transit": 0.75,
    "arrived_at_hub": 0.7,
    "out_for_delivery": 0.65,
    "delivered": 0.8,
}
_CARRIERS = (("SF", "SF"), ("ZTO", "ZT"), ("YTO", "YT"), ("JD", "JD"), ("EMS", "EE"), ("DHL", "JJD"))
_RAW_CODES = {
    "accepted": "10",
    "in_transit": "30",
    "arrived_at_hub": "31",
    "out_for_delivery": "44",
    "delivered": "80",
    "attempt_failed": "70",
    "exception": "99",
    "returned_to_sender": "90",
}
_CITIES = (
    ("SHA", "Shanghai", 31.23, 121.47),
    ("SZX", "Shenzhen", 22.54, 114.06),
    ("CAN", "Guangzhou", 23.13, 113.26),
    ("PEK", "Beijing", 39.90, 116.41),
    ("HGH", "Hangzhou", 30.27, 120.16),
    ("CTU", "Chengdu", 30.57, 104.07),
    ("WUH", "Wuhan", 30.59, 114.31),
    ("HKG", "Hong Kong", 22.32, 114.17),
    ("NKG", "Nanjing", 32.06, 118.80),
)
_WAREHOUSES = ("wms-sh-01", "wms-sz-02", "wms-gz-01", "tms-core")
_DESKS = {"phone": "cc-genesys", "email": "email-desk", "chat": "chat-desk", "wechat": "wechat-desk"}
_NOTES = {
    "query": ("Customer asks where the parcel is", "客户询问包裹现在在哪里"),
    "complaint": ("Customer unhappy with the service, asks for a call back", "客户对服务不满意，要求回电"),
    "claim": ("Customer files a claim for the goods", "客户要求理赔"),
    "booking": ("Pick-up booking for next week", "预约下周上门取件"),
    "urgent_order": ("Rush order, must arrive before the deadline", "加急订单，必须在截止时间前送达"),
    "feedback": ("Customer suggests evening delivery slots", "客户建议增加晚间派送时段"),
    "survey": ("Post-delivery satisfaction survey", "签收后满意度回访"),
}
_SURNAMES_ZH = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何林罗高"
_GIVEN_ZH = ("伟", "芳", "娜", "敏", "静", "强", "磊", "洋", "艳", "军", "杰", "婷", "明", "丽", "勇")
_FIRST_EN = ("James", "Olivia", "Liam", "Emma", "Noah", "Ava", "Lucas", "Mia", "Ethan", "Grace", "Henry", "Chloe")
_LAST_EN = ("Smith", "Brown", "Taylor", "Wilson", "Evans", "Walker", "Wright", "Green", "Hall", "Wood")
_COMPANIES = (
    "Huaxin Trading",
    "Pearl River Electronics",
    "Jinlong Apparel",
    "Northwind Imports",
    "Eastern Star Medical",
    "Bluebay Retail",
    "Golden Bridge Foods",
    "Silverline Parts",
)


@dataclass(frozen=True, slots=True)
class PlannedMessage:
    """One record to publish: to the topic of `kind`, at `at_offset_s` seconds after the first."""

    kind: str  # SHIPMENT, CARRIER or CALL
    key: bytes
    value: bytes
    at_offset_s: float
    event_id: str | None  # None for a malformed message
    tags: tuple[str, ...] = ()
    # When it arrives in simulated time, in seconds after `start`: the traffic's own clock. It follows
    # `at_offset_s * speed` only on average (births are random), so whoever keeps time with the traffic
    # (`hub demo`'s clock) reads it here.
    simulated_s: float = 0.0


@dataclass(frozen=True)
class Mix:
    """How often the interesting things happen. Rates of messages unless said otherwise."""

    exception_rate: float = 0.10  # share of shipments that hit an incident
    duplicate_rate: float = 0.01  # exact copies re-sent a little later
    late_rate: float = 0.01  # shipment/carrier events that arrive after a newer one of their shipment
    malformed_rate: float = 0.01  # bad JSON, naive timestamp, unknown enum value, NUL character
    urgent_rate: float = 0.04  # share of shipments created urgent
    eta_slip_rate: float = 0.05  # share of shipments whose carrier ETA slips past the promise
    unknown_customer_rate: float = 0.03  # share of shipments for a customer not in the register

    def check(self) -> None:
        for name, value in vars(self).items():
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")


# ----------------------------------------------------------------------------------- customers


def customers(seed: int, count: int = DEFAULT_CUSTOMERS) -> list[Customer]:
    """The customer register the traffic refers to (rows for `hub customers import`)."""
    rng = random.Random(f"hub-customers:{seed}")
    return [_customer(rng, number) for number in range(1, count + 1)]


def customers_csv(rows: list[Customer]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for c in rows:
        writer.writerow(["" if (v := getattr(c, col)) is None else getattr(v, "value", v) for col in CSV_COLUMNS])
    return out.getvalue()


def _customer(rng: random.Random, number: int) -> Customer:
    key = rng.random() < 0.08
    language = Language.EN if rng.random() < 0.2 else Language.ZH
    # The four channels of contract 1.0, in their order then: the same seed still gives the same register.
    legacy = (NotificationChannel.SMS, NotificationChannel.EMAIL, NotificationChannel.WECHAT, NotificationChannel.PHONE)
    channel = rng.choices(legacy, weights=(50, 15, 30, 5))[0]
    if key:
        name = f"{rng.choice(_COMPANIES)} {'Co., Ltd.' if language is Language.EN else '有限公司'}"
    elif language is Language.EN:
        name = f"{rng.choice(_FIRST_EN)} {rng.choice(_LAST_EN)}"
    else:
        name = rng.choice(_SURNAMES_ZH) + rng.choice(_GIVEN_ZH) + (rng.choice(_GIVEN_ZH) if rng.random() < 0.5 else "")
    mobile = f"+86 13{rng.randrange(10)} {rng.randrange(10000):04d} {rng.randrange(10000):04d}"
    return Customer(
        customer_id=f"C{number:05d}",
        name=name,
        tier=CustomerTier.KEY if key else CustomerTier.STANDARD,
        language=language,
        preferred_channel=channel,
        email=f"customer{number:05d}@example.com",
        phone=mobile,
    )


# ------------------------------------------------------------------------------------ traffic


def generate(
    seed: int,
    rate: float,
    duration_s: float,
    *,
    start: datetime,
    exception_rate: float = 0.10,
    duplicate_rate: float = 0.01,
    late_rate: float = 0.01,
    malformed_rate: float = 0.01,
    urgent_rate: float = 0.04,
    eta_slip_rate: float = 0.05,
    unknown_customer_rate: float = 0.03,
    speed: float = DEFAULT_SPEED,
    customer_count: int = DEFAULT_CUSTOMERS,
) -> Iterator[PlannedMessage]:
    """`round(rate * duration_s)` messages in arrival order, paced `1 / rate` seconds apart.

    Ids depend on `seed` and `start`, so traffic for another start never collides with an
    earlier run's event ids in the hub's inbox, while the same pair always gives the same bytes.
    """
    if rate <= 0 or duration_s < 0 or speed <= 0:
        raise ValueError("rate and speed must be positive and duration_s not negative")
    if start.tzinfo is None:
        raise ValueError("start must carry a time zone (e.g. datetime.now(UTC))")
    mix = Mix(
        exception_rate, duplicate_rate, late_rate, malformed_rate, urgent_rate, eta_slip_rate, unknown_customer_rate
    )
    mix.check()
    world = _World(seed, start, rate, speed, mix, customers(seed, customer_count))
    return world.messages(round(rate * duration_s))


@dataclass(frozen=True, slots=True)
class _Step:
    """One event of a shipment's life, on the warehouse (SHIPMENT) or carrier (CARRIER) stream."""

    t: float  # occurred_at, simulated seconds after start
    kind: str
    status: str
    fields: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    arrival: float | None = None  # when it reaches the topic; later than t for a late event


@dataclass
class _Shipment:
    shipment_id: str
    customer_id: str
    language: Language
    phone: str | None
    order_id: str
    carrier_id: str
    tracking_no: str
    urgent: bool
    origin: tuple
    destination: tuple
    declared_value: dict | None


class _World:
    def __init__(
        self, seed: int, start: datetime, rate: float, speed: float, mix: Mix, register: list[Customer]
    ) -> None:
        self.rng = random.Random(f"hub-traffic:{seed}:{start.isoformat()}")
        self.start, self.rate, self.mix = start, rate, mix
        self.register = register
        weights = [5.0 if c.tier is CustomerTier.KEY else 1.0 for c in register]
        self.cum_weights = list(itertools.accumulate(weights))
        self.shipments_per_s = rate / speed / _MESSAGES_PER_SHIPMENT
        self.heap: list[tuple[float, int, PlannedMessage]] = []
        self.seq = itertools.count()

    # --- the event loop ---------------------------------------------------------------------

    def messages(self, total: int) -> Iterator[PlannedMessage]:
        if total <= 0:
            return
        self._warm_up()
        next_birth = self._after(0.0)
        for index in range(total):
            while not self.heap or self.heap[0][0] > next_birth:
                self._plan_shipment(next_birth)
                next_birth = self._after(next_birth)
            arrival, _, message = heapq.heappop(self.heap)
            yield replace(message, at_offset_s=round(index / self.rate, 6), simulated_s=arrival)

    def _after(self, t: float) -> float:
        return t + self.rng.expovariate(self.shipments_per_s)

    def _warm_up(self) -> None:
        """Shipments born before the start: only their events from the start on are sent."""
        t = -_WARM_UP_S
        while (t := self._after(t)) < 0:
            self._plan_shipment(t)

    # --- one shipment's life ----------------------------------------------------------------

    def _plan_shipment(self, t0: float) -> None:
        rng = self.rng
        ship = self._new_shipment()
        steps, incident = self._life(ship, t0)
        steps.sort(key=lambda s: s.t)
        self._make_late(steps)
        for step in steps:
            self._emit_step(ship, step)
        for at, category, extra, tags in self._calls_about(ship, t0, steps, incident):
            if at >= 0:  # the past is not sent: skip building it
                self._emit(at, CALL, ship.customer_id, self._call(ship, category, at, **extra), tags)
        if rng.random() < 0.45:
            self._emit_customer_call(ship, t0)

    def _new_shipment(self) -> _Shipment:
        rng = self.rng
        unknown = rng.random() < self.mix.unknown_customer_rate
        if unknown:
            customer_id, language, phone = f"G{rng.randrange(10**6):06d}", Language.ZH, None
        else:
            c = rng.choices(self.register, cum_weights=self.cum_weights)[0]
            customer_id, language, phone = c.customer_id, c.language, c.phone
        carrier_id, prefix = rng.choice(_CARRIERS)
        origin, destination = rng.sample(_CITIES, 2)
        return _Shipment(
            shipment_id=f"WB{rng.getrandbits(48):012X}",
            customer_id=customer_id,
            language=language,
            phone=phone,
            order_id=f"SO{rng.randrange(10**9):09d}",
            carrier_id=carrier_id,
            tracking_no=f"{prefix}{rng.randrange(10**12):012d}",
            urgent=rng.random() < self.mix.urgent_rate,
            origin=origin,
            destination=destination,
            declared_value={"amount": round(rng.uniform(50, 20000), 2), "currency": "CNY"}
            if rng.random() < 0.6
            else None,
        )

    def _life(self, ship: _Shipment, t0: float) -> tuple[list[_Step], tuple[str, float] | None]:
        """The planned steps, and the incident (code, when) if the shipment has one."""
        rng = self.rng
        pace = 0.3 if ship.urgent else 1.0  # urgent shipments skip queues
        picked = t0 + rng.uniform(0.5, 4) * HOUR * pace
        packed = picked + rng.uniform(0.3, 2) * HOUR * pace
        dispatched = packed + rng.uniform(0.5, 6) * HOUR * pace
        in_transit = dispatched + rng.uniform(1, 4) * HOUR
        at_hub = in_transit + rng.uniform(6, 24) * HOUR * pace
        out = at_hub + rng.uniform(2, 10) * HOUR * pace
        delivered = out + rng.uniform(1, 6) * HOUR
        promise = _round_up_hour(delivered + rng.uniform(2, 24) * HOUR * pace)
        tags = (URGENT,) if ship.urgent else ()
        created = {
            "priority": "urgent" if ship.urgent else "normal",
            "promised_delivery_at": promise,
            "order_id": ship.order_id,
            "location": _location(ship.origin),
            "attributes": {
                "parcels": rng.randint(1, 4),
                "weight_kg": round(rng.uniform(0.2, 30), 1),
                "service": "express" if ship.urgent else rng.choice(("express", "standard")),
            },
        }
        if ship.declared_value:
            created["declared_value"] = ship.declared_value
        steps = [
            _Step(t0, SHIPMENT, "created", created, tags),
            _Step(picked, SHIPMENT, "picked", {"location": _location(ship.origin)}),
            _Step(packed, SHIPMENT, "packed", {"location": _location(ship.origin)}),
            _Step(dispatched, SHIPMENT, "dispatched", {"carrier_id": ship.carrier_id, "promised_delivery_at": promise}),
        ]
        plan = _Plan(rng, ship, steps, promise)
        plan.carrier("accepted", dispatched + rng.uniform(300, HOUR), eta=delivered)
        plan.warehouse("in_transit", in_transit)
        plan.carrier("in_transit", in_transit + rng.uniform(0.5, 3) * HOUR, eta=delivered)
        incident = self._pick_incident()
        # Slips are drawn among the shipments without an incident, so they make eta_slip_rate of all shipments.
        if incident is None and rng.random() < self.mix.eta_slip_rate / max(1e-9, 1 - self.mix.exception_rate):
            return plan.eta_slip(at_hub, out, delivered), None
        if incident is None:
            return plan.deliver(at_hub, out, delivered), None
        return plan.incident(incident, in_transit, at_hub, out, delivered)

    def _pick_incident(self) -> str | None:
        if self.rng.random() >= self.mix.exception_rate:
            return None
        return self.rng.choices(list(_INCIDENTS), weights=list(_INCIDENTS.values()))[0]

    def _make_late(self, steps: list[_Step]) -> None:
        """Hold a few events back until after their shipment's next one (a slow feed, a retry)."""
        per_event = self.mix.late_rate / 0.75  # picked among movements (~85% of traffic) but never the last
        index = 0
        while index < len(steps) - 1:
            if self.rng.random() < per_event:
                lag = steps[index + 1].t + self.rng.uniform(60, 3 * HOUR)
                steps[index] = replace(steps[index], arrival=lag, tags=(*steps[index].tags, LATE))
                index += 1  # its successor stays on time, so it really is newer and already there
            index += 1

    # --- calls --------------------------------------------------------------------------------

    def _calls_about(
        self, ship: _Shipment, t0: float, steps: list[_Step], incident: tuple[str, float] | None
    ) -> list[tuple[float, str, dict, tuple[str, ...]]]:
        """(when, category, call fields, tags) of the calls this shipment provokes."""
        rng = self.rng
        end = steps[-1].t
        calls: list[tuple[float, str, dict, tuple[str, ...]]] = []
        if rng.random() < 0.85:  # "where is my parcel?"
            asked = rng.uniform(t0 + HOUR, max(t0 + 2 * HOUR, end))
            calls.append((asked, "query", {}, ()))
            if rng.random() < 0.3:  # no answer that helped: they call again within hours
                category = "complaint" if rng.random() < 0.3 else "query"
                calls.append((asked + rng.uniform(0.5, 6) * HOUR, category, {}, (REPEAT_CONTACT,)))
        slip = next((s.t for s in steps if ETA_SLIP in s.tags), None)
        if slip is not None and rng.random() < 0.5:
            calls.append((slip + rng.uniform(1, 8) * HOUR, "query", {}, ()))
        if incident is not None:
            code, when = incident
            if rng.random() < 0.5:
                calls.append((when + rng.uniform(1, 12) * HOUR, "complaint", {}, ()))
            if code in ("damaged", "lost") and rng.random() < 0.75:
                calls.append((when + rng.uniform(2, 48) * HOUR, "claim", {"channel": "email"}, ()))
        elif rng.random() < 0.03:
            calls.append((rng.uniform(t0, end + HOUR), "complaint", {}, ()))
        if steps[-1].status == "delivered" and rng.random() < 0.3:
            score = rng.choice((1, 2, 3)) if incident else rng.choice((3, 4, 5, 5))
            calls.append(
                (
                    end + rng.uniform(2, 24) * HOUR,
                    "survey",
                    {"direction": "outbound", "channel": rng.choice(("phone", "wechat")), "satisfaction_score": score},
                    (),
                )
            )
        return calls

    def _emit_customer_call(self, ship: _Shipment, t0: float) -> None:
        """Calls about no particular shipment: bookings, feedback, and now and then a rush order."""
        rng = self.rng
        at = t0 + rng.uniform(0, 24) * HOUR
        category = rng.choices(("booking", "feedback", "urgent_order"), weights=(50, 30, 20))[0]
        if at < 0:
            return
        extra: dict[str, Any] = {"shipment_id": None}
        if category == "booking":
            extra["requested_deadline"] = at + rng.uniform(24, 120) * HOUR
        elif category == "urgent_order":
            extra.update(order_id=f"SO{rng.randrange(10**9):09d}", requested_deadline=at + rng.uniform(2, 12) * HOUR)
        tags = (URGENT,) if category == "urgent_order" else ()
        self._emit(at, CALL, ship.customer_id, self._call(ship, category, at, **extra), tags)

    def _call(
        self,
        ship: _Shipment,
        category: str,
        at: float,
        *,
        direction: str = "inbound",
        channel: str | None = None,
        **extra: Any,
    ) -> dict[str, Any]:
        rng = self.rng
        channel = channel or rng.choices(("phone", "wechat", "chat", "email"), weights=(50, 25, 15, 10))[0]
        timed = channel in ("phone", "wechat", "chat")
        english, chinese = _NOTES[category]
        doc = {
            "occurred_at": at,
            "source": _DESKS[channel],
            "call_id": f"CL{rng.getrandbits(40):010X}",
            "customer_id": ship.customer_id,
            "shipment_id": ship.shipment_id,
            "order_id": ship.order_id,
            "direction": direction,
            "channel": channel,
            "category": category,
            "agent_id": f"agent-{rng.randrange(1, 60):03d}",
            "duration_s": rng.randint(30, 900) if timed else None,
            "caller_phone": ship.phone if channel == "phone" and direction == "inbound" else None,
            "notes": english if ship.language is Language.EN else chinese,
        }
        doc.update(extra)
        return doc

    # --- rendering and queuing ----------------------------------------------------------------

    def _emit_step(self, ship: _Shipment, step: _Step) -> None:
        arrival = step.t if step.arrival is None else step.arrival
        if arrival < 0:
            return
        if step.kind == SHIPMENT:
            doc = {
                "occurred_at": step.t,
                "source": self.rng.choice(_WAREHOUSES),
                "shipment_id": ship.shipment_id,
                "customer_id": ship.customer_id,
                "type": step.status,
                **step.fields,
            }
        else:
            doc = {
                "occurred_at": step.t,
                "source": f"carrier:{ship.carrier_id}",
                "carrier_id": ship.carrier_id,
                "carrier_tracking_no": ship.tracking_no,
                "shipment_id": ship.shipment_id,
                "status": step.status,
                "raw_code": _RAW_CODES.get(step.status),
                **step.fields,
            }
        self._emit(arrival, step.kind, ship.shipment_id, doc, step.tags)

    def _emit(self, arrival: float, kind: str, key: str, doc: dict[str, Any], tags: tuple[str, ...]) -> None:
        """Queue one message (and maybe its duplicate and a malformed sibling); the past is not sent."""
        if arrival < 0:
            return
        rng = self.rng
        event_id = self._uuid()
        zone = UTC if kind == CARRIER else CHINA
        value = self._render({"event_id": event_id, **doc}, zone)
        key_bytes = key.encode()
        self._push(arrival, PlannedMessage(kind, key_bytes, value, 0.0, event_id, tags))
        if rng.random() < self.mix.duplicate_rate:
            self._push(
                arrival + rng.uniform(1, 1800), PlannedMessage(kind, key_bytes, value, 0.0, event_id, (DUPLICATE,))
            )
        if rng.random() < self.mix.malformed_rate:
            how = rng.choice(MALFORMATIONS)
            broken = self._malformed(how, kind, {"event_id": self._uuid(), **doc}, zone)
            self._push(
                arrival + rng.uniform(0, 120),
                PlannedMessage(kind, key_bytes, broken, 0.0, None, (MALFORMED, f"{MALFORMED}:{how}")),
            )

    def _push(self, arrival: float, message: PlannedMessage) -> None:
        heapq.heappush(self.heap, (arrival, next(self.seq), message))

    def _uuid(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _render(self, doc: dict[str, Any], zone: timezone) -> bytes:
        return orjson.dumps(self._plain(doc, zone))

    def _plain(self, doc: dict[str, Any], zone: timezone, *, naive: bool = False) -> dict[str, Any]:
        """Simulated times become RFC 3339 text; absent (None) fields are left out."""
        out = {}
        for name, value in doc.items():
            if value is None:
                continue
            if name in _TIME_FIELDS:
                value = self._timestamp(value, zone, naive=naive and name == "occurred_at")
            out[name] = value
        return out

    def _timestamp(self, t: float, zone: timezone, *, naive: bool = False) -> str:
        moment = (self.start + timedelta(milliseconds=round(t * 1000))).astimezone(zone)
        if naive:
            return moment.replace(tzinfo=None).isoformat(timespec="milliseconds")
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    def _malformed(self, how: str, kind: str, doc: dict[str, Any], zone: timezone) -> bytes:
        """A message the hub must dead-letter, built from a valid one so it looks like the real thing."""
        if how == "bad_json":
            text = orjson.dumps(self._plain(doc, zone)).decode()
            return text[: self.rng.randrange(len(text) // 3, len(text) - 1)].encode()  # a cut-off object
        if how == "naive_timestamp":
            return orjson.dumps(self._plain(doc, zone, naive=True))
        if how == "unknown_enum":
            field_name, unknown = {
                SHIPMENT: ("type", "on_hold"),
                CARRIER: ("status", "customs_cleared"),
                CALL: ("category", "callback_request"),
            }[kind]
            return orjson.dumps(self._plain({**doc, field_name: unknown}, zone))
        return orjson.dumps(self._plain({**doc, "source": f"{doc['source']}\x00"}, zone))  # NUL


_TIME_FIELDS = frozenset({"occurred_at", "promised_delivery_at", "eta", "requested_deadline"})


class _Plan:
    """Builds the rest of a shipment's steps once the common start (created .. in transit) is planned."""

    def __init__(self, rng: random.Random, ship: _Shipment, steps: list[_Step], promise: float) -> None:
        self.rng, self.ship, self.steps, self.promise = rng, ship, steps, promise

    def warehouse(self, status: str, t: float, tags: tuple[str, ...] = (), **fields: Any) -> None:
        self.steps.append(_Step(t, SHIPMENT, status, fields, tags))

    def carrier(
        self, status: str, t: float, tags: tuple[str, ...] = (), *, always: bool = False, **fields: Any
    ) -> None:
        if always or self.rng.random() < _CARRIER_REPORTS.get(status, 1.0):
            self.steps.append(_Step(t, CARRIER, status, fields, tags))

    def deliver(
        self,
        at_hub: float,
        out: float,
        delivered: float,
        *,
        eta_at_hub: float | None = None,
        hub_tags: tuple[str, ...] = (),
    ) -> list[_Step]:
        dest = _location(self.ship.destination)
        self.carrier(
            "arrived_at_hub", at_hub, hub_tags, always=bool(hub_tags), eta=eta_at_hub or delivered, location=dest
        )
        self.carrier("out_for_delivery", out, eta=delivered, location=dest)
        self.warehouse("out_for_delivery", out + self.rng.uniform(60, 1800))
        self.carrier("delivered", delivered, location=dest, proof_of_delivery=self._proof())
        self.warehouse("delivered", delivered + self.rng.uniform(120, HOUR))
        return self.steps

    def eta_slip(self, at_hub: float, out: float, delivered: float) -> list[_Step]:
        """The carrier's ETA slips past the promise at the hub; now and then it catches up again."""
        late_by = self.rng.uniform(4, 30) * HOUR
        slipped_eta = max(delivered, self.promise) + late_by
        if self.rng.random() < 0.3:  # recovered: delivered on time after all
            return self.deliver(at_hub, out, delivered, eta_at_hub=slipped_eta, hub_tags=(ETA_SLIP,))
        shift = slipped_eta - delivered
        return self.deliver(at_hub, out + shift, slipped_eta, eta_at_hub=slipped_eta, hub_tags=(ETA_SLIP,))

    def incident(
        self, code: str, in_transit: float, at_hub: float, out: float, delivered: float
    ) -> tuple[list[_Step], tuple[str, float]]:
        rng = self.rng
        tags = (EXCEPTION, f"{EXCEPTION}:{code}")
        if code in ("delayed", "weather", "customs_hold", "other"):
            when = rng.uniform(in_transit, at_hub)
            self._report(code, when, tags, carrier_only=code == "weather")
            shift = rng.uniform(12, 48) * HOUR
            return self.deliver(at_hub + shift, out + shift, delivered + shift), (code, when)
        if code == "lost":
            when = rng.uniform(in_transit, at_hub) + 6 * HOUR  # noticed when the scan is overdue
            self._report(code, when, tags)
            return self.steps, (code, when)
        if code == "damaged":
            when = at_hub + rng.uniform(0.5, 2) * HOUR
            self._report(code, when, tags)
            if rng.random() < 0.5:
                return self._return_to_sender(when + rng.uniform(2, 12) * HOUR), (code, when)
            return self.deliver(at_hub, out, delivered), (code, when)
        # At the door: address_issue, refused, or nobody home (attempt_failed).
        dest = _location(self.ship.destination)
        self.carrier("arrived_at_hub", at_hub, eta=delivered, location=dest)
        self.carrier("out_for_delivery", out, eta=delivered, location=dest)
        when = delivered
        exception_code = None if code == "attempt_failed" else code
        self.carrier(
            "attempt_failed",
            when,
            tags,
            always=True,
            exception_code=exception_code,
            raw_description=_DESCRIPTIONS[code],
            location=dest,
        )
        if code == "refused":
            return self._return_to_sender(when + rng.uniform(2, 24) * HOUR), (code, when)
        if rng.random() < 0.4:
            self.warehouse("delivery_failed", when + rng.uniform(300, HOUR))
        next_day = 24 * HOUR
        return self.deliver(at_hub + next_day, out + next_day, delivered + next_day), (code, when)

    def _report(self, code: str, when: float, tags: tuple[str, ...], *, carrier_only: bool = False) -> None:
        if carrier_only or self.rng.random() < 0.5:
            self.carrier("exception", when, tags, always=True, exception_code=code, raw_description=_DESCRIPTIONS[code])
        else:
            self.warehouse(
                "exception",
                when,
                tags,
                exception={"code": code, "description": _DESCRIPTIONS[code]},
                declared_value=self.ship.declared_value,
            )

    def _return_to_sender(self, t: float) -> list[_Step]:
        self.carrier("returned_to_sender", t, always=True, raw_description="Returned to sender")
        self.warehouse("returned", t + self.rng.uniform(1, 24) * HOUR)
        return self.steps

    def _proof(self) -> dict[str, str]:
        return {
            "signed_by": self.rng.choice(("recipient", "front desk", "neighbour", "parcel locker")),
            "photo_url": f"https://pod.example.com/{self.ship.tracking_no}.jpg",
        }


def _location(city: tuple) -> dict[str, Any]:
    code, name, lat, lon = city
    return {"code": code, "city": name, "lat": lat, "lon": lon}


def _round_up_hour(t: float) -> float:
    return math.ceil(t / HOUR) * HOUR
