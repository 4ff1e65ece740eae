"""The clock end to end: events through the real broker into a running hub, time driven with
`hub tick --now`, effects read back from Postgres and from the handler queues.

One hub and database for the module. Each test owns its shipments and customers and a stretch
of simulated time a month apart from the others (`era`), so a tick of one test never reaches
the timers of another that runs later; tests run in file order (xdist's loadfile).
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
import pytest_asyncio
from typer.testing import CliRunner

from hub.cli import app
from hub.config import Settings
from hub.ops.customers import import_customers
from schemas.customers import Customer
from tests.support import (
    fetch,
    fetchval,
    isolated_settings,
    publish,
    read_topics,
    running_hub,
    scratch_database,
    wait_for_count,
)

H = timedelta(hours=1)
BASE = datetime(2027, 1, 1, 9, 0, tzinfo=UTC)


@dataclass
class Clockwork:
    settings: Settings
    dsn: str

    def era(self, months: int) -> datetime:
        return BASE + timedelta(days=31 * months)

    async def tick(self, now: datetime) -> dict[str, Any]:
        result = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            ["tick", "--now", now.isoformat(), "--json"],
            env=self.settings.child_environment(),
            catch_exceptions=False,
        )
        assert result.exit_code == 0, result.output
        return orjson.loads(result.stdout)

    async def fired(self, subject: str) -> list[tuple[str, str]]:
        rows = await fetch(
            self.dsn, "SELECT timer, key FROM clock_firings WHERE subject = $1 ORDER BY due_at, key", subject
        )
        return [(r["timer"], r["key"]) for r in rows]

    async def task(self, where: str, *args: Any) -> Any:
        rows = await fetch(self.dsn, f"SELECT * FROM coordination_tasks WHERE {where}", *args)
        assert len(rows) == 1, rows
        return rows[0]

    async def settle(self, events: int) -> None:
        await wait_for_count(self.dsn, "SELECT count(*) FROM inbox", events)


def ship(shipment_id: str, type_: str, at: datetime, customer_id: str = "C-STD", **extra: Any) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": at.isoformat(),
        "source": "wms-sh-01",
        "shipment_id": shipment_id,
        "customer_id": customer_id,
        "type": type_,
        **extra,
    }


def complaint(customer_id: str, at: datetime, shipment_id: str) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": at.isoformat(),
        "source": "cc",
        "call_id": uuid.uuid4().hex[:8],
        "customer_id": customer_id,
        "shipment_id": shipment_id,
        "direction": "inbound",
        "channel": "phone",
        "category": "complaint",
    }


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def clockwork(kafka_bootstrap, kafka_is_embedded, pg_admin_dsn) -> AsyncIterator[Clockwork]:
    async with scratch_database(pg_admin_dsn) as dsn:
        settings = isolated_settings(kafka_bootstrap, kafka_is_embedded, dsn)
        async with running_hub(settings):
            import asyncpg

            conn = await asyncpg.connect(dsn)
            await import_customers(
                conn,
                [
                    Customer(customer_id="C-STD"),
                    Customer(customer_id="C-KEY", tier="key"),
                    Customer(customer_id="C-KEY2", tier="key", language="en"),
                ],
            )
            await conn.close()
            yield Clockwork(settings, dsn)


async def test_sla_warning_then_breach_level_1_then_level_2(clockwork: Clockwork):
    t = clockwork.era(0)
    await publish(clockwork.settings, calls=[complaint("C-STD", t, "S-SLA")])
    await clockwork.settle(1)
    task = await clockwork.task("shipment_id = 'S-SLA'")
    assert (task["severity"], task["opened_at"], task["due_at"]) == ("P2", t, t + 8 * H)
    tid = str(task["task_id"])
    await clockwork.tick(t + 5.9 * H)
    assert await clockwork.fired(tid) == []  # before the warning point
    await clockwork.tick(t + 6 * H)
    assert await clockwork.fired(tid) == [("sla_warning", "0")]
    assert (await clockwork.task("task_id = $1", task["task_id"]))["warned_at"] == t + 6 * H
    await clockwork.tick(t + 8 * H)
    after_1 = await clockwork.task("task_id = $1", task["task_id"])
    assert (after_1["escalation_level"], after_1["severity"], after_1["breached_at"]) == (1, "P1", t + 8 * H)
    await clockwork.tick(t + 15.9 * H)
    assert len(await clockwork.fired(tid)) == 2
    await clockwork.tick(t + 16 * H)
    after_2 = await clockwork.task("task_id = $1", task["task_id"])
    assert (after_2["escalation_level"], after_2["severity"]) == (2, "P1")
    assert await clockwork.fired(tid) == [("sla_warning", "0"), ("sla_breach", "1"), ("sla_breach", "2")]
    history = [
        r["action"]
        for r in await fetch(
            clockwork.dsn, "SELECT action FROM task_events WHERE task_id = $1 ORDER BY id", task["task_id"]
        )
    ]
    assert history == ["created", "warned", "escalated", "escalated"]
    # the three alerts reach alerts.escalations, each once, with the clock's source, level and escalated_to
    escalations = [
        orjson.loads(r.value)
        for r in await read_topics(clockwork.settings, [clockwork.settings.topic_alerts_escalations], expected=3)
    ]
    mine = [a for a in escalations if a["task_id"] == tid]
    assert [(a["kind"], a.get("level"), a.get("escalated_to")) for a in mine] == [
        ("sla_warning", None, None),
        ("sla_breach", 1, "supervisor"),
        ("sla_breach", 2, "manager"),
    ]
    assert all(a["source"]["timer"] == a["kind"] for a in mine)
    assert [a["created_at"] for a in mine] == [f"{(t + h * H).isoformat().replace('+00:00', 'Z')}" for h in (6, 8, 16)]


async def test_a_late_tick_catches_up_level_1_and_2_at_once_without_a_warning(clockwork: Clockwork):
    t = clockwork.era(1)
    await publish(clockwork.settings, shipments=[ship("S-LATE", "exception", t, exception={"code": "damaged"})])
    await clockwork.settle(2)
    task = await clockwork.task("shipment_id = 'S-LATE' AND department = 'claims'")  # P1, 2 h window
    await clockwork.tick(t + 12 * H)  # 10 h past due
    assert await clockwork.fired(str(task["task_id"])) == [("sla_breach", "1"), ("sla_breach", "2")]
    again = await clockwork.task("task_id = $1", task["task_id"])
    assert (again["escalation_level"], again["warned_at"]) == (2, None)


async def test_a_task_resolved_before_due_is_never_breached(clockwork: Clockwork):
    t = clockwork.era(2)
    await publish(clockwork.settings, calls=[complaint("C-STD", t, "S-RES")])
    await clockwork.settle(3)
    task = await clockwork.task("shipment_id = 'S-RES'")
    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["tasks", "resolve", str(task["task_id"]), "--by", "amy", "--resolution", "called the customer back"],
        env=clockwork.settings.child_environment(),
    )
    assert result.exit_code == 0, result.output
    await clockwork.tick(t + 100 * H)
    # no warning, no breach; only the satisfaction survey a resolved complaint earns a day later
    assert [timer for timer, _ in await clockwork.fired(str(task["task_id"]))] == ["complaint_follow_up"]


async def test_stale_after_the_status_threshold_and_re_armed_by_a_move(clockwork: Clockwork):
    t = clockwork.era(3)
    await publish(
        clockwork.settings,
        shipments=[
            ship("S-STALE", "created", t),
            ship("S-MOVE", "created", t),
            ship("S-DONE", "created", t),
            ship("S-MOVE", "in_transit", t + 20 * H),
            ship("S-DONE", "delivered", t + H),
        ],
    )
    await clockwork.settle(8)
    await clockwork.tick(t + 25 * H)
    assert await clockwork.fired("S-STALE") == [("stale_shipment", t.isoformat())]
    assert await clockwork.fired("S-MOVE") == []  # moved at +20 h: stale only 48 h after that
    stale_task = await clockwork.task("shipment_id = 'S-STALE'")
    assert (stale_task["department"], stale_task["kind"], stale_task["severity"]) == (
        "carrier_liaison",
        "stale_shipment",
        "P3",
    )
    assert (
        await fetchval(
            clockwork.dsn,
            "SELECT count(*) FROM customer_notifications WHERE shipment_id = 'S-STALE' "
            "AND source_event_id LIKE 'clock:%'",
        )
        == 0
    )
    await clockwork.tick(t + 68 * H)
    assert await clockwork.fired("S-MOVE") == [("stale_shipment", (t + 20 * H).isoformat())]
    assert await clockwork.fired("S-STALE") == [("stale_shipment", t.isoformat())]  # once per last_event_at
    await clockwork.tick(t + 500 * H)
    assert await clockwork.fired("S-DONE") == []  # delivered: never stale


async def test_a_key_accounts_stale_shipment_is_raised_and_followed_up(clockwork: Clockwork):
    t = clockwork.era(4)
    await publish(clockwork.settings, shipments=[ship("S-KSTALE", "packed", t, customer_id="C-KEY")])
    await clockwork.settle(9)
    await clockwork.tick(t + 24 * H)
    rows = await fetch(
        clockwork.dsn,
        "SELECT department, severity FROM coordination_tasks "
        "WHERE shipment_id = 'S-KSTALE' AND rule = 'stale_shipment' ORDER BY department",
    )
    assert [tuple(r) for r in rows] == [("carrier_liaison", "P2"), ("key_accounts", "P2")]


async def test_delivery_overdue_with_a_delay_notice_unless_one_was_sent(clockwork: Clockwork):
    t = clockwork.era(5)
    promise = (t + 30 * H).isoformat()
    await publish(
        clockwork.settings,
        shipments=[
            ship("S-OVER", "dispatched", t, promised_delivery_at=promise),
            ship("S-TOLD", "dispatched", t, promised_delivery_at=promise),
            ship("S-TOLD", "exception", t + H, exception={"code": "delayed"}),  # the customer hears of a delay now
        ],
    )
    await clockwork.settle(12)
    await clockwork.tick(t + 30 * H)
    assert await clockwork.fired("S-OVER") == [("delivery_overdue", promise)]
    assert await clockwork.fired("S-TOLD") == [("delivery_overdue", promise)]
    over = await clockwork.task("shipment_id = 'S-OVER' AND rule = 'delivery_overdue'")
    assert (over["department"], over["severity"]) == ("carrier_liaison", "P2")
    delays = await fetch(
        clockwork.dsn,
        "SELECT shipment_id, count(*) AS n FROM customer_notifications "
        "WHERE kind = 'delay' AND shipment_id IN ('S-OVER', 'S-TOLD') GROUP BY 1 ORDER BY 1",
    )
    assert [tuple(r) for r in delays] == [("S-OVER", 1), ("S-TOLD", 1)]  # no second delay notice
    await clockwork.tick(t + 40 * H)
    assert await clockwork.fired("S-OVER") == [("delivery_overdue", promise)]  # once per promise


async def test_one_key_account_review_per_key_account_per_month(clockwork: Clockwork):
    t = clockwork.era(6)
    month = f"{t.astimezone(clockwork.settings.zone):%Y-%m}"
    await clockwork.tick(t)
    await clockwork.tick(t + H)
    rows = await fetch(
        clockwork.dsn,
        "SELECT customer_id, severity, due_at, department FROM coordination_tasks "
        "WHERE kind = 'key_account_review' AND source_event_id LIKE $1 ORDER BY customer_id",
        f"clock:key_account_review:%:{month}",
    )
    assert [(r["customer_id"], r["severity"], r["department"]) for r in rows] == [
        ("C-KEY", "P4", "key_accounts"),
        ("C-KEY2", "P4", "key_accounts"),
    ]
    assert all(r["due_at"] == t + timedelta(days=7) for r in rows)
    assert (
        await fetchval(
            clockwork.dsn,
            "SELECT count(*) FROM outbox WHERE message_id IN (SELECT alert_id::text "
            "FROM coordination_tasks WHERE kind = 'key_account_review')",
        )
        == 0
    )  # no alert


async def test_two_hub_tick_processes_at_the_same_instant_fire_each_timer_once(clockwork: Clockwork):
    t = clockwork.era(7)
    shipments = [ship(f"S-TWIN-{i}", "created", t) for i in range(30)]
    await publish(clockwork.settings, shipments=shipments, calls=[complaint("C-STD", t, "S-TWIN-0")])
    await clockwork.settle(12 + 31)
    env = clockwork.settings.child_environment()
    command = [sys.executable, "-m", "hub", "tick", "--now", (t + 30 * H).isoformat(), "--json"]
    runs = await asyncio.gather(
        *(
            asyncio.to_thread(subprocess.run, command, env=env, capture_output=True, text=True, timeout=120)
            for _ in range(2)
        )
    )
    assert [r.returncode for r in runs] == [0, 0], [r.stderr for r in runs]
    fired = sorted(len(orjson.loads(r.stdout)["fired"]) for r in runs)
    mine = await fetchval(clockwork.dsn, "SELECT count(*) FROM clock_firings WHERE subject LIKE 'S-TWIN-%'")
    assert mine == 30 and fired[0] == 0  # every shipment stale once; the second process found nothing left
    copies = await fetchval(clockwork.dsn, "SELECT count(*) - count(DISTINCT message_id) FROM outbox")
    assert copies == 0
