"""Load the customer register from CSV: all rows or none, errors reported with line numbers.

Registers come from Excel as often as from systems: UTF-8 with or without a BOM, or GB18030/GBK
(what Excel writes in a Chinese locale), separated by commas or semicolons. Both are detected
from the file unless the operator names them.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import asyncpg
from pydantic import ValidationError

from hub.core.decoding import describe_validation_error
from schemas.customers import CSV_COLUMNS, Customer

# Only rows whose values change are updated, so the import can say what it changed.
UPSERT_CUSTOMERS = """
INSERT INTO customers AS c (customer_id, name, tier, language, preferred_channel, email, phone, registered_by,
                            updated_at)
SELECT u.c, u.n, u.t, u.l, u.p, u.e, u.ph, 'import', now()
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[])
     AS u(c, n, t, l, p, e, ph)
ON CONFLICT (customer_id) DO UPDATE SET
    name = EXCLUDED.name, tier = EXCLUDED.tier, language = EXCLUDED.language,
    preferred_channel = EXCLUDED.preferred_channel, email = EXCLUDED.email, phone = EXCLUDED.phone,
    registered_by = 'import', updated_at = now()
WHERE (c.name, c.tier, c.language, c.preferred_channel, c.email, c.phone, c.registered_by)
      IS DISTINCT FROM (EXCLUDED.name, EXCLUDED.tier, EXCLUDED.language, EXCLUDED.preferred_channel,
                        EXCLUDED.email, EXCLUDED.phone, 'import')
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
    missing = [c for c in ("customer_id",) if c not in header]
    unknown = [c for c in header if c not in CSV_COLUMNS]
    if missing or unknown:
        result.errors.append(
            RowError(
                1,
                f"header must use the columns {', '.join(CSV_COLUMNS)} separated by "
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
    ]
    async with conn.transaction():
        rows = await conn.fetch(UPSERT_CUSTOMERS, *columns)
    added = sum(1 for r in rows if r["added"])
    return ImportCounts(added, len(rows) - added, len(customers) - len(rows))
