"""Load the customer register from CSV: all rows or none, errors reported with line numbers.

Registers come from Excel as often as from systems: UTF-8 with or without a BOM, or GB18030/GBK
(what Excel writes in a Chinese locale), separated by commas or semicolons. Both are detected
from the file unless the operator names them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from pydantic import ValidationError

from hub.core.decoding import describe_validation_error
from hub.core.webhooks import new_secret
from hub.ops.db import NotFound, OpsError
from hub.ops.register import REGISTER_COLUMNS, SELECT_CUSTOMER, RegisterEntry
from hub.ops.tasks import Task, TaskFilter, list_tasks
from schemas.customers import ALL_COLUMNS, REQUIRED_COLUMNS, Customer

# Only rows whose values change are updated, so the import can say what it changed.
UPSERT_CUSTOMERS = """
INSERT INTO customers AS c (customer_id, name, tier, language, preferred_channel, email, phone, webhook_url,
                            timezone, quiet_hours, credit_rating, account_manager, registered_by, updated_at)
SELECT u.c, u.n, u.t, u.l, u.p, u.e, u.ph, u.w, u.tz, u.q, u.cr, u.am, 'import', now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[], $8::text[],
            $9::text[], $10::text[], $11::text[], $12::text[]) AS u(c, n, t, l, p, e, ph, w, tz, q, cr, am)
ON CONFLICT (customer_id) DO UPDATE SET
    name = EXCLUDED.name, tier = EXCLUDED.tier, language = EXCLUDED.language,
    preferred_channel = EXCLUDED.preferred_channel, email = EXCLUDED.email, phone = EXCLUDED.phone,
    webhook_url = EXCLUDED.webhook_url, timezone = EXCLUDED.timezone, quiet_hours = EXCLUDED.quiet_hours,
    credit_rating = EXCLUDED.credit_rating, account_manager = EXCLUDED.account_manager,
    webhook_disabled_at = CASE WHEN c.webhook_url IS DISTINCT FROM EXCLUDED.webhook_url THEN NULL
                               ELSE c.webhook_disabled_at END,
    registered_by = 'import', updated_at = now()
WHERE (c.name, c.tier, c.language, c.preferred_channel, c.email, c.phone, c.webhook_url, c.timezone, c.quiet_hours,
       c.credit_rating, c.account_manager, c.registered_by)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.tier, EXCLUDED.language, EXCLUDED.preferred_channel,
                        EXCLUDED.email, EXCLUDED.phone, EXCLUDED.webhook_url, EXCLUDED.timezone,
                        EXCLUDED.quiet_hours, EXCLUDED.credit_rating, EXCLUDED.account_manager, 'import')
