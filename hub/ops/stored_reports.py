"""Reports stored in Postgres (the `reports` table of the reports feature), for the console's
reports page: list them and hand one out for viewing or download.

The table belongs to the reports feature; this module only reads it, and finds its columns by
name: an id (`report_id` or `id`), `kind`, a period (`period` or `period_label`), a customer
(`customer_id` or `customer`), `format`, `created_at`, and the document (`content`, `body`,
`document` or `data`; bytea or text). Until the table exists the console says there are no reports.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import asyncpg

from hub.ops.db import NotFound

SELECT_COLUMNS = """
SELECT column_name FROM information_schema.columns
WHERE table_schema = current_schema() AND table_name = 'reports'
"""
CANDIDATES = {
    "id": ("report_id", "id"),
    "kind": ("kind",),
    "period": ("period", "period_label", "month"),
    "customer": ("customer_id", "customer"),
    "format": ("format",),
    "created_at": ("created_at",),
    "content": ("content", "body", "document", "data"),
}
REQUIRED = ("id", "kind", "format", "created_at", "content")

MEDIA_TYPES = {
    "html": "text/html; charset=utf-8",
    "pdf": "application/pdf",
    "csv": "text/csv; charset=utf-8",
    "json": "application/json",
}


@dataclass(frozen=True)
class StoredReport:
    id: str
    kind: str
    period: str | None
    customer: str | None
    format: str
    created_at: datetime
    size: int | None

    @property
    def filename(self) -> str:
        parts = [self.kind, self.period, self.customer]
        stem = "-".join(p for p in parts if p)
        safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in stem) or "report"
        return f"{safe}.{self.format if self.format in MEDIA_TYPES else 'bin'}"

    @property
    def media_type(self) -> str:
        return MEDIA_TYPES.get(self.format, "application/octet-stream")


async def _columns(conn: asyncpg.Connection) -> dict[str, str] | None:
    """Role -> the table's column for it; None while there is no usable `reports` table."""
    present = {r["column_name"] for r in await conn.fetch(SELECT_COLUMNS)}
    if not present:
        return None
    found = {}
    for role, names in CANDIDATES.items():
        name = next((n for n in names if n in present), None)
        if name is not None:
            found[role] = name
    return found if all(r in found for r in REQUIRED) else None


def _select(columns: dict[str, str], with_content: bool) -> str:
    def col(role: str) -> str:
        return f'"{columns[role]}"' if role in columns else "NULL"

    content = f", {col('content')} AS content" if with_content else ""
    return (
        f"SELECT {col('id')}::text AS id, {col('kind')}::text AS kind, {col('period')}::text AS period, "
        f"{col('customer')}::text AS customer, {col('format')}::text AS format, {col('created_at')} AS created_at, "
        f"octet_length({col('content')}) AS size{content} FROM reports"
    )


async def list_reports(conn: asyncpg.Connection, limit: int = 200) -> list[StoredReport] | None:
    """The newest reports first; None when the reports table does not exist (yet)."""
    columns = await _columns(conn)
    if columns is None:
        return None
    rows = await conn.fetch(_select(columns, False) + f' ORDER BY "{columns["created_at"]}" DESC LIMIT $1', limit)
    return [StoredReport(**dict(r)) for r in rows]


async def get_report(conn: asyncpg.Connection, report_id: str) -> tuple[StoredReport, bytes]:
    columns = await _columns(conn)
    if columns is None:
        raise NotFound("there are no stored reports yet")
    row = await conn.fetchrow(_select(columns, True) + f' WHERE "{columns["id"]}"::text = $1', report_id)
    if row is None:
        raise NotFound(f"no report {report_id}")
    values = dict(row)
    content = values.pop("content")
    data = content.encode() if isinstance(content, str) else bytes(content or b"")
    return StoredReport(**values), data
