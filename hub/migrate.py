"""Apply the numbered SQL migrations in `deploy/migrations/`, in order, each in a transaction.

Safe to run twice and from several processes at once: a session advisory lock serialises
runners, and `schema_migrations` records what is applied (with a checksum, so an edited
migration is refused instead of silently skipped).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import asyncpg

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
_LOCK_KEY = 0x6875625F6D6967  # "hub_mig": one lock for every hub sharing a database
_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")

CREATE_LEDGER = """
CREATE TABLE IF NOT EXISTS schema_migrations (
    version     integer PRIMARY KEY,
    name        text NOT NULL,
    checksum    text NOT NULL,
    applied_at  timestamptz NOT NULL DEFAULT now()
)"""
SELECT_APPLIED = "SELECT version, checksum FROM schema_migrations"
INSERT_APPLIED = "INSERT INTO schema_migrations (version, name, checksum) VALUES ($1, $2, $3)"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


class MigrationError(RuntimeError):
    pass


def discover(directory: Path = MIGRATIONS_DIR) -> list[Migration]:
    found = []
    for path in sorted(directory.glob("*.sql")):
        match = _NAME.match(path.name)
        if not match:
            raise MigrationError(f"{path}: migration files are named NNNN_what.sql")
        found.append(Migration(int(match[1]), match[2], path.read_text(encoding="utf-8")))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise MigrationError(f"{directory}: two migrations share a number")
    return found


async def apply_migrations(dsn: str, directory: Path = MIGRATIONS_DIR, **connect_kwargs) -> list[str]:
    """Apply what is missing; returns the names applied now (empty when up to date)."""
    migrations = discover(directory)
    conn = await asyncpg.connect(dsn, **connect_kwargs)
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _LOCK_KEY)
        try:
            return await _apply_missing(conn, migrations)
        finally:
            await conn.execute("SELECT pg_advisory_unlock($1)", _LOCK_KEY)
    finally:
        await conn.close()


async def _apply_missing(conn: asyncpg.Connection, migrations: list[Migration]) -> list[str]:
    await conn.execute(CREATE_LEDGER)
    applied = {row["version"]: row["checksum"] for row in await conn.fetch(SELECT_APPLIED)}
    done = []
    for migration in migrations:
        if migration.version in applied:
            if applied[migration.version] != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} was edited after it was applied; "
                    "add a new numbered migration instead"
                )
            continue
        async with conn.transaction():
            await conn.execute(migration.sql)
            await conn.execute(INSERT_APPLIED, migration.version, migration.name, migration.checksum)
        done.append(f"{migration.version:04d}_{migration.name}")
    return done


async def pending_migrations(conn: asyncpg.Connection, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Names of migrations not applied to this database (all of them when it was never migrated)."""
    exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
    applied = {r["version"] for r in await conn.fetch(SELECT_APPLIED)} if exists else set()
    return [f"{m.version:04d}_{m.name}" for m in discover(directory) if m.version not in applied]
