"""`hub customers erase`: remove a customer's personal data for a privacy request, and record that it was done.

One transaction. What it changes (the record in `erasures` counts each, never the data itself):

  customers                 name, email, phone and webhook_url emptied, erased_at set (the row stays:
                            tasks, history and reports refer to the id)
  webhook_secrets           expired: there is no endpoint left to sign for
  call_logs.payload         their contacts, reduced to facts (hub/core/privacy.py): no caller_phone,
  shipment_events.payload   notes, descriptions, signatures, attributes or unknown fields; the
                            history of their shipments likewise
  customer_notifications    bodies replaced (they can quote the customer), last errors too; pending
                            ones suppressed: nobody is left to send them to
  notification_attempts     errors replaced (an SMTP refusal quotes the address)
  coordination_tasks        the hub's own texts in details (a call-back's script, a failed notice's
                            error) replaced
  reports                   their statements replaced (they carry the name)
  dead_letters              records that name them (their id as a JSON string, their name, e-mail
                            or phone) lose their bytes and headers: they can no longer be replayed
  outbox                    published copies of those dead letters, and published alerts quoting
                            their e-mail or phone, lose their bytes

Not touched: task_events and the erasures themselves (append-only audit trails; comments people wrote
there are theirs to redact, the erasure counts how many of the customer's task entries exist), rows
the outbox has not published yet (the relay still owes them to Kafka), what Kafka topics hold
(their retention decides), and facts that are not personal (ids, statuses, times, amounts).
Running it again changes nothing and records that nothing was left.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import asyncpg

from hub.core.privacy import ERASED, erase_payload, erase_task_details
from hub.ops.db import NotFound, OpsError

LOCK_CUSTOMER = "SELECT customer_id, name, email, phone FROM customers WHERE customer_id = $1 FOR UPDATE"
ERASE_CUSTOMER = """
UPDATE customers SET name = NULL, email = NULL, phone = NULL, webhook_url = NULL, webhook_disabled_at = NULL,
                     erased_at = coalesce(erased_at, now()), updated_at = now()
WHERE customer_id = $1 AND num_nonnulls(name, email, phone, webhook_url) > 0
"""
EXPIRE_SECRETS = """
UPDATE webhook_secrets SET expires_at = now()
WHERE customer_id = $1 AND (expires_at IS NULL OR expires_at > now())
"""
SELECT_CALL_PAYLOADS = "SELECT event_id, payload FROM call_logs WHERE customer_id = $1"
SELECT_EVENT_PAYLOADS = """
SELECT event_id, payload FROM shipment_events
WHERE shipment_id IN (SELECT shipment_id FROM shipments WHERE customer_id = $1) OR payload ->> 'customer_id' = $1
"""
UPDATE_CALL_PAYLOADS = """
UPDATE call_logs AS c SET payload = u.payload
FROM unnest($1::text[], $2::jsonb[]) AS u(event_id, payload) WHERE c.event_id = u.event_id
"""
UPDATE_EVENT_PAYLOADS = """
UPDATE shipment_events AS e SET payload = u.payload
FROM unnest($1::text[], $2::jsonb[]) AS u(event_id, payload) WHERE e.event_id = u.event_id
"""
SUPPRESS_PENDING = """
UPDATE customer_notifications SET status = 'suppressed', suppressed_at = now(), next_attempt_at = NULL
WHERE customer_id = $1 AND status = 'pending'
"""
ERASE_NOTIFICATIONS = """
UPDATE customer_notifications SET body = $2, last_error = CASE WHEN last_error IS NULL THEN NULL ELSE $2 END
WHERE customer_id = $1 AND (body <> $2 OR last_error <> $2)
"""
ERASE_ATTEMPT_ERRORS = """
UPDATE notification_attempts SET error = $2
WHERE notification_id IN (SELECT notification_id FROM customer_notifications WHERE customer_id = $1)
  AND error IS NOT NULL AND error <> $2
"""
SELECT_TASK_DETAILS = """
SELECT task_id, details FROM coordination_tasks
WHERE customer_id = $1 OR shipment_id IN (SELECT shipment_id FROM shipments WHERE customer_id = $1)
"""
UPDATE_TASK_DETAILS = """
UPDATE coordination_tasks AS t SET details = u.details
FROM unnest($1::uuid[], $2::jsonb[]) AS u(task_id, details) WHERE t.task_id = u.task_id
"""
COUNT_TASK_HISTORY = """
SELECT count(*) FROM task_events
WHERE task_id IN (SELECT task_id FROM coordination_tasks WHERE customer_id = $1)
"""
ERASE_REPORTS = """
UPDATE reports SET content = convert_to($2, 'UTF8') WHERE customer_id = $1 AND content <> convert_to($2, 'UTF8')
"""
# $2: byte strings that name the customer; a dead letter holding any of them loses its bytes.
ERASE_DEAD_LETTERS = """
UPDATE dead_letters SET value = NULL, headers = '[]'
WHERE value IS NOT NULL AND EXISTS (SELECT 1 FROM unnest($2::bytea[]) AS t(b) WHERE position(t.b IN value) > 0)
   OR (key = convert_to($1, 'UTF8') AND value IS NOT NULL)
