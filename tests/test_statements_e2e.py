"""Monthly statements end to end: a month of simulated traffic through the broker into a running
hub, the clock run into the next month with `hub tick --now`, then every customer with a
shipment that month has exactly one stored statement and one monthly_statement notice, and the
figures in the statements match counts written here independently, from the events' payloads.

Also the survey loop: a survey answer scoring 1 raises low_satisfaction; a resolved complaint
gets its follow-up survey a day later (and a key account a visit); a delivery its survey.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import orjson
import pytest_asyncio
from typer.testing import CliRunner

from hub.cli import app
from hub.clock import engine
from hub.dev.simulator import CALL, CARRIER, SHIPMENT, customers, generate
from hub.ops.customers import import_customers
from producers.feeds import FEEDS
from tests.support import fetch, fetchval, isolated_settings, running_hub, scratch_database, wait_until

ZONE = ZoneInfo("Asia/Shanghai")
NOVEMBER = datetime(2026, 11, 1, 0, 0, tzinfo=ZONE)
DECEMBER = datetime(2026, 12, 1, 0, 0, tzinfo=ZONE)
SEED = 11


async def tick(settings, now: datetime) -> dict:
    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["tick", "--now", now.isoformat(), "--json"],
        env=settings.child_environment(),
        catch_exceptions=False,
    )
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def month(kafka_bootstrap, kafka_is_embedded, pg_admin_dsn):
    """November 2026 of simulated traffic (one simulated day a wall second), stored by a running hub."""
    async with scratch_database(pg_admin_dsn) as dsn:
        settings = isolated_settings(kafka_bootstrap, kafka_is_embedded, dsn, survey_sample_rate=0.5)
        traffic = list(
            generate(
                SEED,
                100,
                28,
                start=NOVEMBER,
                speed=86400,
                malformed_rate=0,
                duplicate_rate=0,
                late_rate=0,
                customer_count=120,
            )
        )
        async with running_hub(settings):
            conn = await asyncpg.connect(dsn)
            await import_customers(conn, customers(SEED, 120))
            for kind in (SHIPMENT, CARRIER, CALL):
                async with FEEDS[kind](settings=settings) as feed:
                    await feed.publish_raw_many([(m.event_id, m.key, m.value) for m in traffic if m.kind == kind])

            async def stored() -> bool:
                return await conn.fetchval("SELECT count(*) FROM inbox") >= len(traffic)

            await wait_until(stored, timeout=120, what="the month's traffic stored")
            await conn.close()
            yield settings, dsn


async def test_every_customer_with_shipments_gets_one_statement_and_one_notice(month, monkeypatch):
    settings, dsn = month
    # The sweep builds its share a tick and says there is more; `hub tick` goes on to the end.
    monkeypatch.setattr(engine, "STATEMENTS_PER_TICK", 7)
    report = await tick(settings, DECEMBER)
    # Independently, from the payloads: the customers whose shipment was created in November (local time).
    expected = {
        r["c"]
        for r in await fetch(
            dsn,
            """
        SELECT DISTINCT payload ->> 'customer_id' AS c FROM shipment_events
        WHERE status = 'created' AND occurred_at >= $1 AND occurred_at < $2""",
            NOVEMBER,
            DECEMBER,
        )
    }
    assert len(expected) > 20
    stored = await fetch(
        dsn,
        "SELECT customer_id, count(*) AS n FROM reports WHERE kind = 'statement' AND "
        "period = '2026-11' AND format = 'json' GROUP BY 1",
    )
    notices = await fetch(
        dsn, "SELECT customer_id, count(*) AS n FROM customer_notifications WHERE kind = 'monthly_statement' GROUP BY 1"
    )
    assert {r["customer_id"]: r["n"] for r in stored} == dict.fromkeys(expected, 1)
    assert {r["customer_id"]: r["n"] for r in notices} == dict.fromkeys(expected, 1)
    assert sum(f["timer"] == "monthly_statement" for f in report["fired"]) == len(expected)
    # A tick later in December builds nothing again.
    await tick(settings, DECEMBER + timedelta(days=3))
    assert await fetchval(dsn, "SELECT count(*) FROM reports WHERE kind = 'statement'") == len(expected)


async def test_the_statements_figures_match_an_independent_count(month):
    _settings, dsn = month
    rows = await fetch(dsn, "SELECT customer_id, content FROM reports WHERE kind = 'statement' AND format = 'json'")
    assert rows
    for row in rows:
        statement = orjson.loads(row["content"])
        customer = row["customer_id"]
        shipments = await fetchval(
            dsn,
            """
            SELECT count(DISTINCT shipment_id) FROM shipment_events
            WHERE status = 'created' AND payload ->> 'customer_id' = $1 AND occurred_at >= $2 AND occurred_at < $3""",
            customer,
            NOVEMBER,
            DECEMBER,
        )
        # delivered in November (its first delivered event, either stream), whenever it was created
        delivered = await fetchval(
            dsn,
            """
            SELECT count(*) FROM (SELECT shipment_id, min(occurred_at) AS at FROM shipment_events
                                  WHERE status = 'delivered' GROUP BY 1) AS d
            WHERE d.at >= $2 AND d.at < $3 AND d.shipment_id IN (
                SELECT shipment_id FROM shipment_events WHERE payload ->> 'customer_id' = $1)""",
            customer,
            NOVEMBER,
            DECEMBER,
        )
        complaints = await fetchval(
            dsn,
            """
            SELECT count(*) FROM coordination_tasks WHERE customer_id = $1 AND opened_at >= $2 AND opened_at < $3
              AND kind IN ('complaint', 'repeat_contact', 'low_satisfaction')""",
            customer,
            NOVEMBER,
            DECEMBER,
        )
        assert (statement["shipments"], statement["delivered"], statement["complaints"]) == (
            shipments,
            delivered,
            complaints,
        ), customer
        assert sum(d["shipments"] for d in statement["shipments_per_day"]) == shipments
        assert len(statement["shipments_per_day"]) == 30


async def test_delivered_shipments_get_their_survey_a_day_later_sampled_and_at_most_monthly(month):
    _settings, dsn = month
    surveys = await fetch(
        dsn,
        "SELECT customer_id, source_event_id, created_at FROM customer_notifications "
        "WHERE kind = 'satisfaction_survey' AND source_event_id LIKE 'clock:delivery_survey:%'",
    )
    assert surveys, "with a sample rate of 0.5 and every key account asked, some deliveries get a survey"
    by_customer: dict[str, list[datetime]] = {}
    for s in surveys:
        by_customer.setdefault(s["customer_id"], []).append(s["created_at"])
    # at most one delivery survey per customer: the whole month was ticked at once on 1 December
    assert all(len(times) == 1 for times in by_customer.values())


async def test_a_low_score_raises_low_satisfaction_and_a_resolved_complaint_gets_its_follow_up(month):
    settings, dsn = month
    from tests.support import call_log, publish

    when = (DECEMBER + timedelta(days=5)).astimezone(UTC)
    answer = call_log("C00001", "survey", 0, satisfaction_score=1, reference=str(uuid.uuid4()))
    answer["occurred_at"] = when.isoformat()
    complaint = call_log("C00002", "complaint", 0)
    complaint["occurred_at"] = when.isoformat()
    await publish(settings, calls=[answer, complaint])

    async def raised() -> bool:
        return bool(
            await fetchval(
                dsn,
                "SELECT count(*) FROM coordination_tasks WHERE source_event_id = ANY($1)",
                [answer["event_id"], complaint["event_id"]],
            )
        )

    await wait_until(raised, what="the two calls routed")
    low = await fetch(
        dsn, "SELECT department, kind, severity FROM coordination_tasks WHERE source_event_id = $1", answer["event_id"]
    )
    assert [tuple(r) for r in low] == [("complaints", "low_satisfaction", "P2")]
    task_id = await fetchval(
        dsn,
        "SELECT task_id FROM coordination_tasks WHERE source_event_id = $1 AND department = 'complaints'",
        complaint["event_id"],
    )
    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["tasks", "resolve", str(task_id), "--by", "mei", "--resolution", "apologised, refund issued"],
        env=settings.child_environment(),
    )
    assert result.exit_code == 0, result.output
    resolved_at = await fetchval(dsn, "SELECT resolved_at FROM coordination_tasks WHERE task_id = $1", task_id)
    await tick(settings, resolved_at + timedelta(hours=23))
    follow_ups = "SELECT count(*) FROM customer_notifications WHERE source_event_id = $1"
    source = f"clock:complaint_follow_up:{task_id}:{resolved_at.isoformat()}"
    assert await fetchval(dsn, follow_ups, source) == 0  # not yet: a day after it was resolved
    await tick(settings, resolved_at + timedelta(hours=24))
    assert await fetchval(dsn, follow_ups, source) == 1
