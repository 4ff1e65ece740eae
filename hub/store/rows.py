"""How Python values travel to Postgres in the store's bulk statements (see hub/store/queries.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
import orjson


def json_rows(rows: list[dict[str, Any]]) -> str:
    """One JSON array for json_populate_recordset."""
    return orjson.dumps(rows).decode()


def json_text(value: Any) -> str:
    return orjson.dumps(value).decode()


def bytea(value: bytes | None) -> str | None:
    """bytea inside JSON travels as "\\x<hex>"."""
    return None if value is None else "\\x" + value.hex()


def hex_headers(headers: Iterable[tuple[str, bytes]]) -> list[list[str]]:
    """Kafka headers as stored in jsonb: [[name, hex of value], ...]."""
    return [[name, value.hex()] for name, value in headers]


async def copy_rows(
    conn: asyncpg.Connection, target: tuple[str, tuple[str, ...]], records: Sequence[tuple[Any, ...]]
) -> None:
    """Binary COPY of rows that cannot conflict (see queries.py); nothing to do for none."""
    if records:
        table, columns = target
        await conn.copy_records_to_table(table, records=records, columns=columns)
