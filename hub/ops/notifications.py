"""Customer notifications as the ops commands see them: list and show them (with every try the
dispatcher made), retry a failed one, resend a sent one (contract 1.1, "Notification dispatch").

    pending -> sent | failed | suppressed;  failed -> pending (retry);  sent -> a new pending notice (resend)

A retry puts the same notice back in the dispatcher's queue (pending, due now, a fresh retry
schedule); `notification_attempts` keeps the earlier tries, and the dispatcher numbers the next
one after them. A resend is a new notice with a new id, because receivers drop an id they have
seen (webhook-id, Message-ID, idempotency_key): its id derives from the old id and the resend's
number, its source_event_id is `resend:<old id>:<n>`.

Every change is one transaction: the notice's row is locked, the precondition checked (refusals
are `OpsError`s that say what to do instead), the row written, and the dispatcher woken (NOTIFY,
delivered on commit). A retry or resend the dispatcher could only fail or suppress again (a
disabled webhook, a later milestone notice) is refused up front, saying why.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg

from hub.core.dispatch import MILESTONE_RANK
from hub.core.ids import stable_id
from hub.ops.db import NotFound, OpsError
from schemas.enums import NotificationChannel, NotificationStatus

# The dispatcher's NOTIFY channel (hub.dispatch.queries.DISPATCH_WAKE; ops may not import dispatch).
DISPATCH_WAKE = "hub_dispatch"
# The dispatcher's task for a notice it gave up on: ids derive from ("task", this, notice id, try number).
FAILED_TIMER = "notification_failed"
RESEND_PREFIX = "resend"
_PROBE = 8  # resend numbers looked up per query

NOTIFICATION_COLUMNS = """
n.notification_id::text AS notification_id, n.customer_id, n.shipment_id, n.kind, n.channel, n.language, n.body,
n.status, n.created_at, n.source_event_id, n.next_attempt_at, n.attempts, n.last_error, n.sent_at, n.failed_at,
n.suppressed_at, n.call_task_id::text AS call_task_id, t.status AS call_task_status,
(SELECT count(*) FROM notification_attempts AS a WHERE a.notification_id = n.notification_id)::int AS tries
FROM customer_notifications AS n LEFT JOIN coordination_tasks AS t ON t.task_id = n.call_task_id
"""

# Newest first; every filter optional.
SELECT_NOTIFICATIONS = f"""
SELECT {NOTIFICATION_COLUMNS}
WHERE ($1::text IS NULL OR n.status = $1)
  AND ($2::text IS NULL OR n.channel = $2)
  AND ($3::text IS NULL OR n.customer_id = $3)
  AND ($4::text IS NULL OR n.shipment_id = $4)
  AND ($5::text IS NULL OR n.kind = $5)
ORDER BY n.created_at DESC, n.notification_id DESC
LIMIT $6
"""

SELECT_NOTIFICATION = f"SELECT {NOTIFICATION_COLUMNS} WHERE n.notification_id = $1"

LOCK_NOTIFICATION = "SELECT status FROM customer_notifications WHERE notification_id = $1 FOR UPDATE"

SELECT_ATTEMPTS = """
SELECT attempt, at, outcome, status_code, error, duration_ms FROM notification_attempts
WHERE notification_id = $1 ORDER BY attempt
"""

SELECT_CALL_TASK = """
SELECT task_id::text, status, claimed_by, resolved_by, resolved_at, resolution
FROM coordination_tasks WHERE task_id = $1
"""

# What a webhook notice needs of the register; never the secrets themselves.
SELECT_WEBHOOK_STATE = """
SELECT c.webhook_url IS NOT NULL AS has_url, c.webhook_disabled_at,
       EXISTS (SELECT 1 FROM webhook_secrets AS s
               WHERE s.customer_id = c.customer_id AND (s.expires_at IS NULL OR s.expires_at > $2)) AS has_secret
