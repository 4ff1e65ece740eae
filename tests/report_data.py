"""A small data set for the reports, in November 2026, Asia/Shanghai: [2026-10-31T16:00Z,
2026-11-30T16:00Z). The answers, worked out by hand, are in tests/test_report_figures.py."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import orjson

from hub.reports import figures

ZONE = ZoneInfo("Asia/Shanghai")
NOV = figures.month("2026-11", ZONE)
AS_OF = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)
H = timedelta(hours=1)


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


async def event(conn, shipment: str, status: str, at: str, **payload) -> None:
    await conn.execute(
        "INSERT INTO shipment_events (event_id, shipment_id, topic, status, occurred_at, payload) "
        "VALUES ($1, $2, 't', $3, $4, $5)",
        str(uuid.uuid4()),
        shipment,
        status,
        utc(at),
        orjson.dumps(payload).decode(),
    )


async def shipment(conn, shipment_id: str, customer: str, carrier: str, promise: str | None = None) -> None:
    await conn.execute(
        "INSERT INTO shipments (shipment_id, customer_id, carrier_id, promised_delivery_at) VALUES ($1, $2, $3, $4)",
        shipment_id,
        customer,
        carrier,
        utc(promise) if promise else None,
    )


async def task(
    conn,
    kind: str,
    department: str,
    customer: str,
    shipment_id: str | None,
    opened: str,
    status: str = "open",
    resolved_after_h: float | None = None,
    window_h: float = 8,
    **extra,
) -> None:
    opened_at = utc(opened)
    due = opened_at + window_h * H
    await conn.execute(
        "INSERT INTO coordination_tasks (task_id, department, kind, severity, status, shipment_id, customer_id, "
        "title, due_at, source_event_id, rule, opened_at, warn_at, escalate_at, resolved_at, breached_at, "
        "escalation_level) VALUES ($1, $2, $3, 'P2', $4, $5, $6, 't', $7, $8, 'r', $9, $9, $10, $11, $12, $13)",
        uuid.uuid4(),
        department,
        kind,
        status,
        shipment_id,
        customer,
        due,
        str(uuid.uuid4()),
        opened_at,
        extra.get("escalate_at", due + window_h * H),
        opened_at + resolved_after_h * H if resolved_after_h is not None else None,
        extra.get("breached_at"),
        extra.get("level", 0),
    )


async def call(
    conn,
    customer: str,
    shipment_id: str | None,
    category: str,
    at: str,
    direction: str = "inbound",
    score: int | None = None,
) -> None:
    await conn.execute(
        "INSERT INTO call_logs (event_id, call_id, customer_id, shipment_id, direction, channel, category, "
        "occurred_at, payload, satisfaction_score) VALUES ($1, 'c', $2, $3, $4, 'phone', $5, $6, '{}', $7)",
        str(uuid.uuid4()),
        customer,
        shipment_id,
        direction,
        category,
        utc(at),
        score,
    )


async def notice(conn, customer: str, channel: str, sent: str | None = None, failed: str | None = None) -> None:
    await conn.execute(
        "INSERT INTO customer_notifications (notification_id, customer_id, kind, channel, language, body, status, "
        "source_event_id, sent_at, failed_at) VALUES ($1, $2, 'delay', $3, 'zh', 'b', $4, $5, $6, $7)",
        uuid.uuid4(),
        customer,
        channel,
        "sent" if sent else "failed",
        str(uuid.uuid4()),
        utc(sent) if sent else None,
        utc(failed) if failed else None,
    )


async def november(conn: asyncpg.Connection) -> None:
    """Customers A (zh) and B (en) and their November, with the edge cases the figures must get right."""
    await conn.execute(
        "INSERT INTO customers (customer_id, name, language) VALUES ('A', '上海华东物流有限公司', 'zh'), "
        "('B', 'Northwind Imports', 'en')"
    )
    # Shipments of November (created in it): S1, S2, S3 of A, S4 of B. S5 was created in October and
    # delivered in November; S6 was created on 1 December, local time (30 November 17:00 UTC).
    await shipment(conn, "S1", "A", "SF", "2026-11-05T00:00")
    await shipment(conn, "S2", "A", "SF", "2026-11-03T00:00")
    await shipment(conn, "S3", "A", "SF")
    await shipment(conn, "S4", "B", "YTO")
    await shipment(conn, "S5", "B", "YTO", "2026-11-02T00:00")
    await shipment(conn, "S6", "A", "SF")
    for sid, at in (
        ("S1", "2026-11-02T02:00"),
        ("S2", "2026-11-02T03:00"),
        ("S3", "2026-11-10T00:00"),
        ("S4", "2026-11-15T00:00"),
        ("S5", "2026-10-20T00:00"),
        ("S6", "2026-11-30T17:00"),
    ):
        await event(conn, sid, "created", at)
    await event(conn, "S1", "delivered", "2026-11-04T10:00")  # on time (promise 5 Nov)
    await event(conn, "S2", "delivered", "2026-11-06T00:00")  # late (promise 3 Nov)
    await event(conn, "S2", "delivered", "2026-11-06T01:00")  # the carrier's copy: the first one counts
    await event(conn, "S3", "delivered", "2026-11-11T00:00")  # no promise
    await event(conn, "S5", "delivered", "2026-11-01T01:00")  # on time (promise 2 Nov)
    await event(conn, "S4", "exception", "2026-11-16T00:00", exception={"code": "damaged"})
    await event(conn, "S4", "exception", "2026-11-17T00:00")  # a carrier exception without a code: other
    # Complaint tasks: T1 resolved in 4 h (within due), T2 in 24 h (late), T3 open, T4 reassigned to key accounts.
    await task(conn, "complaint", "complaints", "A", "S1", "2026-11-03T00:00", "done", 4)
    await task(conn, "complaint", "complaints", "A", "S2", "2026-11-05T00:00", "done", 24)
    await task(conn, "repeat_contact", "complaints", "A", "S2", "2026-11-05T01:00")
    await task(conn, "low_satisfaction", "key_accounts", "B", None, "2026-11-20T00:00", "in_progress")
    # A damage claim that breached level 1 and 2 in November.
    await task(
        conn,
        "damage",
        "claims",
        "B",
        "S4",
        "2026-11-16T01:00",
        window_h=2,
        breached_at=utc("2026-11-16T03:00"),
        escalate_at=utc("2026-11-16T05:00"),
        level=2,
    )
    # Contacts: C1 followed by C2 within 7 days (not first-contact resolved); C3 alone; C4 outbound (not
    # counted); C5 followed on 2 December by C6 (C5 not resolved; C6 is outside the period).
    await call(conn, "A", "S1", "query", "2026-11-03T00:00")
    await call(conn, "A", "S1", "complaint", "2026-11-05T00:00")
    await call(conn, "A", "S2", "query", "2026-11-20T00:00")
    await call(conn, "A", "S2", "query", "2026-11-21T00:00", direction="outbound")
    await call(conn, "A", "S3", "query", "2026-11-29T00:00")
    await call(conn, "A", "S3", "query", "2026-12-02T00:00")
    # Survey answers: A 5, 4, 3; B 2; B's 5 in October is outside.
    for customer, score, at in (
        ("A", 5, "2026-11-10T00:00"),
        ("A", 4, "2026-11-11T00:00"),
        ("B", 2, "2026-11-12T00:00"),
        ("A", 3, "2026-11-13T00:00"),
        ("B", 5, "2026-10-30T00:00"),
    ):
        await call(conn, customer, None, "survey", at, score=score)
    await notice(conn, "A", "sms", sent="2026-11-04T00:00")
    await notice(conn, "A", "email", sent="2026-11-05T00:00")
    await notice(conn, "B", "email", failed="2026-11-06T00:00")
    await notice(conn, "A", "sms", sent="2026-12-02T00:00")
    await conn.execute(
        "INSERT INTO clock_firings (timer, subject, key, due_at, fired_at) VALUES "
        "('stale_shipment', 'S4', 'k1', '2026-11-08T00:00Z', now()), "
        "('stale_shipment', 'S4', 'k2', '2026-12-03T00:00Z', now())"
    )
