"""Dispatch decisions, pure: what to do with a due notification, what a try's result means, when
to try again, when quiet hours end, when an endpoint's circuit is open.

Contract 1.1, "Notification dispatch": 2xx sent; 410 failed at once and the webhook disabled;
other 4xx but 408 and 429 failed at once; 3xx, 408, 429, 5xx, timeouts, refused connections and
SMTP 4xx tried again after 5 s, 5 min, 30 min, 2 h, 5 h and 10 h (+-10 % jitter, Retry-After
honoured), then failed. Milestone, survey and statement notices by sms, wechat and phone wait
out quiet hours; a pending milestone notice with a later milestone notice of its shipment is
suppressed, never sent.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, tzinfo
from enum import StrEnum
from typing import NamedTuple

from schemas.enums import NotificationChannel, NotificationKind

RETRY_SCHEDULE: tuple[timedelta, ...] = (
    timedelta(seconds=5),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=5),
    timedelta(hours=10),
)
JITTER = 0.10
MILESTONES = (NotificationKind.DISPATCHED, NotificationKind.OUT_FOR_DELIVERY, NotificationKind.DELIVERED)
MILESTONE_RANK = {kind.value: rank for rank, kind in enumerate(MILESTONES)}
# Kinds that may wait for the morning, on channels that would wake someone up.
QUIET_KINDS = frozenset({*(k.value for k in MILESTONES), "satisfaction_survey", "monthly_statement"})
QUIET_CHANNELS = frozenset(
    {NotificationChannel.SMS.value, NotificationChannel.WECHAT.value, NotificationChannel.PHONE.value}
)
DEFAULT_QUIET_HOURS = "22:00-08:00"


class Outcome(StrEnum):
    SENT = "sent"
    RETRY = "retry"
    FAILED = "failed"


class TryResult(NamedTuple):
    """What one try came back with, classified."""

    outcome: Outcome
    status_code: int | None = None
    error: str | None = None
    retry_after: timedelta | None = None  # the receiver asked us to wait at least this long
    disable_webhook: bool = False  # 410 Gone: the endpoint is retired


# --- classifying a try ---------------------------------------------------------------------------


def classify_http(status: int, retry_after: str | None = None) -> TryResult:
    if 200 <= status < 300:
        return TryResult(Outcome.SENT, status)
    if status == 410:
        return TryResult(
            Outcome.FAILED, status, "410 Gone: the endpoint is retired; its webhook is disabled", disable_webhook=True
        )
    if 400 <= status < 500 and status not in (408, 429):
        return TryResult(Outcome.FAILED, status, f"HTTP {status}: the receiver refused the notification")
    what = "a redirect (not followed)" if 300 <= status < 400 else f"HTTP {status}"
    return TryResult(Outcome.RETRY, status, what, parse_retry_after(retry_after))


def classify_smtp(code: int, message: str = "") -> TryResult:
    text = f"SMTP {code}" + (f": {message[:200]}" if message else "")
    if 200 <= code < 300:
        return TryResult(Outcome.SENT, code)
    if 400 <= code < 500:
        return TryResult(Outcome.RETRY, code, text)
    return TryResult(Outcome.FAILED, code, text)


def unreachable(error: str) -> TryResult:
    """A timeout, a refused connection, a reset: the receiver may be back later."""
    return TryResult(Outcome.RETRY, None, error)


def refused(error: str) -> TryResult:
    """Something no retry can fix (no address, a URL the hub may not call)."""
    return TryResult(Outcome.FAILED, None, error)


def parse_retry_after(value: str | None) -> timedelta | None:
    """Retry-After in seconds (dates are rare from APIs and are treated as absent)."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    return timedelta(seconds=min(max(seconds, 0.0), 24 * 3600))


# --- when to try again ---------------------------------------------------------------------------


def next_try(
    tries: int, now: datetime, jitter: float, retry_after: timedelta | None = None, scale: float = 1.0
) -> datetime | None:
    """After `tries` failed tries (1 = the first), when to try again; None: the schedule is over.

    `jitter` in [-1, 1] spreads the wait by up to +-10 %; a Retry-After longer than the wait wins.
    `scale` shrinks the schedule for drills and tests (HUB_DISPATCH_RETRY_SCALE); 1 in production.
    """
    if tries > len(RETRY_SCHEDULE):
        return None
    wait = RETRY_SCHEDULE[tries - 1] * scale * (1 + JITTER * max(-1.0, min(1.0, jitter)))
    if retry_after is not None and retry_after > wait:
        wait = retry_after
    return now + wait


