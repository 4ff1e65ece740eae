"""The dead-letter register: list, show (bytes made readable) and replay to the source topic."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

import asyncpg
import orjson
from aiokafka.errors import KafkaError

from hub.config import Settings
from hub.kafka import KafkaSetupError, start_producer
from hub.ops.db import NotFound, OpsError

DEAD_LETTER_COLUMNS = """
id, reason, error_class, message, source_topic, source_partition, source_offset, key,
octet_length(value) AS value_size, created_at, replayed_at
"""

SELECT_DEAD_LETTERS = f"""
SELECT {DEAD_LETTER_COLUMNS} FROM dead_letters
WHERE ($1::text IS NULL OR reason = $1) AND ($2::text IS NULL OR source_topic = $2)
ORDER BY created_at DESC, id
LIMIT $3
"""

SELECT_DEAD_LETTER = f"SELECT {DEAD_LETTER_COLUMNS}, value, headers FROM dead_letters WHERE id = $1"

MARK_REPLAYED = "UPDATE dead_letters SET replayed_at = now() WHERE id = $1 RETURNING replayed_at"


@dataclass(frozen=True)
class DeadLetter:
    id: str
    reason: str
    error_class: str
    message: str
    source_topic: str
    source_partition: int
    source_offset: int
    key: bytes | None
    value_size: int | None  # None: the record had no value (a tombstone)
    created_at: datetime
    replayed_at: datetime | None
    value: bytes | None = None  # loaded by get_dead_letter only
    headers: tuple[tuple[str, bytes], ...] = ()  # the original record's headers, likewise


@dataclass(frozen=True)
class ReadableBytes:
    text: str
    encoding: str  # 'utf-8' or 'hex'
    shown_bytes: int
    total_bytes: int

    @property
    def truncated(self) -> bool:
        return self.shown_bytes < self.total_bytes


def readable(value: bytes | None, limit: int = 4096) -> ReadableBytes | None:
    """UTF-8 text if it is, else hex; at most `limit` bytes of it."""
    if value is None:
        return None
    head = value[:limit]
    try:
        text = head.decode("utf-8")
        encoding = "utf-8"
    except UnicodeDecodeError as exc:
        if exc.start >= len(head) - 3 and len(value) > limit:  # a character cut by the limit
            text, encoding = head[: exc.start].decode("utf-8"), "utf-8"
            head = head[: exc.start]
        else:
            text, encoding = head.hex(), "hex"
    return ReadableBytes(text, encoding, len(head), len(value))


def _dead_letter(row: asyncpg.Record) -> DeadLetter:
    values = dict(row)
    values["id"] = str(values["id"])
    if "headers" in values:
        raw = values["headers"]
        pairs = orjson.loads(raw) if isinstance(raw, (str, bytes)) else raw  # with or without a jsonb codec
        values["headers"] = tuple((k, bytes.fromhex(v)) for k, v in pairs)
    return DeadLetter(**values)


def _dead_letter_uuid(dead_letter_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(dead_letter_id)
    except ValueError:
        raise NotFound(f"{dead_letter_id!r} is not a dead-letter id (a UUID); find it with `hub dlq list`") from None


async def list_dead_letters(
    conn: asyncpg.Connection, reason: str | None = None, topic: str | None = None, limit: int = 50
) -> list[DeadLetter]:
    return [_dead_letter(r) for r in await conn.fetch(SELECT_DEAD_LETTERS, reason, topic, limit)]


async def get_dead_letter(conn: asyncpg.Connection, dead_letter_id: str) -> DeadLetter:
    row = await conn.fetchrow(SELECT_DEAD_LETTER, _dead_letter_uuid(dead_letter_id))
    if row is None:
        raise NotFound(f"no dead letter {dead_letter_id}; find the id with `hub dlq list`")
    return _dead_letter(row)


@dataclass(frozen=True)
class Replayed:
    dead_letter_id: str
    topic: str
    partition: int
    offset: int
    replayed_at: datetime


async def replay_dead_letter(
    conn: asyncpg.Connection, settings: Settings, letter: DeadLetter, value: bytes, key: bytes | None
) -> Replayed:
    """Publish `value` to the letter's source topic, then stamp the letter (it is never deleted).

    Published first: if stamping fails the message is out anyway, and publishing it again is
    harmless (the hub drops a re-published event_id).
    """
    try:
        producer = await start_producer(settings, "starting the producer for the replay")
    except KafkaSetupError as exc:
        raise OpsError(f"{exc}; the dead letter is unchanged") from exc
    try:
        meta = await producer.send_and_wait(
            letter.source_topic, value=value, key=key, headers=list(letter.headers) or None
        )
    except KafkaError as exc:
        raise OpsError(
            f"could not publish to {letter.source_topic} ({type(exc).__name__}: {exc}); "
            "check HUB_KAFKA_BOOTSTRAP and that the topic exists; the dead letter is unchanged"
        ) from exc
    finally:
        await producer.stop()
    replayed_at = await conn.fetchval(MARK_REPLAYED, uuid.UUID(letter.id))
    return Replayed(letter.id, meta.topic, meta.partition, meta.offset, replayed_at)
