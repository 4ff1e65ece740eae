"""Silences as the ops team manages them: create one (a matcher, an author, a comment, an end),
expire it early, list them with their age and how many alerts each held back. What a silence does
to an alert is decided in hub/core/silences.py and applied by hub/store/writes.write_alerts.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg

from hub.core.silences import MATCHER_FIELDS, Matcher
from hub.ops.db import NotFound, OpsError
from hub.ops.tasks import person

LONGEST = timedelta(days=30)  # a silence is a pause, not a rule: longer ones belong in the rules file

SILENCE_COLUMNS = """
s.id, s.queue, s.kind, s.department, s.carrier_id, s.customer_id, s.shipment_id, s.author, s.comment,
s.created_at, s.ends_at, s.expired_by, now() AS now
"""
INSERT_SILENCE = f"""
INSERT INTO silences AS s (queue, kind, department, carrier_id, customer_id, shipment_id, author, comment, ends_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
RETURNING {SILENCE_COLUMNS}, 0::bigint AS held_back
"""
# Ends it now, if it has not ended yet; the row stays (nothing is deleted).
EXPIRE_SILENCE = f"""
UPDATE silences AS s SET ends_at = now(), expired_by = $2
WHERE s.id = $1 AND s.ends_at > now()
RETURNING {SILENCE_COLUMNS}, (SELECT count(*) FROM outbox o WHERE o.silenced_by = s.id) AS held_back
"""
SELECT_SILENCE = f"""
SELECT {SILENCE_COLUMNS}, (SELECT count(*) FROM outbox o WHERE o.silenced_by = s.id) AS held_back
FROM silences s WHERE s.id = $1
"""
# Active ones first (soonest to end first), then the most recently ended.
SELECT_SILENCES = f"""
SELECT {SILENCE_COLUMNS}, (SELECT count(*) FROM outbox o WHERE o.silenced_by = s.id) AS held_back
FROM silences s
WHERE s.ends_at > now() OR s.ends_at > now() - $2::interval
ORDER BY (s.ends_at > now()) DESC,
         CASE WHEN s.ends_at > now() THEN s.ends_at END ASC,
         s.ends_at DESC
LIMIT $1
"""


@dataclass(frozen=True)
class Silence:
    id: int
    matcher: Matcher
    author: str
    comment: str
    created_at: datetime
    ends_at: datetime
    expired_by: str | None
    held_back: int  # alerts it kept off their queue
    now: datetime  # the database's clock when read

    @property
    def active(self) -> bool:
        return self.ends_at > self.now

    @property
    def age(self) -> timedelta:
        return self.now - self.created_at

    @property
    def remaining(self) -> timedelta:
        return max(self.ends_at - self.now, timedelta(0))


def _silence(row: asyncpg.Record) -> Silence:
    return Silence(
        row["id"],
        Matcher(**{name: row[name] for name in MATCHER_FIELDS}),
        row["author"],
        row["comment"],
        row["created_at"],
        row["ends_at"],
        row["expired_by"],
        row["held_back"],
        row["now"],
    )


async def create_silence(
    conn: asyncpg.Connection, matcher: Matcher, author: str, comment: str, ends_at: datetime
) -> Silence:
    author = person(author, "author")
    comment = (comment or "").strip()
    if not comment:
        raise OpsError("a silence needs a comment that says why (e.g. 'carrier SF outage, ticket 4711')")
    now = await conn.fetchval("SELECT now()")
    if ends_at <= now:
        raise OpsError("a silence must end in the future")
    if ends_at - now > LONGEST:
        raise OpsError(f"a silence lasts at most {LONGEST.days} days; change the rules for anything longer")
    named = matcher.named()
    if not named:
        raise OpsError("a silence must name at least one matcher field")
    row = await conn.fetchrow(INSERT_SILENCE, *(named.get(name) for name in MATCHER_FIELDS), author, comment, ends_at)
    return _silence(row)


async def expire_silence(conn: asyncpg.Connection, silence_id: int, by: str) -> Silence:
    by = person(by)
    row = await conn.fetchrow(EXPIRE_SILENCE, silence_id, by)
    if row is None:
        existing = await conn.fetchrow(SELECT_SILENCE, silence_id)
        if existing is None:
            raise NotFound(f"no silence {silence_id}")
        raise OpsError(f"silence {silence_id} has already ended")
    return _silence(row)


async def list_silences(
    conn: asyncpg.Connection, limit: int = 100, ended_within: timedelta = timedelta(days=7)
) -> list[Silence]:
    return [_silence(r) for r in await conn.fetch(SELECT_SILENCES, limit, ended_within)]
