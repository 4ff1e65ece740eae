"""Constrained field types shared by every message of the contract."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, BeforeValidator, Field, PlainSerializer, StringConstraints

# Ids: 1-64 characters, no control characters (C0, DEL, C1).
_NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]+$"
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_NO_CONTROL)]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_NO_CONTROL)]
Reference = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_NO_CONTROL)]
SourceName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_NO_CONTROL)]
ShortText = Annotated[str, StringConstraints(max_length=1_000)]
Notes = Annotated[str, StringConstraints(max_length=10_000)]


def _require_text(value: Any) -> Any:
    # An epoch number would otherwise become an aware datetime; the contract wants RFC 3339 text.
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        raise ValueError("timestamp must be an RFC 3339 string with an offset, e.g. 2026-11-27T09:30:00+08:00")
    return value


def _plausible(value: datetime) -> datetime:
    # Keeps due-time arithmetic (+72 h) far from datetime's limits.
    if not 1970 <= value.year <= 2999:
        raise ValueError("timestamp year must be between 1970 and 2999")
    return value


def _utc_text(value: datetime) -> str:
    # One spelling per instant: re-published events compare equal whatever offset they used.
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


Timestamp = Annotated[
    AwareDatetime,
    BeforeValidator(_require_text),
    AfterValidator(_plausible),
    PlainSerializer(_utc_text, return_type=str, when_used="json"),
]

Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]


def _printable(text: str) -> str:
    # A key is echoed in the error message, which Postgres stores as text: no NUL, no control characters.
    return "".join(ch if ch.isprintable() else f"\\u{ord(ch):04x}" for ch in text)


def find_nul(value: Any, path: str = "") -> str | None:
    """Path of the first string (key or value) containing U+0000, or None.

    Postgres refuses NUL in text and jsonb, so such a message is invalid anywhere in it.
    """
    if isinstance(value, str):
        return path or "(value)" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            shown = _printable(str(key))
            here = f"{path}.{shown}" if path else shown
            if "\x00" in str(key):
                return here
            found = find_nul(item, here)
            if found:
                return found
    elif isinstance(value, list):
        for index, item in enumerate(value):
            found = find_nul(item, f"{path}[{index}]")
            if found:
                return found
    return None
