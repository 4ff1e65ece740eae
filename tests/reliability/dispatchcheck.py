"""Dispatch's oracle: the notifications in Postgres against what the receivers got (peers.py).

- every notification ends `sent`, `failed` only where the scenario says its endpoint is dead,
  `suppressed` only for a milestone notice whose shipment has a later milestone notice; one still
  `pending` at the end is liveness (`notices unsent`);
- a `sent` notification was received at least once; every copy carries the notification's own id
  (webhook-id and the body's notification_id, Message-ID `<id@domain>`, the gateway's
  idempotency_key), reached its customer's address, and a webhook's signature verifies with the
  customer's secret. Copies (one notification received more than once) are counted: at least once
  is the contract, and the scenario decides whether any are allowed (none without a crash);
- a `failed` notification went through the whole (scaled) schedule: one try per step and one
  more, each answered by the receiver (a request per recorded try), not given up before the
  schedule's length (less its jitter), and it raised exactly one `notification_failed` task
  (call_centre) and one alert, on its queue; no such task or alert for anything else.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import asyncpg
import orjson

from tests.reliability.checker import Findings
from tests.reliability.oracle import RETRY_JITTER, RETRY_SCHEDULE
from tests.reliability.peers import Receipt

MILESTONE_RANK = {"dispatched": 0, "out_for_delivery": 1, "delivered": 2}
FAILED_TIMER = "notification_failed"

SELECT_NOTICES = """
SELECT notification_id::text AS id, customer_id, shipment_id, kind, channel, status, created_at, sent_at, failed_at,
       attempts
FROM customer_notifications
"""
SELECT_ATTEMPTS = """
SELECT notification_id::text AS id, attempt, at, outcome, status_code FROM notification_attempts ORDER BY id, attempt
"""
SELECT_FAILURE_TASKS = """
SELECT task_id::text AS task_id, department, details->>'notification_id' AS notification_id
FROM coordination_tasks WHERE rule = $1
"""
SELECT_OTHER_CLOCK_TASKS = "SELECT count(*) FROM coordination_tasks WHERE source_event_id LIKE 'clock:%' AND rule <> $1"
SELECT_OUTBOX = "SELECT message_id, value, sent_at IS NOT NULL AS sent FROM outbox WHERE topic = ANY($1::text[])"


@dataclass(frozen=True)
class Address:
    """Where a customer's notices must arrive."""

    channel: str
    email: str | None = None
    phone: str | None = None
    path: str | None = None  # the webhook endpoint's path on the HTTP peer


@dataclass
class DispatchState:
    notices: dict[str, dict]
    attempts: dict[str, list[dict]]
    failure_tasks: list[dict]
    other_clock_tasks: int
    failure_alerts: list[tuple[str, dict, bool]]  # (alert_id, alert, sent)


async def read_dispatch_state(dsn: str, alert_topics: list[str]) -> DispatchState:
    conn = await asyncpg.connect(dsn, timeout=30)
    try:
        notices = {r["id"]: dict(r) for r in await conn.fetch(SELECT_NOTICES)}
        attempts: dict[str, list[dict]] = defaultdict(list)
        for r in await conn.fetch(SELECT_ATTEMPTS):
            attempts[r["id"]].append(dict(r))
        tasks = [dict(r) for r in await conn.fetch(SELECT_FAILURE_TASKS, FAILED_TIMER)]
        other = await conn.fetchval(SELECT_OTHER_CLOCK_TASKS, FAILED_TIMER)
        alerts = []
        for r in await conn.fetch(SELECT_OUTBOX, alert_topics):
            doc = orjson.loads(r["value"])
            if (doc.get("source") or {}).get("timer") == FAILED_TIMER:
                alerts.append((r["message_id"], doc, r["sent"]))
    finally:
        await conn.close()
    return DispatchState(notices, dict(attempts), tasks, other, alerts)


async def pending_notices(dsn: str) -> int:
    conn = await asyncpg.connect(dsn, timeout=10)
    try:
        return await conn.fetchval("SELECT count(*) FROM customer_notifications WHERE status = 'pending'")
    finally:
        await conn.close()


@dataclass
class DispatchReport:
    statuses: Counter = field(default_factory=Counter)
    channels: Counter = field(default_factory=Counter)
    receipts: int = 0
    copies: int = 0
    suppressed_received: int = 0  # sent by a hub that died before recording it, then suppressed
    delays_s: list[float] = field(default_factory=list)  # first receipt - created_at, of healthy notices
    waits: list[tuple[datetime, datetime, str]] = field(default_factory=list)  # (created, received, id) of those
    failed_spans_s: list[float] = field(default_factory=list)  # first try to giving up, of failed notices

    @property
    def max_delay_s(self) -> float:
        return max(self.delays_s, default=0.0)

    def summary(self) -> str:
        statuses = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        channels = ", ".join(f"{n} {c}" for c, n in sorted(self.channels.items()))
        text = f"{sum(self.statuses.values())} notices ({statuses}; {channels}); {self.receipts} receipts"
        if self.delays_s:
            p50 = statistics.median(self.delays_s)
            text += f"; created->received p50 {p50:.2f}s, max {self.max_delay_s:.2f}s"
        if self.failed_spans_s:
            text += f"; failed after {min(self.failed_spans_s):.0f}-{max(self.failed_spans_s):.0f}s of tries"
        return text