RETURNING (xmax = 0) AS added
"""

ENCODINGS = ("utf-8-sig", "gb18030")  # tried in this order; GB18030 is a superset of GBK and GB2312
DELIMITERS = (",", ";")


@dataclass(frozen=True)
class RowError:
    line: int
    message: str


@dataclass
class CustomerFile:
    customers: list[Customer] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    encoding: str = "utf-8"
    delimiter: str = ","


@dataclass(frozen=True)
class ImportCounts:
    added: int
    updated: int
    unchanged: int


def read_customers(path: Path, encoding: str | None = None, delimiter: str | None = None) -> CustomerFile:
    """Every row validated; a customer_id repeated in the file is an error too."""
    raw = path.read_bytes()
    text, used, problem = _decode(raw, encoding)
    if problem is not None:
        return CustomerFile(errors=[problem], encoding=used)
    delimiter = delimiter or _delimiter(text)
    result = CustomerFile(encoding=used, delimiter=delimiter)
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [name.strip() for name in reader.fieldnames or []]
    reader.fieldnames = header
    missing = [c for c in REQUIRED_COLUMNS if c not in header]
    unknown = [c for c in header if c not in ALL_COLUMNS]
    if missing or unknown:
        result.errors.append(
            RowError(
                1,
                f"header must use the columns {', '.join(ALL_COLUMNS)} separated by "
                f"{delimiter!r} (missing: {missing or '-'}, unknown: {unknown or '-'})",
            )
        )
        return result
    seen: dict[str, int] = {}
    for row in reader:
        _take_row(row, reader.line_num, seen, result)
    return result


def _take_row(row: dict[str | None, str | None], line: int, seen: dict[str, int], into: CustomerFile) -> None:
    if None in row:
        into.errors.append(RowError(line, "more fields than header columns"))
        return
    values = {k: v for k, v in row.items() if k is not None and v not in ("", None)}
    try:
        customer = Customer.model_validate(values)
    except ValidationError as exc:
        into.errors.append(RowError(line, describe_validation_error(exc).removeprefix("Customer: ")))
        return
    if customer.customer_id in seen:
        into.errors.append(
            RowError(line, f"customer_id {customer.customer_id!r} already on line {seen[customer.customer_id]}")
        )
        return
    seen[customer.customer_id] = line
    into.customers.append(customer)


def _decode(raw: bytes, encoding: str | None) -> tuple[str, str, RowError | None]:
    """(text, encoding used, None) or ("", encoding, what is wrong)."""
    for candidate in (encoding,) if encoding else ENCODINGS:
        try:
            return raw.decode(candidate), "utf-8" if candidate == "utf-8-sig" else candidate, None
        except LookupError:
            return "", candidate, RowError(0, f"unknown encoding {candidate!r}; try utf-8 or gb18030")
        except UnicodeDecodeError as exc:
            failed = exc
    line = raw[: failed.start].count(b"\n") + 1
    tried = encoding or " nor ".join(e.removesuffix("-sig").upper() for e in ENCODINGS)
    return (
        "",
        encoding or "unknown",
        RowError(
            line,
            f"the file is not {tried} (byte {failed.object[failed.start]:#04x}); "
            "save it as UTF-8, or name its encoding with --encoding",
        ),
    )


def _delimiter(text: str) -> str:
    """The separator of the header line: a semicolon when it has more of those than commas."""
    header = text.split("\n", 1)[0]
    return ";" if header.count(";") > header.count(",") else ","


async def import_customers(conn: asyncpg.Connection, customers: list[Customer]) -> ImportCounts:
    columns = [
        [c.customer_id for c in customers],
        [c.name for c in customers],
        [c.tier.value for c in customers],
        [c.language.value for c in customers],
        [c.preferred_channel.value for c in customers],
        [c.email for c in customers],
        [c.phone for c in customers],
        [c.webhook_url for c in customers],
        [c.timezone for c in customers],
        [c.quiet_hours for c in customers],
        [c.credit_rating.value if c.credit_rating else None for c in customers],
        [c.account_manager for c in customers],
    ]
    async with conn.transaction():
        rows = await conn.fetch(UPSERT_CUSTOMERS, *columns)
    added = sum(1 for r in rows if r["added"])
    return ImportCounts(added, len(rows) - added, len(customers) - len(rows))


# --- webhook secrets -------------------------------------------------------------------------------

ACTIVE_SECRET_COUNT = """
SELECT count(*) FROM webhook_secrets WHERE customer_id = $1 AND (expires_at IS NULL OR expires_at > now())
"""
CUSTOMER_EXISTS = "SELECT EXISTS (SELECT 1 FROM customers WHERE customer_id = $1)"
# During a rotation the old secrets keep signing for a day, so the receiver can switch over.
EXPIRE_SECRETS = """
UPDATE webhook_secrets SET expires_at = now() + make_interval(hours => $2)
WHERE customer_id = $1 AND (expires_at IS NULL OR expires_at > now() + make_interval(hours => $2))
"""
INSERT_SECRET = "INSERT INTO webhook_secrets (customer_id, secret) VALUES ($1, $2)"
ROTATION_OVERLAP_HOURS = 24


async def create_webhook_secret(conn: asyncpg.Connection, customer_id: str, rotate: bool) -> str:
    """A new whsec_ secret for the customer; with `rotate`, the old ones sign for another day."""
    async with conn.transaction():
        if not await conn.fetchval(CUSTOMER_EXISTS, customer_id):
            raise OpsError(f"no customer {customer_id!r} in the register; import it first (hub customers import)")
        if await conn.fetchval(ACTIVE_SECRET_COUNT, customer_id) and not rotate:
            raise OpsError(
                f"customer {customer_id} already has a webhook secret; add --rotate to replace it "
                f"(the old one keeps signing for {ROTATION_OVERLAP_HOURS} h)"
            )
        if rotate:
            await conn.execute(EXPIRE_SECRETS, customer_id, ROTATION_OVERLAP_HOURS)
        secret = new_secret()
        await conn.execute(INSERT_SECRET, customer_id, secret)
    return secret


# --- the register as the console shows it ------------------------------------------------------------

# $1: a piece of the id or the name (NULL: all); ordered by id so pages are stable.
SELECT_REGISTER = f"""
SELECT {REGISTER_COLUMNS} FROM customers
WHERE $1::text IS NULL OR customer_id ILIKE '%' || $1 || '%' OR name ILIKE '%' || $1 || '%'
ORDER BY customer_id
LIMIT $2 OFFSET $3
"""
SELECT_CUSTOMER_SHIPMENTS = """
SELECT shipment_id, status, promised_delivery_at, eta, carrier_id, last_event_at
FROM shipments WHERE customer_id = $1 ORDER BY last_event_at DESC NULLS LAST, shipment_id LIMIT $2
"""
SELECT_CUSTOMER_NOTIFICATIONS = """
SELECT notification_id, shipment_id, kind, channel, language, body, status, created_at
FROM customer_notifications WHERE customer_id = $1 ORDER BY created_at DESC, notification_id LIMIT $2
"""
# CSAT: the share of survey answers scoring 4 or 5 (contract 1.1, "Surveys").
SELECT_CSAT = """
SELECT count(*) AS answers,
       count(*) FILTER (WHERE (payload->>'satisfaction_score')::int >= 4) AS satisfied