FROM customers AS c WHERE c.customer_id = $1
"""

# The latest notice of the shipment for a later milestone (the dispatcher suppresses earlier ones).
SELECT_WEBHOOK_DISABLED = "SELECT webhook_disabled_at FROM customers WHERE customer_id = $1"

SELECT_LATER_MILESTONE = """
SELECT notification_id::text, kind, status FROM customer_notifications
WHERE shipment_id = $1 AND kind = ANY($2::text[])
ORDER BY created_at DESC, notification_id DESC LIMIT 1
"""

SELECT_EXISTING_IDS = "SELECT notification_id::text FROM customer_notifications WHERE notification_id = ANY($1::uuid[])"

SELECT_OPEN_TASKS = """
SELECT task_id::text FROM coordination_tasks
WHERE task_id = ANY($1::uuid[]) AND status IN ('open', 'in_progress') ORDER BY created_at
"""

# Back in the dispatcher's queue, due at $2, a fresh retry schedule; last_error stays for reference.
RETRY_NOTIFICATION = """
UPDATE customer_notifications
SET status = 'pending', next_attempt_at = $2, attempts = 0, failed_at = NULL
WHERE notification_id = $1 AND status = 'failed'
"""

# $1 the old notice, $2 the new id, $3 its source_event_id, $4 now (created and due).
INSERT_RESEND = """
INSERT INTO customer_notifications (notification_id, customer_id, shipment_id, kind, channel, language, body,
                                    source_event_id, created_at, next_attempt_at, statement_period)