def schedule_s(scale: float) -> float:
    """The whole retry schedule, scaled: the shortest time from a first try to giving up, before jitter."""
    return sum(step.total_seconds() for step in RETRY_SCHEDULE) * scale


def judge_dispatch(
    f: Findings,
    state: DispatchState,
    receipts: list[Receipt],
    addresses: dict[str, Address],
    topic_alerts: list[dict],
    *,
    domain: str,
    retry_scale: float,
    dead: frozenset[str] = frozenset(),
) -> DispatchReport:
    """`addresses`: customer_id -> where its notices go; `dead`: customers whose endpoint is down for
    the whole run (their notices must fail after the schedule, every other one must be sent)."""
    report = DispatchReport(receipts=len(receipts))
    f.notices = len(state.notices)
    got: dict[str, list[Receipt]] = defaultdict(list)
    for receipt in receipts:
        nid = _receipt_id(f, receipt, state, addresses, domain)
        if nid is not None:
            got[nid].append(receipt)
    milestones: dict[str, int] = defaultdict(lambda: -1)
    for notice in state.notices.values():
        if notice["kind"] in MILESTONE_RANK and notice["shipment_id"]:
            milestones[notice["shipment_id"]] = max(milestones[notice["shipment_id"]], MILESTONE_RANK[notice["kind"]])
    failed: set[str] = set()
    for nid, notice in state.notices.items():
        tries = got.get(nid, [])
        copies = [r for r in tries if r.delivered]  # a 503 or a 451 is a try, not a delivery
        status = notice["status"]
        report.statuses[status] += 1
        report.channels[notice["channel"]] += 1
        if len(copies) > 1 and notice["customer_id"] not in dead:
            report.copies += len(copies) - 1
            f.notice_copies += len(copies) - 1
            f.sample("notice copies", f"{notice['kind']} {nid} by {notice['channel']}: received {len(copies)} times")
        if status == "pending":
            f.notices_unsent += 1
            f.sample("notice unsent", f"{notice['kind']} {nid} by {notice['channel']}: still pending")
        elif status == "suppressed":
            if copies:
                report.suppressed_received += 1
                f.sample("suppressed, yet received", f"{notice['kind']} {nid}: received {len(copies)} times")
            if MILESTONE_RANK.get(notice["kind"], 99) >= milestones[notice["shipment_id"] or ""]:
                f.wrongly_suppressed += 1
                f.sample("wrongly suppressed", f"{notice['kind']} {nid} of {notice['shipment_id']}: no later milestone")
        elif notice["customer_id"] in dead:
            if status == "failed":
                failed.add(nid)
                _check_given_up(f, notice, state.attempts.get(nid, []), tries, retry_scale, report)
            else:
                f.notice_id_mismatches += 1
                f.sample("notice id mismatch", f"{nid} of the dead endpoint ends {status}")
        elif status == "failed":
            f.notices_failed += 1
            f.sample("notice failed", f"{notice['kind']} {nid} by {notice['channel']}: {state.attempts.get(nid)}")
        elif status == "sent":
            if not copies:
                f.notices_lost += 1
                f.sample("notice lost", f"{notice['kind']} {nid} by {notice['channel']}: sent, never received")
            else:
                received = min(r.at for r in copies)
                report.delays_s.append((received - notice["created_at"]).total_seconds())
                report.waits.append((notice["created_at"], received, nid))
    for nid in got.keys() - state.notices.keys():
        f.notice_id_mismatches += 1
        f.sample("notice id mismatch", f"received {nid!r}, which is no notification")
    _check_failure_effects(f, state, failed, topic_alerts)
    return report


def _receipt_id(
    f: Findings, receipt: Receipt, state: DispatchState, addresses: dict[str, Address], domain: str
) -> str | None:
    """The notification a receipt is a copy of, if everything it carries agrees; else a mismatch."""
    nid = receipt.notice_id
    problem = None
    if receipt.channel == "email":
        local, _, host = (nid or "").rpartition("@")
        nid = local if host == domain else None
        problem = None if nid else f"Message-ID {receipt.notice_id!r} is not <notification_id@{domain}>"
    elif receipt.channel == "webhook" and receipt.body_id != nid:
        problem = f"webhook-id {nid} but the body's notification_id is {receipt.body_id}"
    notice = state.notices.get(nid or "")
    if problem is None and notice is None:
        problem = f"{receipt.channel} {nid!r} is no notification"
    if problem is None:
        address = addresses.get(notice["customer_id"])
        problem = _address_problem(receipt, notice, address)
    if problem:
        f.notice_id_mismatches += 1
        f.sample("notice id mismatch", problem)
        return None
    return nid


