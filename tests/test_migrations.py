"""`hub migrate`: in order, recorded, idempotent, safe from two processes at once."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import asyncpg
import pytest

from hub.migrate import MIGRATIONS_DIR, MigrationError, apply_migrations, discover, pending_migrations

pytestmark = pytest.mark.postgres

CONTRACT_TABLES = {
    "customers",
    "shipments",
    "shipment_events",
    "call_logs",
    "coordination_tasks",
    "customer_notifications",
    "task_events",
    "clock_firings",
    "clock_periods",
    "notification_attempts",
    "webhook_secrets",
    "reports",
    "inbox",
    "outbox",
    "dead_letters",
    "erasures",
    "schema_migrations",
    # the ops console (0008)
    "console_users",
    "console_sessions",
    "console_audit",
    "silences",
}


async def schema_of(dsn: str) -> list[tuple]:
    conn = await asyncpg.connect(dsn)
    try:
        rows = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' ORDER BY 1, 2"
        )
        return [tuple(r) for r in rows]
    finally:
        await conn.close()


async def test_migrations_create_every_contract_table_and_are_recorded(database_url):
    applied = await apply_migrations(database_url)
    assert applied == [f"{m.version:04d}_{m.name}" for m in discover()]
    assert {t for t, _, _ in await schema_of(database_url)} == CONTRACT_TABLES
    conn = await asyncpg.connect(database_url)
    try:
        assert await pending_migrations(conn) == []
        versions = [r["version"] for r in await conn.fetch("SELECT version FROM schema_migrations ORDER BY 1")]
        assert versions == [m.version for m in discover()]
    finally:
        await conn.close()


async def test_running_twice_changes_nothing(database_url):
    await apply_migrations(database_url)
    before = await schema_of(database_url)
    assert await apply_migrations(database_url) == []
    assert await schema_of(database_url) == before


def test_two_processes_at_once_leave_one_consistent_schema(database_url):
    env_cmd = [sys.executable, "-m", "hub", "migrate"]
    env = {"HUB_DATABASE_URL": database_url, "PATH": "/usr/bin:/bin"}
    procs = [
        subprocess.Popen(env_cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(2)
    ]
    outputs = [p.communicate(timeout=60)[0] for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outputs
    assert sorted(o.startswith("applied ") for o in outputs) == [False, True], outputs
    assert any("database is up to date" in o for o in outputs), outputs
    assert {t for t, _, _ in asyncio.run(schema_of(database_url))} == CONTRACT_TABLES


async def test_an_edited_migration_is_refused(database_url, tmp_path):
    for migration in discover():
        (tmp_path / f"{migration.version:04d}_{migration.name}.sql").write_text(migration.sql)
    await apply_migrations(database_url, tmp_path)
    first = sorted(tmp_path.glob("*.sql"))[0]
    first.write_text(first.read_text() + "\n-- edited\n")
    with pytest.raises(MigrationError, match="edited after it was applied"):
        await apply_migrations(database_url, tmp_path)


def test_migrations_live_under_deploy():
    assert MIGRATIONS_DIR.resolve().parts[-2:] == ("deploy", "migrations")
