"""Load the customer register from CSV: all rows or none, errors reported with line numbers."""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import asyncpg
from pydantic import ValidationError

from hub.decoding import describe_validation_error
from schemas.customers import CSV_COLUMNS, Customer

UPSERT_CUSTOMERS = """
INSERT INTO customers (customer_id, name, tier, language, preferred_channel, email, phone, registered_by, updated_at)
SELECT c, n, t, l, p, e, ph, 'import', now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
     AS u(c, n, t, l, p, e, ph)
ON CONFLICT (customer_id) DO UPDATE SET
    name = EXCLUDED.name, tier = EXCLUDED.tier, language = EXCLUDED.language,
    preferred_channel = EXCLUDED.preferred_channel, email = EXCLUDED.email, phone = EXCLUDED.phone,
    registered_by = 'import', updated_at = now()
"""


@dataclass(frozen=True)
class RowError:
    line: int
    message: str


def read_customers(path: Path) -> tuple[list[Customer], list[RowError]]:
    """Every row validated; a customer_id repeated in the file is an error too."""
    customers, errors, seen = [], [], {}
    with path.open(newline="", encoding="utf-8-sig") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in ("customer_id",) if c not in (reader.fieldnames or [])]
        unknown = [c for c in (reader.fieldnames or []) if c not in CSV_COLUMNS]
        if missing or unknown:
            return [], [RowError(1, f"header must use the columns {', '.join(CSV_COLUMNS)} "
                                    f"(missing: {missing or '-'}, unknown: {unknown or '-'})")]
        for row in reader:
            line = reader.line_num
            values = {k: (v if v not in ("", None) else None) for k, v in row.items() if k is not None}
            if None in row:
                errors.append(RowError(line, "more fields than header columns"))
                continue
            try:
                customer = Customer.model_validate({k: v for k, v in values.items() if v is not None})
            except ValidationError as exc:
                errors.append(RowError(line, describe_validation_error(exc).removeprefix("Customer: ")))
                continue
            if customer.customer_id in seen:
                errors.append(RowError(line, f"customer_id {customer.customer_id!r} already on line "
                                             f"{seen[customer.customer_id]}"))
                continue
            seen[customer.customer_id] = line
            customers.append(customer)
    return customers, errors


async def import_customers(conn: asyncpg.Connection, customers: list[Customer]) -> int:
    async with conn.transaction():
        await conn.execute(UPSERT_CUSTOMERS, *[list(col) for col in zip(*[
            (c.customer_id, c.name, c.tier.value, c.language.value, c.preferred_channel.value, c.email, c.phone)
            for c in customers])])
    return len(customers)
