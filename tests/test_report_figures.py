"""Every figure of the reports on a small data set whose answers were worked out by hand (the
comments say how), in November 2026, Asia/Shanghai: [2026-10-31T16:00Z, 2026-11-30T16:00Z)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from hub.migrate import apply_migrations
from hub.reports import figures
from hub.reports.models import Count
from tests.report_data import AS_OF, NOV, november, utc

pytestmark = pytest.mark.postgres


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    await apply_migrations(database_url)
    c = await asyncpg.connect(database_url)
    await november(c)
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