# --- quiet hours ---------------------------------------------------------------------------------


class QuietHours(NamedTuple):
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> QuietHours:
        """HH:MM-HH:MM; the window may span midnight (22:00-08:00)."""
        try:
            first, second = text.strip().split("-")
            return cls(time.fromisoformat(first), time.fromisoformat(second))
        except ValueError:
            raise ValueError(f"quiet hours {text!r}: write them as HH:MM-HH:MM, e.g. 22:00-08:00") from None


def quiet_until(now: datetime, zone: tzinfo, window: QuietHours) -> datetime | None:
    """The end of the quiet window `now` falls in (in `zone`), or None when it is not quiet."""
    local = now.astimezone(zone)
    clock = local.time().replace(tzinfo=None)
    start, end = window
    if start == end:
        return None
    spans_midnight = start > end
    inside = (clock >= start or clock < end) if spans_midnight else (start <= clock < end)
    if not inside:
        return None
    day = local.date() if not spans_midnight or clock < end else local.date() + timedelta(days=1)
    return datetime.combine(day, end, tzinfo=zone)


def waits_for_quiet_hours(kind: str, channel: str) -> bool:
    return kind in QUIET_KINDS and channel in QUIET_CHANNELS


# --- supersession --------------------------------------------------------------------------------


def superseded(kind: str, latest_milestone_rank: int | None) -> bool:
    """A milestone notice is superseded once a later milestone of its shipment has a notice."""
    rank = MILESTONE_RANK.get(kind)
    return rank is not None and latest_milestone_rank is not None and latest_milestone_rank > rank


# --- circuit breaker -----------------------------------------------------------------------------


@dataclass
class Breaker:
    """closed -> open after `threshold` failures in a row; open for `open_for`; then one probe
    (half-open): a success closes it, a failure opens it again. While open, notices for the
    endpoint wait without spending a try."""

    threshold: int
    open_for: timedelta
    failures: int = 0
    opened_at: datetime | None = None
    probing: bool = False

    def allows(self, now: datetime) -> bool:
        if self.opened_at is None:
            return True
        if self.probing or now < self.opened_at + self.open_for:
            return False
        self.probing = True  # the one probe of the half-open state
        return True

    def reopens_at(self) -> datetime | None:
        return None if self.opened_at is None else self.opened_at + self.open_for

    def record(self, outcome: Outcome, now: datetime) -> None:
        if outcome is Outcome.RETRY:  # only "may be back later" failures say the endpoint is down
            self.failures += 1
            if self.probing or self.failures >= self.threshold:
                self.opened_at, self.probing = now, False
            return
        self.failures, self.opened_at, self.probing = 0, None, False

    @property
    def is_open(self) -> bool:
        return self.opened_at is not None


# --- planning one due notification ---------------------------------------------------------------


class Action(StrEnum):
    SEND = "send"
    SUPPRESS = "suppress"  # a later milestone of its shipment has a notice
    WAIT = "wait"  # quiet hours: try at `until`
    CALL_BACK = "call_back"  # phone: a call_centre task delivers it


class Plan(NamedTuple):
    action: Action
    until: datetime | None = None


def plan(
    kind: str, channel: str, latest_milestone_rank: int | None, now: datetime, zone: tzinfo, quiet_hours: str | None
) -> Plan:
    """What to do with a due notice: suppress it, let it wait out quiet hours, or send it."""
    if superseded(kind, latest_milestone_rank):
        return Plan(Action.SUPPRESS)
    if waits_for_quiet_hours(kind, channel):
        until = quiet_until(now, zone, QuietHours.parse(quiet_hours or DEFAULT_QUIET_HOURS))
        if until is not None:
            return Plan(Action.WAIT, until)
    return Plan(Action.CALL_BACK if channel == NotificationChannel.PHONE.value else Action.SEND)
