"""How Python values travel to Postgres in the store's bulk statements (see hub/store/queries.py)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg
import orjson

from hub.core.state import CustomerInfo, ShipmentSheet
from schemas.enums import CustomerTier, Language, NotificationChannel, ShipmentEventType


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


_STATUS_BY_VALUE = {status.value: status for status in ShipmentEventType}  # a dict lookup; Enum(value) is slower


def sheet_from_row(row: asyncpg.Record) -> ShipmentSheet:
    return ShipmentSheet(
        shipment_id=row["shipment_id"],
        customer_id=row["customer_id"],
        order_id=row["order_id"],
        status=_STATUS_BY_VALUE.get(row["status"]),
        last_event_at=row["last_event_at"],
        promised_delivery_at=row["promised_delivery_at"],
        eta=row["eta"],
        eta_reported_at=row["eta_reported_at"],
        eta_alerted=row["eta_alerted"],
        carrier_id=row["carrier_id"],
        priority=row["priority"],
        notified_milestones=frozenset(row["notified_milestones"]),
        repeat_contact_fired=tuple(row["repeat_contact_fired"]),
        stale_at=row["stale_at"],
        overdue_at=row["overdue_at"],
        survey_at=row["survey_at"],
    )


def customer_from_row(row: asyncpg.Record) -> CustomerInfo:
    return CustomerInfo(
        row["customer_id"],
        CustomerTier(row["tier"]),
        Language(row["language"]),
        NotificationChannel(row["preferred_channel"]),
    )