FROM call_logs
WHERE customer_id = $1 AND category = 'survey' AND jsonb_typeof(payload->'satisfaction_score') = 'number'
"""


@dataclass(frozen=True)
class CustomerShipment:
    shipment_id: str
    status: str | None
    promised_delivery_at: datetime | None
    eta: datetime | None
    carrier_id: str | None
    last_event_at: datetime | None


@dataclass(frozen=True)
class CustomerNotification:
    notification_id: str
    shipment_id: str | None
    kind: str
    channel: str
    language: str
    body: str
    status: str
    created_at: datetime


@dataclass(frozen=True)
class Csat:
    answers: int
    satisfied: int

    @property
    def percent(self) -> float | None:
        return round(100 * self.satisfied / self.answers, 1) if self.answers else None


@dataclass(frozen=True)
class CustomerView:
    customer: RegisterEntry
    open_tasks: list[Task]
    shipments: list[CustomerShipment]
    notifications: list[CustomerNotification]
    csat: Csat


async def register_page(
    conn: asyncpg.Connection, search: str | None = None, limit: int = 50, offset: int = 0
) -> tuple[list[RegisterEntry], bool]:
    """A page of the register (id or name containing `search`), and whether more follow."""
    rows = await conn.fetch(SELECT_REGISTER, (search or "").strip() or None, limit + 1, offset)
    return [RegisterEntry(**dict(r)) for r in rows[:limit]], len(rows) > limit


async def customer_view(conn: asyncpg.Connection, customer_id: str, limit: int = 50) -> CustomerView:
    """A customer with their open tasks, latest shipments and notifications, and CSAT."""
    row = await conn.fetchrow(SELECT_CUSTOMER, customer_id)
    if row is None:
        raise NotFound(f"no customer {customer_id!r} in the register")
    page = await list_tasks(conn, TaskFilter(customer_id=customer_id, limit=limit), datetime.now(UTC))
    shipments = [CustomerShipment(**dict(r)) for r in await conn.fetch(SELECT_CUSTOMER_SHIPMENTS, customer_id, limit)]
    notes = [
        CustomerNotification(**{**dict(r), "notification_id": str(r["notification_id"])})
        for r in await conn.fetch(SELECT_CUSTOMER_NOTIFICATIONS, customer_id, limit)
    ]
    csat = await conn.fetchrow(SELECT_CSAT, customer_id)
    return CustomerView(
        RegisterEntry(**dict(row)), page.tasks, shipments, notes, Csat(csat["answers"], csat["satisfied"])
    )
