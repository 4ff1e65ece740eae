"""Create and drop whole databases: one per test scenario or benchmark phase.

The name is built here from a fixed prefix and random hex, never from user input, so quoting it
into CREATE/DROP DATABASE (which take no parameters) is safe.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit, urlunsplit

import asyncpg

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,62}$")


@asynccontextmanager
async def scratch_database(admin_dsn: str, prefix: str) -> AsyncIterator[str]:
    """A new empty database on `admin_dsn`'s server, dropped afterwards (with any connections
    still open to it). Yields its DSN: `admin_dsn` with the database name replaced."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    if not _NAME.match(name):
        raise ValueError(
            f"database prefix {prefix!r} must be lower-case letters, digits and underscores (at most 49 characters)"
        )
    await _admin(admin_dsn, f'CREATE DATABASE "{name}"')
    try:
        yield urlunsplit(urlsplit(admin_dsn)._replace(path=f"/{name}"))
    finally:
        await _admin(admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def _admin(admin_dsn: str, statement: str) -> None:
    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(statement)
    finally:
        await conn.close()
