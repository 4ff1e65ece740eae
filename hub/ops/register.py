"""The customer register, read: list, one customer with what the hub holds about them, and an export
that `hub customers import` reads back unchanged. Webhook secrets are never read here: `show` says
only whether the customer has an active one, and the export has no column for them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import asyncpg

from hub.ops.db import NotFound
from schemas.customers import ALL_COLUMNS

REGISTER_COLUMNS = """
customer_id, name, tier, language, preferred_channel, email, phone, webhook_url, webhook_disabled_at, timezone,
quiet_hours, credit_rating, account_manager, registered_by, created_at, updated_at, erased_at
"""
# $1 a piece of the id, name or e-mail (NULL: any); $2 tier; $3 channel; $4 registered_by; $5 limit.
SELECT_REGISTER = f"""
SELECT {REGISTER_COLUMNS} FROM customers
WHERE ($1::text IS NULL OR customer_id ILIKE '%' || $1 || '%' OR name ILIKE '%' || $1 || '%'
       OR email ILIKE '%' || $1 || '%')
  AND ($2::text IS NULL OR tier = $2) AND ($3::text IS NULL OR preferred_channel = $3)
  AND ($4::text IS NULL OR registered_by = $4)
ORDER BY customer_id
LIMIT $5
"""
SELECT_CUSTOMER = f"SELECT {REGISTER_COLUMNS} FROM customers WHERE customer_id = $1"
SELECT_ALL = f"SELECT {', '.join(ALL_COLUMNS)} FROM customers ORDER BY customer_id"
SELECT_ACTIVITY = """
SELECT
  (SELECT count(*) FROM shipments WHERE customer_id = $1) AS shipments,
  (SELECT count(*) FROM coordination_tasks WHERE customer_id = $1 AND status IN ('open', 'in_progress')) AS open_tasks,
  (SELECT count(*) FROM call_logs WHERE customer_id = $1) AS contacts,
  (SELECT max(occurred_at) FROM call_logs WHERE customer_id = $1) AS last_contact_at,
  (SELECT count(*) FROM webhook_secrets WHERE customer_id = $1
      AND (expires_at IS NULL OR expires_at > now())) AS active_webhook_secrets
"""
SELECT_NOTIFICATION_COUNTS = """
SELECT status, count(*) AS n FROM customer_notifications WHERE customer_id = $1 GROUP BY status ORDER BY status
"""
SELECT_ERASURES = """
SELECT erased_at, erased_by, touched FROM erasures WHERE customer_id = $1 ORDER BY erased_at, id
"""


@dataclass(frozen=True)
class RegisterEntry:
    customer_id: str
    name: str | None
    tier: str
    language: str
    preferred_channel: str
    email: str | None
    phone: str | None
    webhook_url: str | None
    webhook_disabled_at: datetime | None
    timezone: str | None
    quiet_hours: str | None
    credit_rating: str | None
    account_manager: str | None
    registered_by: str  # 'import', or 'auto' when an event named a customer nobody had imported
    created_at: datetime
    updated_at: datetime
    erased_at: datetime | None


@dataclass(frozen=True)
class RegisterFilter:
    search: str | None = None
    tier: str | None = None
    channel: str | None = None
    registered_by: str | None = None
    limit: int = 50


@dataclass(frozen=True)
class CustomerFile:
    """A customer and what the hub holds about them, in counts."""

    customer: RegisterEntry
    shipments: int
    open_tasks: int
    contacts: int
    last_contact_at: datetime | None
    active_webhook_secrets: int
    notifications: dict[str, int] = field(default_factory=dict)  # status -> notices
    erasures: list[dict[str, Any]] = field(default_factory=list)


async def list_customers(conn: asyncpg.Connection, f: RegisterFilter) -> list[RegisterEntry]:
    search = (f.search or "").strip() or None
    rows = await conn.fetch(SELECT_REGISTER, search, f.tier, f.channel, f.registered_by, f.limit)
    return [RegisterEntry(**dict(r)) for r in rows]


async def show_customer(conn: asyncpg.Connection, customer_id: str) -> CustomerFile:
    row = await conn.fetchrow(SELECT_CUSTOMER, customer_id)
    if row is None:
        raise NotFound(f"no customer {customer_id!r} in the register; `hub customers list --search` finds one")
    activity = await conn.fetchrow(SELECT_ACTIVITY, customer_id)
    notes = {r["status"]: r["n"] for r in await conn.fetch(SELECT_NOTIFICATION_COUNTS, customer_id)}
    erasures = [dict(r) for r in await conn.fetch(SELECT_ERASURES, customer_id)]
    return CustomerFile(RegisterEntry(**dict(row)), **dict(activity), notifications=notes, erasures=erasures)


async def export_rows(conn: asyncpg.Connection) -> list[dict[str, str]]:
    """Every customer as an import row: the CSV columns only, empty cells for empty values."""
    return [{c: "" if r[c] is None else str(r[c]) for c in ALL_COLUMNS} for r in await conn.fetch(SELECT_ALL)]


def to_csv(rows: list[dict[str, str]], delimiter: str = ",") -> str:
    """The register as `hub customers import` reads it: a header of every column, then the rows."""
    out = io.StringIO(newline="")
    writer = csv.DictWriter(out, fieldnames=list(ALL_COLUMNS), delimiter=delimiter, lineterminator="\r\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