def _address_problem(receipt: Receipt, notice: dict, address: Address | None) -> str | None:
    nid = notice["id"]
    if address is None or address.channel != notice["channel"] or receipt.channel != notice["channel"]:
        return f"{nid} ({notice['channel']}) arrived by {receipt.channel}"
    if receipt.channel == "email" and address.email not in (receipt.to or ""):
        return f"e-mail {nid} to {receipt.to!r}, not its customer's address"
    if receipt.channel == "sms" and receipt.to != address.phone:
        return f"sms {nid} to another number"
    if receipt.channel == "webhook":
        if receipt.path != address.path or receipt.customer_id != notice["customer_id"]:
            return f"webhook {nid} for {receipt.customer_id} at {receipt.path}, not its customer's endpoint"
        if receipt.kind != notice["kind"]:
            return f"webhook {nid} says kind {receipt.kind}, the notification is {notice['kind']}"
        if not receipt.verified:
            return f"webhook {nid}: its signature does not verify with the customer's secret"
    return None


def _check_given_up(
    f: Findings, notice: dict, attempts: list[dict], copies: list[Receipt], scale: float, report: DispatchReport
) -> None:
    """A dead endpoint's notice: one try per step of the schedule and one more, each a request the
    receiver answered 503, and not given up before the schedule's length (less its jitter)."""
    nid, tries = notice["id"], len(RETRY_SCHEDULE) + 1
    outcomes = [a["outcome"] for a in attempts]
    problems = []
    if outcomes != ["retry"] * (tries - 1) + ["failed"]:
        problems.append(f"tries {outcomes}, expected {tries - 1} retries then failed")
    if len(copies) != len(attempts):
        problems.append(f"{len(copies)} requests reached the endpoint for {len(attempts)} recorded tries")
    if attempts:
        span = (notice["failed_at"] - attempts[0]["at"]).total_seconds()
        report.failed_spans_s.append(span)
        shortest = schedule_s(scale) * (1 - RETRY_JITTER)
        if span < shortest:
            problems.append(f"given up {span:.1f}s after the first try, before the schedule's {shortest:.1f}s")
    if problems:
        f.failure_effects_wrong += 1
        f.sample("failure effects wrong", f"{nid}: {'; '.join(problems)}")


def _check_failure_effects(f: Findings, state: DispatchState, failed: set[str], topic_alerts: list[dict]) -> None:
    tasks = Counter(t["notification_id"] for t in state.failure_tasks)
    task_of = {t["task_id"]: t["notification_id"] for t in state.failure_tasks}
    for t in state.failure_tasks:
        if t["department"] != "call_centre":
            f.failure_effects_wrong += 1
            f.sample("failure effects wrong", f"failure task {t['task_id']} for department {t['department']}")
    alerts = Counter(
        task_of.get(doc.get("task_id"), f"task {doc.get('task_id')}") for _, doc, _ in state.failure_alerts
    )
    for nid in failed:
        for what, n in (("task", tasks[nid]), ("alert", alerts[nid])):
            if n != 1:
                f.failure_effects_wrong += 1
                f.sample("failure effects wrong", f"failed {nid}: {n} notification_failed {what}s, expected one")
    for nid in (tasks.keys() | alerts.keys()) - failed:
        f.failure_effects_wrong += 1
        f.sample("failure effects wrong", f"a notification_failed task or alert for {nid}, which did not fail")
    if state.other_clock_tasks:
        f.unexpected_effects += state.other_clock_tasks
        f.sample("unexpected effect", f"{state.other_clock_tasks} timer tasks other than notification_failed")
    on_topic = Counter(doc["alert_id"] for doc in topic_alerts)
    for alert_id, _doc, sent in state.failure_alerts:
        if on_topic[alert_id]:
            f.duplicate_alerts += on_topic[alert_id] - 1
        elif sent:
            f.missing_alerts += 1
            f.sample("missing alert", f"notification_failed alert {alert_id} marked sent, not on its queue")
        else:
            f.unsent += 1
    known = {alert_id for alert_id, _, _ in state.failure_alerts}
    for alert_id in on_topic.keys() - known:
        f.unexpected_effects += 1
        f.sample("unexpected effect", f"timer alert {alert_id} on a queue, not in the outbox")


def delay_bound_note(report: DispatchReport, bound: timedelta) -> str:
    return f"max created->received {report.max_delay_s:.2f}s (bound {bound.total_seconds():.0f}s)"


__all__ = [
    "Address",
    "DispatchReport",
    "DispatchState",
    "judge_dispatch",
    "pending_notices",
    "read_dispatch_state",
    "schedule_s",
]
