"""Retention (issue 22, point 6): `hub purge` and the purge inside `hub run` delete exactly what is
past its horizon, in batches, and the application role may delete from those tables and no other.

Only Postgres. Rows are written with SQL at chosen ages; the roles come from
deploy/postgres-init/hub-roles.psql applied with psql, as in tests/test_deploy_files.py.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import orjson
import pytest
from typer.testing import CliRunner, Result

from hub.cli import app
from hub.migrate import apply_migrations
from hub.ops.lifecycle import PURGE_LOCK, PURGED_TABLES, Purger, PurgeReport, Retention, purge
from tests.support import fetchval
from tests.test_deploy_files import _apply_roles, _as_role

pytestmark = pytest.mark.postgres
runner = CliRunner()
NOW = datetime.now(UTC)
RETAIN = {
    "HUB_RETAIN_INBOX_DAYS": "30",
    "HUB_RETAIN_OUTBOX_DAYS": "7",
    "HUB_RETAIN_DEAD_LETTERS_DAYS": "90",
    "HUB_RETAIN_EVENTS_DAYS": "365",
}

# What the seed writes, and what a purge with RETAIN must leave.
SEED = """
INSERT INTO inbox (event_id, topic, payload_hash, partition, "offset", processed_at)
SELECT 'old-' || i, 'shipment.events', '\\x00', 0, i, $1::timestamptz - interval '40 days'
FROM generate_series(1, 25) i;
INSERT INTO inbox (event_id, topic, payload_hash, partition, "offset", processed_at)
SELECT 'new-' || i, 'shipment.events', '\\x00', 0, 100 + i, $1::timestamptz - interval '29 days'
FROM generate_series(1, 5) i;

-- sent 10 days ago (goes); created 10 days ago but unsent, or sent yesterday (stay); recent (stay)
INSERT INTO outbox (topic, value, message_id, created_at, sent_at)
SELECT 'alerts.exceptions', 'x', 'sent-old-' || i, $1::timestamptz - interval '10 days',
       $1::timestamptz - interval '10 days'
FROM generate_series(1, 20) i;
INSERT INTO outbox (topic, value, message_id, created_at, sent_at)
SELECT 'alerts.exceptions', 'x', 'unsent-old-' || i, $1::timestamptz - interval '10 days', NULL
FROM generate_series(1, 3) i;
INSERT INTO outbox (topic, value, message_id, created_at, sent_at)
SELECT 'alerts.exceptions', 'x', 'late-' || i, $1::timestamptz - interval '10 days', $1::timestamptz - interval '1 day'
FROM generate_series(1, 2) i;
INSERT INTO outbox (topic, value, message_id, created_at, sent_at)
SELECT 'alerts.exceptions', 'x', 'sent-new-' || i, $1::timestamptz - interval '1 day',
       $1::timestamptz - interval '1 day'
FROM generate_series(1, 5) i;

-- arrived 100 days ago, never replayed (goes), replayed 100 days ago (goes), replayed last week (stays),
-- arrived 10 days ago (stays)
INSERT INTO dead_letters (id, source_topic, source_partition, source_offset, value_hash, reason, error_class, message,
                          created_at, replayed_at)
SELECT gen_random_uuid(), 'call.logs', 0, i, '\\x00', 'invalid_json', 'E', 'm', $1::timestamptz - interval '100 days',
       CASE WHEN i <= 6 THEN NULL WHEN i <= 8 THEN $1::timestamptz - interval '95 days'
            ELSE $1::timestamptz - interval '7 days' END
FROM generate_series(1, 11) i;
INSERT INTO dead_letters (id, source_topic, source_partition, source_offset, value_hash, reason, error_class, message,
                          created_at)
SELECT gen_random_uuid(), 'call.logs', 1, i, '\\x00', 'invalid_json', 'E', 'm', $1::timestamptz - interval '10 days'
FROM generate_series(1, 2) i;

INSERT INTO shipment_events (event_id, shipment_id, topic, status, occurred_at, payload)
SELECT 'se-' || i, 'S' || (i % 3), 'shipment.events', 'created',
       $1::timestamptz - CASE WHEN i <= 12 THEN interval '400 days' ELSE interval '300 days' END, '{}'
