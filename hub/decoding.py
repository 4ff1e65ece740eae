"""Turn one Kafka record into a validated event or a dead-letter verdict.

Per record, so one bad record never fails its batch. The hash compares payloads by their
validated content: key order, spacing, explicit nulls and timestamp offsets do not matter.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import Enum
from typing import Any

import orjson
from pydantic import ValidationError

from schemas.enums import DeadLetterReason
from schemas.inbound import CONTRACT_VERSION, InboundEvent

MAX_ERROR_MESSAGE = 1_000


@dataclass(frozen=True, slots=True)
class Record:
    """The parts of a Kafka record the hub uses; the original bytes stay untouched."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass(frozen=True, slots=True)
class Accepted:
    record: Record
    event: InboundEvent
    payload_text: str
    payload_hash: bytes


@dataclass(frozen=True, slots=True)
class Rejected:
    record: Record
    reason: DeadLetterReason
    error_class: str
    message: str


def decode_record(record: Record, model: type[InboundEvent], max_bytes: int) -> Accepted | Rejected:
    value = record.value
    if value is None:
        return Rejected(record, DeadLetterReason.INVALID_JSON, "EmptyValue", "the record has no value (tombstone)")
    if len(value) > max_bytes:
        return Rejected(record, DeadLetterReason.OVERSIZED, "OversizedMessage",
                        f"value is {len(value):,} bytes; the limit is {max_bytes:,} (HUB_MAX_MESSAGE_BYTES)")
    try:
        text = value.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejected(record, DeadLetterReason.UNDECODABLE, "UnicodeDecodeError",
                        f"value is not UTF-8: invalid byte at position {exc.start}")
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Rejected(record, DeadLetterReason.INVALID_JSON, "JSONDecodeError", f"value is not JSON: {exc}")
    version = document.get("schema_version") if isinstance(document, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version != CONTRACT_VERSION:
        return Rejected(record, DeadLetterReason.UNSUPPORTED_VERSION, "UnsupportedVersion",
                        f"schema_version {version} is not supported; this hub reads version {CONTRACT_VERSION}")
    try:
        event = model.model_validate(document)
    except ValidationError as exc:
        return Rejected(record, DeadLetterReason.VALIDATION_ERROR, "ValidationError", describe_validation_error(exc))
    return Accepted(record, event, text, payload_hash(event))


def describe_validation_error(exc: ValidationError) -> str:
    """Readable and free of personal data: field paths and rule texts, never input values."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(p) for p in error["loc"]) or "(message)"
        parts.append(f"{where}: {error['msg']}")
    text = f"{exc.title}: " + "; ".join(parts)
    return text if len(text) <= MAX_ERROR_MESSAGE else text[: MAX_ERROR_MESSAGE - 1] + "…"


def payload_hash(event: InboundEvent) -> bytes:
    canonical = _canonical(event.model_dump(exclude_none=True))
    return hashlib.sha256(orjson.dumps(canonical, option=orjson.OPT_SORT_KEYS)).digest()


def _canonical(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _canonical(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_canonical(v) for v in value]
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Enum):
        return value.value
    return value
