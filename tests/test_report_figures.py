"""Every figure of the reports on a small data set whose answers were worked out by hand (the
comments say how), in November 2026, Asia/Shanghai: [2026-10-31T16:00Z, 2026-11-30T16:00Z)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import pytest

from hub.migrate import apply_migrations
from hub.reports import figures
from hub.reports.models import Count

pytestmark = pytest.mark.postgres
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


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    await apply_migrations(database_url)
    c = await asyncpg.connect(database_url)
    await c.execute(
        "INSERT INTO customers (customer_id, name, language) VALUES ('A', '上海华东物流有限公司', 'zh'), "
        "('B', 'Northwind Imports', 'en')"
    )
    # Shipments of November (created in it): S1, S2, S3 of A, S4 of B. S5 was created in October and
    # delivered in November; S6 was created on 1 December, local time (30 November 17:00 UTC).
    await shipment(c, "S1", "A", "SF", "2026-11-05T00:00")
    await shipment(c, "S2", "A", "SF", "2026-11-03T00:00")
    await shipment(c, "S3", "A", "SF")
    await shipment(c, "S4", "B", "YTO")
    await shipment(c, "S5", "B", "YTO", "2026-11-02T00:00")
    await shipment(c, "S6", "A", "SF")
    for sid, at in (
        ("S1", "2026-11-02T02:00"),
        ("S2", "2026-11-02T03:00"),
        ("S3", "2026-11-10T00:00"),
        ("S4", "2026-11-15T00:00"),
        ("S5", "2026-10-20T00:00"),
        ("S6", "2026-11-30T17:00"),
    ):
        await event(c, sid, "created", at)
    await event(c, "S1", "delivered", "2026-11-04T10:00")  # on time (promise 5 Nov)
    await event(c, "S2", "delivered", "2026-11-06T00:00")  # late (promise 3 Nov)
    await event(c, "S2", "delivered", "2026-11-06T01:00")  # the carrier's copy: the first one counts
    await event(c, "S3", "delivered", "2026-11-11T00:00")  # no promise
    await event(c, "S5", "delivered", "2026-11-01T01:00")  # on time (promise 2 Nov)
    await event(c, "S4", "exception", "2026-11-16T00:00", exception={"code": "damaged"})
    await event(c, "S4", "exception", "2026-11-17T00:00")  # a carrier exception without a code: other
    # Complaint tasks: T1 resolved in 4 h (within due), T2 in 24 h (late), T3 open, T4 reassigned to key accounts.
    await task(c, "complaint", "complaints", "A", "S1", "2026-11-03T00:00", "done", 4)
    await task(c, "complaint", "complaints", "A", "S2", "2026-11-05T00:00", "done", 24)
    await task(c, "repeat_contact", "complaints", "A", "S2", "2026-11-05T01:00")
    await task(c, "low_satisfaction", "key_accounts", "B", None, "2026-11-20T00:00", "in_progress")
    # A damage claim that breached level 1 and 2 in November.
    await task(
        c,
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
    await call(c, "A", "S1", "query", "2026-11-03T00:00")
    await call(c, "A", "S1", "complaint", "2026-11-05T00:00")
    await call(c, "A", "S2", "query", "2026-11-20T00:00")
    await call(c, "A", "S2", "query", "2026-11-21T00:00", direction="outbound")
    await call(c, "A", "S3", "query", "2026-11-29T00:00")
    await call(c, "A", "S3", "query", "2026-12-02T00:00")
    # Survey answers: A 5, 4, 3; B 2; B's 5 in October is outside.
    for customer, score, at in (
        ("A", 5, "2026-11-10T00:00"),
        ("A", 4, "2026-11-11T00:00"),
        ("B", 2, "2026-11-12T00:00"),
        ("A", 3, "2026-11-13T00:00"),
        ("B", 5, "2026-10-30T00:00"),
    ):
        await call(c, customer, None, "survey", at, score=score)
    await notice(c, "A", "sms", sent="2026-11-04T00:00")
    await notice(c, "A", "email", sent="2026-11-05T00:00")
    await notice(c, "B", "email", failed="2026-11-06T00:00")
    await notice(c, "A", "sms", sent="2026-12-02T00:00")
    await c.execute(
        "INSERT INTO clock_firings (timer, subject, key, due_at, fired_at) VALUES "
        "('stale_shipment', 'S4', 'k1', '2026-11-08T00:00Z', now()), "
        "('stale_shipment', 'S4', 'k2', '2026-12-03T00:00Z', now())"
    )
    yield c
    await c.close()


def counts(items: list[Count]) -> dict[str, int]:
    return {c.key: c.count for c in items}


async def test_the_month_is_local(conn):
    assert (NOV.start, NOV.end) == (utc("2026-10-31T16:00"), utc("2026-11-30T16:00"))


async def test_shipments_of_the_period_count_by_their_created_event(conn):
    assert await figures.shipments(conn, NOV, None) == 4
    assert await figures.shipments(conn, NOV, "A") == 3


async def test_on_time_is_delivered_by_the_promise_over_those_delivered_with_one(conn):
    delivered, on_time = await figures.deliveries(conn, NOV, None)
    assert (delivered, on_time.numerator, on_time.denominator, on_time.percent) == (4, 2, 3, 66.7)
    delivered, on_time = await figures.deliveries(conn, NOV, "A")
    assert (delivered, on_time.numerator, on_time.denominator, on_time.percent) == (3, 1, 2, 50.0)


async def test_exceptions_count_by_code_a_carrier_exception_without_one_is_other(conn):
    assert counts(await figures.exceptions_by_kind(conn, NOV, None)) == {"damaged": 1, "other": 1}


async def test_complaints_by_cause_carrier_customer_and_department(conn):
    assert counts(await figures.complaints_by(conn, NOV, None, "cause")) == {
        "complaint": 2,
        "repeat_contact": 1,
        "low_satisfaction": 1,
    }
    assert counts(await figures.complaints_by(conn, NOV, None, "carrier")) == {"SF": 3, "-": 1}
    assert counts(await figures.complaints_by(conn, NOV, None, "customer")) == {"A": 3, "B": 1}
    assert counts(await figures.complaints_by(conn, NOV, None, "department")) == {"complaints": 3, "key_accounts": 1}


async def test_time_to_resolve_median_p90_and_within_due(conn):
    # resolved complaints: 4 h and 24 h; median 14 h, p90 4 + 0.9 x 20 = 22 h; one of two by its due_at
    durations, within = await figures.resolution(conn, NOV, figures.COMPLAINT_KINDS, None, None)
    assert (durations.count, durations.median_hours, durations.p90_hours) == (2, 14.0, 22.0)
    assert (within.numerator, within.denominator, within.percent) == (1, 2, 50.0)


async def test_open_backlog_by_age_as_of_the_report(conn):
    backlog = await figures.open_backlog(conn, AS_OF, None)
    assert (backlog.under_1_day, backlog.days_1_to_3, backlog.days_3_to_7, backlog.over_7_days) == (0, 0, 0, 2)


async def test_first_contact_resolution_looks_seven_days_ahead(conn):
    share = await figures.first_contact_resolution(conn, NOV, None)
    assert (share.numerator, share.denominator, share.percent) == (2, 4, 50.0)


async def test_csat_is_the_share_of_fours_and_fives(conn):
    share = await figures.csat(conn, NOV, None)
    assert (share.numerator, share.denominator, share.percent) == (2, 4, 50.0)
    share = await figures.csat(conn, NOV, "A")
    assert (share.numerator, share.denominator, share.percent) == (2, 3, 66.7)


async def test_notifications_sent_and_failed_by_channel(conn):
    assert [(c.channel, c.sent, c.failed) for c in await figures.notifications(conn, NOV, None)] == [
        ("email", 1, 1),
        ("sms", 1, 0),
    ]


async def test_department_kpis(conn):
    by = {d.department: d for d in await figures.departments(conn, NOV, None)}
    assert {k: v.created for k, v in by.items()} == {"claims": 1, "complaints": 3, "key_accounts": 1}
    complaints = by["complaints"]
    assert (complaints.resolved, complaints.within_sla.percent, complaints.handling_time.median_hours) == (
        2,
        50.0,
        14.0,
    )
    assert (by["claims"].breaches_level_1, by["claims"].breaches_level_2) == (1, 1)


async def test_the_three_reports_put_the_figures_together(conn):
    complaints = await figures.complaints_report(conn, NOV, AS_OF)
    assert (complaints.complaints, complaints.repeat_contacts, complaints.shipments, complaints.per_1000_shipments) == (
        4,
        1,
        4,
        1000.0,
    )
    kpi = await figures.kpi_report(conn, NOV, AS_OF)
    assert (kpi.shipments, kpi.exceptions, kpi.exceptions_per_1000_shipments, kpi.stale_shipments) == (4, 2, 500.0, 1)
    statement = await figures.statement(conn, NOV, AS_OF, "A")
    assert (statement.customer_name, statement.language, statement.shipments, statement.delivered) == (
        "上海华东物流有限公司",
        "zh",
        3,
        3,
    )
    assert (statement.claims, statement.complaints, statement.complaints_resolved) == (0, 3, 2)
    assert statement.csat.percent == 66.7 and statement.on_time.percent == 50.0
    days = {d.day.isoformat(): d.shipments for d in statement.shipments_per_day}
    assert len(days) == 30 and days["2026-11-02"] == 2 and days["2026-11-10"] == 1 and sum(days.values()) == 3
    assert (await figures.statement(conn, NOV, AS_OF, "B")).claims == 1


async def test_customers_with_a_shipment_in_the_period(conn):
    assert await figures.customers_with_shipments(conn, NOV, "", 10) == ["A", "B"]
    assert await figures.customers_with_shipments(conn, NOV, "A", 10) == ["B"]