FROM generate_series(1, 16) i;
INSERT INTO call_logs (event_id, call_id, customer_id, direction, channel, category, occurred_at, payload)
SELECT 'cl-' || i, 'K' || i, 'C1', 'inbound', 'phone', 'complaint',
       $1::timestamptz - CASE WHEN i <= 9 THEN interval '400 days' ELSE interval '1 day' END, '{}'
FROM generate_series(1, 12) i;

-- the task history is never purged, however old
INSERT INTO task_events (task_id, at, actor, action)
SELECT gen_random_uuid(), $1::timestamptz - interval '3 years', 'hub', 'created'
FROM generate_series(1, 4);
"""
PAST = {"inbox": 25, "outbox": 20, "dead_letters": 8, "shipment_events": 12, "call_logs": 9}
LEFT = {"inbox": 5, "outbox": 10, "dead_letters": 5, "shipment_events": 4, "call_logs": 3, "task_events": 4}


async def seed(dsn: str, now: datetime = NOW) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        for statement in SEED.split(";\n"):
            if statement.strip():
                await conn.execute(statement, now)
    finally:
        await conn.close()


async def counts(dsn: str) -> dict[str, int]:
    return {table: await fetchval(dsn, f"SELECT count(*) FROM {table}") for table in LEFT}


def invoke(dsn: str, *args: str, **env: str) -> Result:
    return runner.invoke(app, list(args), env={"HUB_DATABASE_URL": dsn, "COLUMNS": "200", **RETAIN, **env})


async def cli(dsn: str, *args: str, **env: str) -> Result:
    return await asyncio.to_thread(invoke, dsn, *args, **env)


@pytest.fixture
async def seeded(database_url: str) -> str:
    await apply_migrations(database_url)
    await seed(database_url)
    return database_url


async def test_purge_deletes_exactly_what_is_past_its_horizon_in_small_batches(seeded: str):
    dry = await cli(seeded, "purge", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.output
    assert {t: v["rows"] for t, v in orjson.loads(dry.stdout)["tables"].items()} == PAST
    assert await counts(seeded) == {t: LEFT[t] + PAST.get(t, 0) for t in LEFT}  # a dry run deletes nothing

    result = await cli(seeded, "purge", "--batch", "4")  # ties (25 inbox rows of one moment) span batches
    assert result.exit_code == 0, result.output
    assert "deleted 25 inbox, 20 outbox, 8 dead_letters, 12 shipment_events, 9 call_logs" in result.output
    assert "kept forever: task_events" in result.output
    assert await counts(seeded) == LEFT
    assert await fetchval(seeded, "SELECT count(*) FROM outbox WHERE sent_at IS NULL") == 3  # never published: kept

    again = await cli(seeded, "purge", "--json")
    assert {t: v["rows"] for t, v in orjson.loads(again.stdout)["tables"].items()} == dict.fromkeys(PAST, 0)


async def test_a_horizon_of_zero_keeps_a_table_forever(seeded: str):
    result = await cli(seeded, "purge", HUB_RETAIN_EVENTS_DAYS="0", HUB_RETAIN_INBOX_DAYS="0")
    assert result.exit_code == 0, result.output
    assert "kept forever: inbox, shipment_events, call_logs, task_events" in result.output
    left = await counts(seeded)
    assert left["inbox"] == 30 and left["shipment_events"] == 16 and left["call_logs"] == 12
    assert left["outbox"] == LEFT["outbox"] and left["dead_letters"] == LEFT["dead_letters"]


async def test_purge_waits_for_nobody_else_purging(seeded: str):
    holder = await asyncpg.connect(seeded)
    try:
        await holder.execute("SELECT pg_advisory_lock($1)", PURGE_LOCK)
        result = await cli(seeded, "purge")
        assert result.exit_code == 1 and "another hub is purging this database" in result.output
    finally:
        await holder.close()
    assert (await counts(seeded))["inbox"] == 30


async def test_one_hub_of_several_purges_on_schedule(seeded: str):
    reports: list[PurgeReport] = []
    retention = Retention(30, 7, 90, 365)
    hubs = [Purger(seeded, retention, 5, interval_s=0.3, first_after_s=0, on_purge=reports.append) for _ in range(2)]
    tasks = [asyncio.create_task(h.run()) for h in hubs]
    try:
        for _ in range(100):
            if len(reports) >= 3:
                break
            await asyncio.sleep(0.1)
        assert reports[0].deleted == PAST and reports[0].complete  # whoever got the lock first did it all
        assert all(r.total == 0 for r in reports[1:])
        assert await counts(seeded) == LEFT
        # the lock is held for a round only: between rounds `hub purge` can take it
        conn = await asyncpg.connect(seeded)
        try:
            for _ in range(100):
                if await conn.fetchval("SELECT pg_try_advisory_lock($1)", PURGE_LOCK):
                    break
                await asyncio.sleep(0.05)
            else:
                pytest.fail("the purge lock was never free between rounds")
        finally:
            await conn.close()
    finally:
        for h in hubs:
            h.stop()
        await asyncio.gather(*tasks)


async def test_purge_stops_between_batches_when_asked(seeded: str):
    conn = await asyncpg.connect(seeded)
    try:
        calls = iter(range(1000))
        report = await purge(conn, Retention(30, 7, 90, 365), 4, stopping=lambda: next(calls) >= 2)
    finally:
        await conn.close()
    assert not report.complete and report.deleted == {"inbox": 8}  # two batches, then the stop
    assert (await counts(seeded))["inbox"] == 22


async def test_the_app_role_may_delete_from_the_purged_tables_and_no_other(database_url: str):
    tag = uuid.uuid4().hex[:8]
    owner, app_role, password = f"hub_owner_{tag}", f"hub_app_{tag}", f"pw-{tag}"
    admin = await asyncpg.connect(database_url)
    try:
        _apply_roles(database_url, owner, app_role, password)  # as Compose does: roles first, then `hub migrate`
        await apply_migrations(_as_role(database_url, owner, password))  # 0009 grants DELETE to the app role
        app_dsn = _as_role(database_url, app_role, password)
        await _assert_delete_rights(app_dsn)
        _apply_roles(database_url, owner, app_role, password)  # again: the same rights, no more
        await _assert_delete_rights(app_dsn)
        # and the app role can do the purge's and the erasure's work
        await seed(database_url)
        result = await cli(app_dsn, "purge", "--batch", "7")
        assert result.exit_code == 0, result.output
        assert await counts(database_url) == LEFT
        await admin.execute("INSERT INTO customers (customer_id, name, phone) VALUES ('C1', 'Wang Wei', '13800138000')")
        result = await cli(app_dsn, "customers", "erase", "C1", "--by", "dpo@example.com")
        assert result.exit_code == 0, result.output
        assert await fetchval(database_url, "SELECT count(*) FROM erasures WHERE customer_id = 'C1'") == 1
    finally:
        await admin.execute(f'DROP OWNED BY "{app_role}"')
        await admin.execute(f'DROP OWNED BY "{owner}"')
        await admin.execute(f'DROP ROLE IF EXISTS "{app_role}"')
        await admin.execute(f'DROP ROLE IF EXISTS "{owner}"')
        await admin.close()


async def test_the_roles_script_grants_delete_on_a_database_migrated_before_it_ran(database_url: str):
    tag = uuid.uuid4().hex[:8]
    owner, app_role, password = f"hub_owner_{tag}", f"hub_app_{tag}", f"pw-{tag}"
    admin = await asyncpg.connect(database_url)
    try:
        await admin.execute(f"CREATE ROLE \"{owner}\" LOGIN PASSWORD '{password}'")
        await admin.execute(f'GRANT CREATE ON SCHEMA public TO "{owner}"')
        await apply_migrations(_as_role(database_url, owner, password))  # no app role yet: 0009 grants nothing
        _apply_roles(database_url, owner, app_role, password)
        await _assert_delete_rights(_as_role(database_url, app_role, password))
    finally:
        await admin.execute(f'DROP OWNED BY "{app_role}"')
        await admin.execute(f'DROP OWNED BY "{owner}"')
        await admin.execute(f'DROP ROLE IF EXISTS "{app_role}"')
        await admin.execute(f'DROP ROLE IF EXISTS "{owner}"')
        await admin.close()


async def _assert_delete_rights(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        tables = [r["tablename"] for r in rows]
        may = {t for t in tables if await conn.fetchval("SELECT has_table_privilege($1, 'DELETE')", t)}
        assert may == set(PURGED_TABLES)
        for table in PURGED_TABLES:
            await conn.execute(f"DELETE FROM {table} WHERE false")
        for table in ("customers", "coordination_tasks", "task_events", "customer_notifications", "erasures"):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(f"DELETE FROM {table}")
        for table in PURGED_TABLES:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await conn.execute(f"TRUNCATE {table}")
    finally:
        await conn.close()