SELECT $2, customer_id, shipment_id, kind, channel, language, body, $3, $4, $4, statement_period
FROM customer_notifications WHERE notification_id = $1
ON CONFLICT DO NOTHING
RETURNING notification_id
"""

WAKE_DISPATCHER = "SELECT pg_notify($1, '')"


@dataclass(frozen=True)
class Notification:
    notification_id: str
    customer_id: str
    shipment_id: str | None
    kind: str
    channel: str
    language: str
    body: str
    status: str
    created_at: datetime
    source_event_id: str
    next_attempt_at: datetime | None  # pending: when it is due; NULL while a phone notice waits for its call
    attempts: int  # tries in the current retry schedule (a retry starts a new one)
    last_error: str | None
    sent_at: datetime | None
    failed_at: datetime | None
    suppressed_at: datetime | None
    call_task_id: str | None  # phone: the call centre's call-back task
    call_task_status: str | None
    tries: int  # every try recorded in notification_attempts, over the notice's whole life
    resent_from: str | None  # the notice this one re-sends

    @property
    def waits_for_call(self) -> bool:
        return self.status == NotificationStatus.PENDING and self.next_attempt_at is None and bool(self.call_task_id)


@dataclass(frozen=True)
class NotificationFilter:
    status: str | None = None
    channel: str | None = None
    customer_id: str | None = None
    shipment_id: str | None = None
    kind: str | None = None
    limit: int = 50


@dataclass(frozen=True)
class NotificationPage:
    notifications: list[Notification]
    more: bool  # more match than the limit let through


@dataclass(frozen=True)
class Attempt:
    attempt: int
    at: datetime
    outcome: str  # sent | retry | failed
    status_code: int | None
    error: str | None
    duration_ms: int


@dataclass(frozen=True)
class CallTask:
    task_id: str
    status: str
    claimed_by: str | None
    resolved_by: str | None
    resolved_at: datetime | None
    resolution: str | None


@dataclass(frozen=True)
class NotificationView:
    notification: Notification
    attempts: list[Attempt]  # oldest first
    call_task: CallTask | None
    webhook_disabled_at: datetime | None  # webhook notices: the customer's endpoint answered 410 Gone
    resends: list[str]  # ids of the notices that re-send this one, oldest first


@dataclass(frozen=True)
class Retried:
    notification: Notification
    open_failure_tasks: list[str]  # the call centre's "reach the customer another way" tasks, still open


@dataclass(frozen=True)
class Resent:
    original: Notification
    resend: Notification
    number: int


def notification_from_row(row: asyncpg.Record) -> Notification:
    values = dict(row)
    return Notification(**values, resent_from=resent_from(values["source_event_id"]))


def resend_source(notification_id: str, number: int) -> str:
    return f"{RESEND_PREFIX}:{notification_id}:{number}"


def resend_id(notification_id: str, kind: str, number: int) -> str:
    """The resend's id, derived as the hub derives every notice's id: from its source and kind."""
    return stable_id("notification", resend_source(notification_id, number), kind)


def resent_from(source_event_id: str) -> str | None:
    prefix, _, rest = source_event_id.partition(":")
    old, _, number = rest.rpartition(":")
    return old if prefix == RESEND_PREFIX and old and number.isdigit() else None


def _uuid(notification_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(notification_id)
    except ValueError:
        raise NotFound(
            f"{notification_id!r} is not a notification id (they are UUIDs); find it with `hub notifications list`"
        ) from None


def _at(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M %Z}"


# ----------------------------------------------------------------------------------------------- reading


async def list_notifications(conn: asyncpg.Connection, wanted: NotificationFilter) -> NotificationPage:
    rows = await conn.fetch(
        SELECT_NOTIFICATIONS,
        wanted.status,
        wanted.channel,
        wanted.customer_id,
        wanted.shipment_id,
        wanted.kind,
        wanted.limit + 1,
    )
    return NotificationPage([notification_from_row(r) for r in rows[: wanted.limit]], more=len(rows) > wanted.limit)


async def get_notification(conn: asyncpg.Connection, notification_id: str) -> Notification:
    row = await conn.fetchrow(SELECT_NOTIFICATION, _uuid(notification_id))
    if row is None:
        raise NotFound(f"no notification {notification_id}; find the id with `hub notifications list`")
    return notification_from_row(row)


async def notification_view(conn: asyncpg.Connection, notification_id: str) -> NotificationView:
    """The notice, every try, its call-back task (phone) and its resends (`hub notifications show`)."""
    note = await get_notification(conn, notification_id)
    attempts = [Attempt(**dict(r)) for r in await conn.fetch(SELECT_ATTEMPTS, _uuid(notification_id))]
    call_task = None
    if note.call_task_id:
        row = await conn.fetchrow(SELECT_CALL_TASK, uuid.UUID(note.call_task_id))
        call_task = CallTask(**dict(row)) if row else None
    disabled_at = None
    if note.channel == NotificationChannel.WEBHOOK:
        disabled_at = await conn.fetchval(SELECT_WEBHOOK_DISABLED, note.customer_id)
    resends = [resend_id(note.notification_id, note.kind, n) for n in range(1, await _resends(conn, note) + 1)]
    return NotificationView(note, attempts, call_task, disabled_at, resends)


async def _resends(conn: asyncpg.Connection, note: Notification) -> int:
    """How many times the notice was resent. Resends are numbered 1, 2, ... without gaps (a resend
    takes the next number under the old notice's row lock), so their ids are looked up by key."""
    count = 0
    while True:
        wanted = [resend_id(note.notification_id, note.kind, count + i) for i in range(1, _PROBE + 1)]
        found = {r["notification_id"] for r in await conn.fetch(SELECT_EXISTING_IDS, wanted)}
        for candidate in wanted:
            if candidate not in found:
                return count
            count += 1


# ------------------------------------------------------------------------------------------- the changes


async def _locked(conn: asyncpg.Connection, notification_id: str) -> Notification:
    """The notice, its row locked until the transaction ends (two operators acting on one notice
    are served one after the other, the second seeing what the first did)."""
    if await conn.fetchval(LOCK_NOTIFICATION, _uuid(notification_id)) is None:
        raise NotFound(f"no notification {notification_id}; find the id with `hub notifications list`")
    return await get_notification(conn, notification_id)


def _pending_refusal(note: Notification, now: datetime, verb: str) -> str:
    nid = note.notification_id
    if note.waits_for_call:
        return (
            f"notification {nid} is pending: it waits for call-back task {note.call_task_id} "
            f"({note.call_task_status or 'not found'}); the call centre delivers it by calling the customer "
            f"(see `hub tasks show {note.call_task_id}`), so there is nothing to {verb}"
        )
    if note.next_attempt_at is not None and note.next_attempt_at > now:
        return (
            f"notification {nid} is pending: the dispatcher tries it at {_at(note.next_attempt_at)}, "
            f"so there is nothing to {verb} (`hub notifications show {nid}` has its tries so far)"
        )
    return (
        f"notification {nid} is pending and due now, so there is nothing to {verb}; if it stays pending, "
        "check that a `hub run` with HUB_DISPATCH_ENABLED=true is running"
    )


def _suppressed_refusal(note: Notification, verb: str) -> str:
    return (
        f"notification {note.notification_id} was suppressed at {_at(note.suppressed_at)}: a later milestone "
        f"notice of shipment {note.shipment_id} superseded it, and the customer has that one; nothing to {verb}"
    )


async def _check_deliverable(conn: asyncpg.Connection, note: Notification, now: datetime, action: str) -> None:
    """Refuse what the dispatcher could only fail or suppress again (`action`: retry or resend)."""
    rank = MILESTONE_RANK.get(note.kind)
    if rank is not None and note.shipment_id:
        later_kinds = [kind for kind, r in MILESTONE_RANK.items() if r > rank]
        later = await conn.fetchrow(SELECT_LATER_MILESTONE, note.shipment_id, later_kinds)
        if later is not None:
            raise OpsError(
                f"shipment {note.shipment_id} already has a later milestone notice ({later['kind']}, "
                f"{later['notification_id']}, {later['status']}): the dispatcher would suppress this {note.kind} "
                f"notice, so there is nothing to {action}; see that one with "
                f"`hub notifications show {later['notification_id']}`"
            )
    if note.channel != NotificationChannel.WEBHOOK:
        return
    hook = await conn.fetchrow(SELECT_WEBHOOK_STATE, note.customer_id, now)
    if hook is None or not hook["has_url"]:
        raise OpsError(
            f"customer {note.customer_id} has no webhook_url in the register, so a {action} would fail again: "
            "add it to the customer CSV and re-import it (`hub customers import FILE.csv`), then run this again"
        )
    if hook["webhook_disabled_at"] is not None:
        raise OpsError(
            f"customer {note.customer_id}'s webhook answered 410 Gone and is disabled since "
            f"{_at(hook['webhook_disabled_at'])}: a {action} would fail again until the URL is fixed and re-imported: "
            "correct webhook_url in the customer CSV and run `hub customers import FILE.csv` (only a changed URL "
            "enables the webhook again), then run this again"
        )
    if not hook["has_secret"]:
        raise OpsError(
            f"customer {note.customer_id} has no webhook secret, so a {action} would fail again: "
            f"create it with `hub customers webhook-secret {note.customer_id}`, then run this again"
        )


async def retry(conn: asyncpg.Connection, notification_id: str, now: datetime) -> Retried:
    """A failed notice back in the dispatcher's queue: pending, due `now`, a fresh retry schedule
    (attempts 0). Its tries stay in notification_attempts and its last_error stays for reference.
    Only failed notices; a failed phone notice (its call-back task was cancelled, and the dispatcher
    opens one call-back task per notice) is resent instead."""
    async with conn.transaction():
        note = await _locked(conn, notification_id)
        nid = note.notification_id
        if note.status == NotificationStatus.PENDING:
            raise OpsError(_pending_refusal(note, now, "retry"))
        if note.status == NotificationStatus.SENT:
            raise OpsError(
                f"notification {nid} was sent at {_at(note.sent_at)}; to send it again, as a new notice the "
                f"receiver will not drop as a repeat, use `hub notifications resend {nid}`"
            )
        if note.status == NotificationStatus.SUPPRESSED:
            raise OpsError(_suppressed_refusal(note, "retry"))
        if note.channel == NotificationChannel.PHONE:
            raise OpsError(
                f"notification {nid} is a phone notice whose call-back task {note.call_task_id or '-'} was cancelled "
                f"({note.last_error or 'no reason recorded'}); the dispatcher opens one call-back task per notice, so "
                f"it cannot be retried: to have the customer called after all, use `hub notifications resend {nid}`"
            )
        await _check_deliverable(conn, note, now, "retry")
        await conn.execute(RETRY_NOTIFICATION, uuid.UUID(nid), now)
        await conn.execute(WAKE_DISPATCHER, DISPATCH_WAKE)
        failure_tasks = [stable_id("task", FAILED_TIMER, nid, str(n)) for n in range(1, note.tries + 1)]
        still_open = [r["task_id"] for r in await conn.fetch(SELECT_OPEN_TASKS, failure_tasks)]
        return Retried(await get_notification(conn, nid), still_open)


async def resend(conn: asyncpg.Connection, notification_id: str, now: datetime) -> Resent:
    """Send a sent notice again as a new notice (receivers drop an id they have seen): same kind,
    channel, language, body, customer and shipment; a new id from the old one and the resend's
    number. Only sent notices, and failed phone notices (their call-back task was cancelled: the
    new notice opens a new one)."""
    async with conn.transaction():
        note = await _locked(conn, notification_id)
        nid = note.notification_id
        phone_failed = note.status == NotificationStatus.FAILED and note.channel == NotificationChannel.PHONE
        if note.status == NotificationStatus.PENDING:
            raise OpsError(_pending_refusal(note, now, "resend"))
        if note.status == NotificationStatus.FAILED and not phone_failed:
            raise OpsError(
                f"notification {nid} never reached the customer (failed at {_at(note.failed_at)}: "
                f"{note.last_error or 'no error recorded'}); try it again with `hub notifications retry {nid}`"
            )
        if note.status == NotificationStatus.SUPPRESSED:
            raise OpsError(_suppressed_refusal(note, "resend"))
        await _check_deliverable(conn, note, now, "resend")
        number = await _resends(conn, note) + 1
        new_id = resend_id(nid, note.kind, number)
        inserted = await conn.fetchval(
            INSERT_RESEND, uuid.UUID(nid), uuid.UUID(new_id), resend_source(nid, number), now
        )
        if inserted is None:  # only a row written outside this command can take the number
            raise OpsError(f"resend {number} of notification {nid} ({new_id}) already exists; run this again")
        await conn.execute(WAKE_DISPATCHER, DISPATCH_WAKE)
        return Resent(note, await get_notification(conn, new_id), number)
