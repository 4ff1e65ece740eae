"""Turn one Kafka record into a validated event or a dead-letter verdict.

Per record, so one bad record never fails its batch. The hash compares payloads by their
validated content: key order, spacing, explicit nulls and timestamp offsets do not matter.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
from pydantic import BaseModel, ValidationError

from schemas.enums import DeadLetterReason
from schemas.inbound import CONTRACT_VERSION, NUL_CHECKED, InboundEvent

MAX_ERROR_MESSAGE = 1_000
MAX_DEPTH = 64  # nesting of objects and arrays: deeper is no business event, and serialisers give up
_NUL_CHECKED = {NUL_CHECKED: True}  # validation context; pydantic only reads it


# Per-record values are NamedTuples: immutable like frozen dataclasses, at a fifth of their
# construction cost, which the hub pays several times per event.


class Record(NamedTuple):
    """The parts of a Kafka record the hub uses; the original bytes stay untouched."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class Accepted(NamedTuple):
    record: Record
    event: InboundEvent
    raw_hash: bytes  # sha256 of the bytes as received: the cheap first test for a redelivery

    @property
    def payload_text(self) -> str:
        """The value as received, as text (checked to be UTF-8 when decoded). Made when written,
        not kept: a batch in flight would otherwise hold every payload twice."""
        value = self.record.value
        assert value is not None  # a record without a value is never accepted
        return value.decode("utf-8")


class Rejected(NamedTuple):
    record: Record
    reason: DeadLetterReason
    error_class: str
    message: str


def decode_record(record: Record, model: type[InboundEvent], max_bytes: int) -> Accepted | Rejected:
    value = record.value
    if value is None:
        return Rejected(record, DeadLetterReason.INVALID_JSON, "EmptyValue", "the record has no value (tombstone)")
    if len(value) > max_bytes:
        return Rejected(
            record,
            DeadLetterReason.OVERSIZED,
            "OversizedMessage",
            f"value is {len(value):,} bytes; the limit is {max_bytes:,} (HUB_MAX_MESSAGE_BYTES)",
        )
    if not value.isascii():  # ASCII is UTF-8: only other bytes need the full check
        try:
            value.decode("utf-8")
        except UnicodeDecodeError as exc:
            return Rejected(
                record,
                DeadLetterReason.UNDECODABLE,
                "UnicodeDecodeError",
                f"value is not UTF-8: invalid byte at position {exc.start}",
            )
    try:
        document = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        return Rejected(record, DeadLetterReason.INVALID_JSON, "JSONDecodeError", f"value is not JSON: {exc}")
    if value.count(b"{") + value.count(b"[") > MAX_DEPTH and _depth(document) > MAX_DEPTH:
        return Rejected(
            record,
            DeadLetterReason.VALIDATION_ERROR,
            "TooDeep",
            f"value nests objects and arrays more than {MAX_DEPTH} levels deep",
        )
    version = document.get("schema_version") if isinstance(document, dict) else None
    if isinstance(version, int) and not isinstance(version, bool) and version != CONTRACT_VERSION:
        return Rejected(
            record,
            DeadLetterReason.UNSUPPORTED_VERSION,
            "UnsupportedVersion",
            f"schema_version {version} is not supported; this hub reads version {CONTRACT_VERSION}",
        )
    # Raw control characters are invalid JSON, so a NUL can only arrive as a \u0000 escape.
    context = _NUL_CHECKED if b"\\u0000" not in value else None
    try:
        event = model.model_validate(document, context=context)
    except ValidationError as exc:
        return Rejected(record, DeadLetterReason.VALIDATION_ERROR, "ValidationError", describe_validation_error(exc))
    return Accepted(record, event, hashlib.sha256(value).digest())


def check_value(value: bytes, model: type[InboundEvent], max_bytes: int, topic: str = "") -> Accepted | Rejected:
    """The verdict the hub would give `value` on `model`'s topic, for bytes it has not consumed:
    `hub publish`, `hub dlq replay --file` and the typed feeds check with this, never on their own."""
    return decode_record(Record(topic, -1, -1, None, value), model, max_bytes)


def _depth(value: Any) -> int:
    """Nesting depth of parsed JSON, iteratively (the document may be too deep to recurse on)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict):
            node = node.values()
        elif not isinstance(node, list):
            continue
        deepest = max(deepest, level)
        if deepest > MAX_DEPTH:
            return deepest
        stack.extend((child, level + 1) for child in node)
    return deepest


def describe_validation_error(exc: ValidationError) -> str:
    """Readable and free of personal data: field paths and rule texts, never input values."""
    parts = []
    for error in exc.errors(include_url=False, include_input=False, include_context=False):
        where = ".".join(str(p) for p in error["loc"]) or "(message)"
        parts.append(f"{where}: {error['msg']}")
    text = f"{exc.title}: " + "; ".join(parts)
    return text if len(text) <= MAX_ERROR_MESSAGE else text[: MAX_ERROR_MESSAGE - 1] + "…"


def payload_hash(event: InboundEvent) -> bytes:
    """sha256 of the validated content: keys sorted, absent and null alike, instants in UTC."""
    return hashlib.sha256(orjson.dumps(_content(event), default=_content, option=orjson.OPT_SORT_KEYS)).digest()


def _content(model: BaseModel) -> dict[str, Any]:
    # orjson calls this back for nested models; their datetimes are normalised here too.
    fields = {**model.__dict__, **(model.__pydantic_extra__ or {})}
    return {k: (v.astimezone(UTC) if isinstance(v, datetime) else v) for k, v in fields.items() if v is not None}
