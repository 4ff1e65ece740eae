"""One Postgres connection for an ops command, and the errors an operator can act on.

Errors an operator can fix are raised as `OpsError` with a sentence that says what to do next.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import orjson


class OpsError(RuntimeError):
    """Something the operator can fix; the message says how."""


class NotFound(OpsError):
    pass


@asynccontextmanager
async def database(dsn: str, *, decode_jsonb: bool = True) -> AsyncIterator[asyncpg.Connection]:
    """One connection (jsonb decoded to Python values unless told not to: the store's writers
    send JSON text); connection and schema problems become OpsError."""
    try:
        conn = await asyncpg.connect(dsn, timeout=10)
    except (ValueError, asyncpg.InterfaceError) as exc:  # not a DSN asyncpg can read
        raise OpsError(
            f"HUB_DATABASE_URL is not a usable Postgres address ({exc}); "
            "write it like postgresql://user:password@host:5432/dbname"
        ) from exc
    except (TimeoutError, OSError, asyncpg.PostgresError) as exc:
        raise OpsError(
            f"cannot reach Postgres ({type(exc).__name__}: {exc}); check HUB_DATABASE_URL and that the server is up"
        ) from exc
    try:
        if decode_jsonb:
            await conn.set_type_codec(
                "jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog"
            )
        yield conn
    except asyncpg.UndefinedTableError as exc:
        raise OpsError(f"the database has no hub tables ({exc}); run `hub migrate` first") from exc
    finally:
        await conn.close(timeout=5)
