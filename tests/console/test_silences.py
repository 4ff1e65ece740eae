"""Silences: the pure matcher (hub/core/silences.py), and write_alerts applying it where alerts
enter the outbox (recorded, marked sent and silenced, never relayed)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from hub.core.silences import ActiveSilence, AlertFacts, Matcher, MatcherError, make_matcher, needs_lookup, silenced_by
from hub.core.topics import Destinations, Queue
from hub.migrate import apply_migrations
from hub.ops.db import OpsError
from hub.ops.silences import create_silence, expire_silence, list_silences
from tests.console.harness import alert_for, jsonb_connection, make_task, unique, write_alert
from tests.support import fetch

NOW = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
DAMAGE = AlertFacts(
    queue="exceptions", kind="damage", customer_id="C1", shipment_id="S1", department="claims", carrier_id="SF"
)


def active(silence_id: int, ends_in: timedelta = timedelta(hours=1), **matcher: str) -> ActiveSilence:
    return ActiveSilence(silence_id, Matcher(**matcher), NOW + ends_in)


def test_a_matcher_matches_when_every_named_field_is_equal():
    assert Matcher(queue="exceptions").matches(DAMAGE)
    assert Matcher(queue="exceptions", kind="damage", carrier_id="SF").matches(DAMAGE)
    assert not Matcher(queue="exceptions", kind="loss").matches(DAMAGE)
    assert not Matcher(shipment_id="S2").matches(DAMAGE)
    assert not Matcher(customer_id="C1").matches(AlertFacts("exceptions", "damage", None, "S1"))


def test_the_oldest_active_matching_silence_holds_the_alert():
    silences = [
        active(7, kind="damage"),
        active(3, queue="exceptions"),
        active(1, ends_in=-timedelta(seconds=1), kind="damage"),
    ]
    assert silenced_by(silences, DAMAGE, NOW) == 3
    assert silenced_by([active(9, kind="loss")], DAMAGE, NOW) is None
    assert silenced_by([], DAMAGE, NOW) is None


def test_only_department_and_carrier_need_a_lookup():
    assert not needs_lookup([active(1, queue="complaints", customer_id="C1", shipment_id="S1", kind="complaint")])
    assert needs_lookup([active(1, department="claims")])
    assert needs_lookup([active(1, queue="exceptions"), active(2, carrier_id="SF")])


def test_matchers_from_forms_are_checked():
    assert make_matcher({"queue": " exceptions ", "kind": "", "carrier_id": "SF"}).named() == {
        "queue": "exceptions",
        "carrier_id": "SF",
    }
    with pytest.raises(MatcherError, match="at least one"):
        make_matcher({"queue": "", "kind": "  "})
    with pytest.raises(MatcherError, match="not one of"):
        make_matcher({"queue": "nowhere"}, queues=[q.value for q in Queue])
    with pytest.raises(MatcherError, match="unknown matcher field"):
        make_matcher({"severity": "P1"})
    with pytest.raises(MatcherError, match="control characters"):
        make_matcher({"shipment_id": "S\x00"})


@pytest.fixture
async def dsn(database_url: str) -> str:
    await apply_migrations(database_url)
    return database_url


DESTINATIONS = Destinations({q: f"alerts.{q.value}" for q in Queue}, "hub.dead-letter")


async def _outbox(dsn: str, alert_id: str) -> asyncpg.Record:
    return (await fetch(dsn, "SELECT sent_at, silenced_by FROM outbox WHERE message_id = $1", alert_id))[0]


async def test_write_alerts_holds_back_what_an_active_silence_matches_by_its_task_and_sheet(dsn: str):
    carrier_shipment, other_shipment = unique("S-SF"), unique("S-YT")
    conn = await jsonb_connection(dsn)
    try:
        await conn.execute(
            "INSERT INTO shipments (shipment_id, carrier_id) VALUES ($1, 'SF'), ($2, 'YTO')",
            carrier_shipment,
            other_shipment,
        )
        in_a_day = await conn.fetchval("SELECT now() + interval '1 day'")
        by_carrier = await create_silence(conn, Matcher(carrier_id="SF"), "sam", "SF outage", in_a_day)
        by_department = await create_silence(
            conn, Matcher(department="complaints", kind="complaint"), "sam", "x", in_a_day
        )
    finally:
        await conn.close()
    cases = []
    for department, kind, shipment, expected in (
        ("claims", "damage", carrier_shipment, by_carrier.id),
        ("claims", "damage", other_shipment, None),
        ("complaints", "complaint", other_shipment, by_department.id),
        ("complaints", "repeat_contact", other_shipment, None),
    ):
        task_id = await make_task(dsn, department=department, kind=kind, rule=kind, shipment_id=shipment)
        alert = alert_for(task_id, kind=kind, shipment_id=shipment)
        await write_alert(dsn, DESTINATIONS, Queue.EXCEPTIONS, alert)
        cases.append((alert.alert_id, expected))
    for alert_id, expected in cases:
        row = await _outbox(dsn, alert_id)
        assert row["silenced_by"] == expected
        assert (row["sent_at"] is not None) == (expected is not None)  # silenced: already "sent", so never relayed


async def test_an_expired_silence_holds_nothing_back_and_stays_listed(dsn: str):
    shipment = unique("S-EXP")
    conn = await jsonb_connection(dsn)
    try:
        ends = await conn.fetchval("SELECT now() + interval '1 hour'")
        silence = await create_silence(conn, Matcher(shipment_id=shipment), "sam", "maintenance", ends)
        expired = await expire_silence(conn, silence.id, "ada")
        assert not expired.active and expired.expired_by == "ada"
        with pytest.raises(OpsError, match="already ended"):
            await expire_silence(conn, silence.id, "ada")
        with pytest.raises(OpsError, match="future"):
            await create_silence(conn, Matcher(shipment_id=shipment), "sam", "x", ends - timedelta(days=1))
        with pytest.raises(OpsError, match="comment"):
            await create_silence(conn, Matcher(shipment_id=shipment), "sam", "  ", ends)
        with pytest.raises(OpsError, match="at most 30 days"):
            await create_silence(conn, Matcher(shipment_id=shipment), "sam", "x", ends + timedelta(days=31))
        listed = await list_silences(conn)
        assert [s.id for s in listed] == [silence.id] and listed[0].age >= timedelta(0)
    finally:
        await conn.close()
    task_id = await make_task(dsn, shipment_id=shipment)
    alert = alert_for(task_id, shipment_id=shipment)
    await write_alert(dsn, DESTINATIONS, Queue.EXCEPTIONS, alert)
    row = await _outbox(dsn, alert.alert_id)
    assert row["silenced_by"] is None and row["sent_at"] is None
