"""Register rejected records once (by source position and bytes) and queue them for the dead-letter topic."""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime

import asyncpg
import orjson

from hub.core.decoding import Record, Rejected
from hub.core.ids import stable_id
from hub.core.outcome import BatchOutcome
from hub.store import queries
from hub.store.rows import bytea, hex_headers, json_rows
from schemas.outbound import DeadLetterHeaders

log = logging.getLogger("hub.store")


def dead_letter_id(record: Record) -> tuple[str, bytes]:
    """Deterministic from the record's position and bytes: a redelivered bad record is registered once."""
    digest = hashlib.sha256(record.value or b"").digest()
    return stable_id("dead-letter", record.topic, str(record.partition), str(record.offset), digest.hex()), digest


async def register_dead_letters(
    conn: asyncpg.Connection, rejected: list[Rejected], topic: str, now: datetime, outcome: BatchOutcome
) -> None:
    if not rejected:
        return
    ids = [dead_letter_id(r.record) for r in rejected]
    rows = await conn.fetch(
        queries.INSERT_DEAD_LETTERS,
        json_rows(
            [
                {
                    "id": dead_id,
                    "source_topic": r.record.topic,
                    "source_partition": r.record.partition,
                    "source_offset": r.record.offset,
                    "value_hash": bytea(digest),
                    "reason": r.reason,
                    "error_class": r.error_class,
                    "message": r.message,
                    "key": bytea(r.record.key),
                    "value": bytea(r.record.value),
                    "headers": hex_headers(r.record.headers),
                }
                for (dead_id, digest), r in zip(ids, rejected, strict=True)
            ]
        ),
    )
    new = {str(r["id"]) for r in rows}
    fresh = [(i, r) for (i, _), r in zip(ids, rejected, strict=True) if i in new]
    for _, r in fresh:
        outcome.dead_lettered[r.reason.value] += 1
        outcome.dead_lettered_by_topic[r.record.topic] += 1
        log.debug(  # at INFO they are counted by reason in the 10 s summary (hub.observability.ActivityLog)
            "dead letter (%s) from %s[%d]@%d: %s",
            r.reason.value,
            r.record.topic,
            r.record.partition,
            r.record.offset,
            r.message,
            extra=_ids_of(r.record),
        )
    if not fresh:
        return
    await conn.execute(
        queries.INSERT_OUTBOX,
        json_rows(
            [
                {
                    "topic": topic,
                    "key": bytea(r.record.key),
                    "value": bytea(r.record.value),
                    "headers": hex_headers((*r.record.headers, *_headers(r, now))),
                    "message_id": dead_id,
                }
                for dead_id, r in fresh
            ]
        ),
    )
    await conn.execute(queries.NOTIFY_OUTBOX)


def _ids_of(record: Record) -> dict[str, str]:
    """event_id and shipment_id of a rejected record, when its JSON still names them (for JSON logs)."""
    try:
        document = orjson.loads(record.value or b"")
    except orjson.JSONDecodeError:
        return {}
    if not isinstance(document, dict):
        return {}
    return {k: v for k in ("event_id", "shipment_id") if isinstance(v := document.get(k), str) and len(v) <= 128}


def _headers(rejected: Rejected, now: datetime) -> list[tuple[str, bytes]]:
    return DeadLetterHeaders(
        reason=rejected.reason,
        error_class=rejected.error_class,
        message=rejected.message,
        topic=rejected.record.topic,
        partition=rejected.record.partition,
        offset=rejected.record.offset,
        timestamp=now,
    ).to_kafka()
