"""Silences: which alerts an operator has asked the hub not to publish for a while (contract 1.1, "Ops
console"). Pure: the store loads the active silences and asks this module which one, if any, an
alert matches; a matching alert is still recorded (its task, its outbox row marked with the
silence's id) but never published on its queue.

A matcher names up to six fields of an alert (`queue`, `kind`, `department`, `carrier_id`,
`customer_id`, `shipment_id`); an alert matches when it has every named value exactly. A matcher
that names nothing would silence everything, so it is refused. `department` is the department of
the alert's task and `carrier_id` the carrier on its shipment's tracking sheet: alerts do not carry
them, so the store looks them up only while some active silence names one of them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime

MATCHER_FIELDS = ("queue", "kind", "department", "carrier_id", "customer_id", "shipment_id")
# Fields the alert itself carries; the others come from its task (department) and its shipment's sheet.
LOOKED_UP_FIELDS = frozenset({"department", "carrier_id"})
MAX_VALUE_LENGTH = 128


class MatcherError(ValueError):
    """A matcher the hub cannot use; the message says why."""


@dataclass(frozen=True)
class Matcher:
    """Exact values an alert must have; None: any value."""

    queue: str | None = None
    kind: str | None = None
    department: str | None = None
    carrier_id: str | None = None
    customer_id: str | None = None
    shipment_id: str | None = None

    def named(self) -> dict[str, str]:
        """The fields this matcher constrains, with their values."""
        return {f.name: v for f in fields(self) if (v := getattr(self, f.name)) is not None}

    def needs_lookup(self) -> bool:
        return bool(LOOKED_UP_FIELDS & self.named().keys())

    def matches(self, alert: AlertFacts) -> bool:
        return all(getattr(alert, name) == value for name, value in self.named().items())

    def describe(self) -> str:
        return ", ".join(f"{name}={value}" for name, value in self.named().items())


@dataclass(frozen=True)
class AlertFacts:
    """What a silence can match on, for one alert."""

    queue: str
    kind: str
    customer_id: str | None
    shipment_id: str | None
    department: str | None = None  # of the alert's task
    carrier_id: str | None = None  # on the alert's shipment's sheet


@dataclass(frozen=True)
class ActiveSilence:
    silence_id: int
    matcher: Matcher
    ends_at: datetime


def make_matcher(
    values: Mapping[str, str | None],
    *,
    queues: Iterable[str] = (),
    kinds: Iterable[str] = (),
    departments: Iterable[str] = (),
) -> Matcher:
    """A matcher from form or command-line values: blanks ignored, at least one field, and
    `queue`, `kind`, `department` checked against their vocabularies when given."""
    unknown = set(values) - set(MATCHER_FIELDS)
    if unknown:
        raise MatcherError(f"unknown matcher field(s) {', '.join(sorted(unknown))}: use {', '.join(MATCHER_FIELDS)}")
    cleaned: dict[str, str] = {}
    for name in MATCHER_FIELDS:
        value = (values.get(name) or "").strip()
        if not value:
            continue
        if len(value) > MAX_VALUE_LENGTH or any(ord(c) < 32 for c in value):
            raise MatcherError(f"{name}: at most {MAX_VALUE_LENGTH} characters, no control characters")
        cleaned[name] = value
    if not cleaned:
        raise MatcherError(
            f"a silence must name at least one of {', '.join(MATCHER_FIELDS)}: it would silence every alert"
        )
    for name, vocabulary in (("queue", queues), ("kind", kinds), ("department", departments)):
        allowed = set(vocabulary)
        if allowed and name in cleaned and cleaned[name] not in allowed:
            raise MatcherError(f"{name} {cleaned[name]!r} is not one of {', '.join(sorted(allowed))}")
    return Matcher(**cleaned)


def needs_lookup(silences: Iterable[ActiveSilence]) -> bool:
    """Whether matching needs the alerts' departments and carriers (a query the store skips otherwise)."""
    return any(s.matcher.needs_lookup() for s in silences)


def silenced_by(silences: Iterable[ActiveSilence], alert: AlertFacts, now: datetime) -> int | None:
    """The id of the first silence (oldest first) active at `now` that matches the alert, else None."""
    for silence in sorted(silences, key=lambda s: s.silence_id):
        if silence.ends_at > now and silence.matcher.matches(alert):
            return silence.silence_id
    return None