RETURNING id
"""
ERASE_OUTBOX = """
UPDATE outbox SET value = NULL
WHERE sent_at IS NOT NULL AND value IS NOT NULL
  AND (message_id = ANY($1::text[])
       OR EXISTS (SELECT 1 FROM unnest($2::bytea[]) AS t(b) WHERE position(t.b IN value) > 0))
"""
RECORD_ERASURE = """
INSERT INTO erasures (customer_id, erased_by, touched) VALUES ($1, $2, $3) RETURNING id, erased_at
"""


@dataclass(frozen=True)
class Erasure:
    id: int
    customer_id: str
    erased_at: Any
    erased_by: str
    touched: dict[str, int]  # table or table.column -> rows changed
    task_history_entries: int  # the customer's task_events rows, which an erasure does not touch

    @property
    def changed(self) -> int:
        return sum(self.touched.values())


async def erase_customer(conn: asyncpg.Connection, customer_id: str, by: str) -> Erasure:
    """Erase `customer_id`'s personal data everywhere the hub keeps it; idempotent. `conn` decodes jsonb."""
    if not by.strip():
        raise OpsError("say who asked for the erasure: --by NAME")
    async with conn.transaction():
        row = await conn.fetchrow(LOCK_CUSTOMER, customer_id)
        if row is None:
            raise NotFound(f"no customer {customer_id!r} in the register")
        touched: dict[str, int] = {}
        touched["customers"] = _count(await conn.execute(ERASE_CUSTOMER, customer_id))
        touched["webhook_secrets"] = _count(await conn.execute(EXPIRE_SECRETS, customer_id))
        touched["call_logs.payload"] = await _erase_rows(
            conn, SELECT_CALL_PAYLOADS, UPDATE_CALL_PAYLOADS, customer_id, erase_payload
        )
        touched["shipment_events.payload"] = await _erase_rows(
            conn, SELECT_EVENT_PAYLOADS, UPDATE_EVENT_PAYLOADS, customer_id, erase_payload
        )
        touched["customer_notifications.suppressed"] = _count(await conn.execute(SUPPRESS_PENDING, customer_id))
        touched["customer_notifications.body"] = _count(await conn.execute(ERASE_NOTIFICATIONS, customer_id, ERASED))
        touched["notification_attempts.error"] = _count(await conn.execute(ERASE_ATTEMPT_ERRORS, customer_id, ERASED))
        touched["coordination_tasks.details"] = await _erase_rows(
            conn, SELECT_TASK_DETAILS, UPDATE_TASK_DETAILS, customer_id, erase_task_details
        )
        touched["reports.content"] = _count(await conn.execute(ERASE_REPORTS, customer_id, ERASED))
        needles = _needles(customer_id, row["name"], row["email"], row["phone"])
        letters = [str(r["id"]) for r in await conn.fetch(ERASE_DEAD_LETTERS, customer_id, needles)]
        touched["dead_letters.value"] = len(letters)
        contact = _needles(None, None, row["email"], row["phone"])
        touched["outbox.value"] = _count(await conn.execute(ERASE_OUTBOX, letters, contact))
        history = await conn.fetchval(COUNT_TASK_HISTORY, customer_id)
        recorded = await conn.fetchrow(RECORD_ERASURE, customer_id, by.strip(), touched)
    return Erasure(recorded["id"], customer_id, recorded["erased_at"], by.strip(), touched, history)


def _needles(customer_id: str | None, name: str | None, email: str | None, phone: str | None) -> list[bytes]:
    """What names the customer in raw message bytes: their id as a JSON string, and their contact data
    (a name only when long enough not to match unrelated text: 5 bytes, e.g. "Li Na" or 王伟)."""
    found = [f'"{customer_id}"'.encode()] if customer_id else []
    if name and len(name.strip().encode()) >= 5:
        found.append(name.strip().encode())
    for value in (email, phone):
        if value and value.strip():
            found.append(value.strip().encode())
    return found


async def _erase_rows(
    conn: asyncpg.Connection, select: str, update: str, customer_id: str, erase: Callable[[Any], Any]
) -> int:
    """Rewrite with `erase` the value of each row `select` finds (key, value); `update` takes the
    changed ones as two arrays. Returns how many changed."""
    keys, values = [], []
    for key, value in await conn.fetch(select, customer_id):
        erased = erase(value)
        if erased != value:
            keys.append(key)
            values.append(erased)
    if keys:
        await conn.execute(update, keys, values)
    return len(keys)


def _count(status: str) -> int:
    """Rows an UPDATE changed, from its status tag ("UPDATE 3")."""
    return int(status.rsplit(" ", 1)[-1])
