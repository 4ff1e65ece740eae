"""Constrained field types shared by every message of the contract.

Each type carries its JSON Schema as well as its validation: what the hub enforces in Python is
also what the exported schema says (`SchemaOnly` adjusts the schema, never the validation).
Schema patterns avoid a trailing `$` where they can: Python's and Java's regex engines let `$`
match before a final newline, so "C1\\n" would pass `^[^\\x00-\\x1f]+$` there while the hub refuses
it. "Must not contain" (`not: {pattern}`) reads the same in every engine.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BeforeValidator,
    Field,
    GetJsonSchemaHandler,
    PlainSerializer,
    StringConstraints,
    TypeAdapter,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema
from typing_extensions import TypeAliasType


class SchemaOnly:
    """Annotation that changes a type's JSON Schema only, never its validation: the schema of the
    type `like` instead of its own, without the keywords in `drop`, plus `extra`."""

    def __init__(self, *, like: Any = None, drop: tuple[str, ...] = (), **extra: Any) -> None:
        self.like, self.drop, self.extra = like, drop, extra

    def __get_pydantic_json_schema__(self, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler(core_schema if self.like is None else TypeAdapter(self.like).core_schema)
        for keyword in self.drop:
            schema.pop(keyword, None)
        schema.update(self.extra)
        return schema


# Regexes as JSON Schema (ECMA-262) and Python both read them.
CONTROL_CHARACTERS = r"[\x00-\x1f\x7f-\x9f]"  # C0, DEL, C1
NUL = r"\x00"
NO_CONTROL_CHARACTERS: dict[str, Any] = {"not": {"pattern": CONTROL_CHARACTERS}}
NO_NUL: dict[str, Any] = {"not": {"pattern": NUL}}

# Ids: 1-64 characters, no control characters (C0, DEL, C1).
_NO_CONTROL = r"^[^\x00-\x1f\x7f-\x9f]+$"  # the validator's spelling (pydantic's regex engine)
_ID_SCHEMA = SchemaOnly(drop=("pattern",), **NO_CONTROL_CHARACTERS)
Id = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=_NO_CONTROL), _ID_SCHEMA]
EventId = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_NO_CONTROL), _ID_SCHEMA]
Reference = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_NO_CONTROL), _ID_SCHEMA]
SourceName = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=_NO_CONTROL), _ID_SCHEMA]
# Free text: NUL is refused for the whole message (InboundEvent._no_nul_anywhere); the schema says so per field.
ShortText = Annotated[str, StringConstraints(max_length=1_000), SchemaOnly(**NO_NUL)]
Notes = Annotated[str, StringConstraints(max_length=10_000), SchemaOnly(**NO_NUL)]

# RFC 3339 date-time with an offset, as the hub reads it: years 1970-2999, real calendar days
# (leap years included), hours 00-23, an offset of Z or +-hh:mm. The hub's parser tolerates a few
# more spellings; the contract, and this pattern, are RFC 3339.
_YEAR = "(?:19[7-9][0-9]|2[0-9]{3})"
_LEAP_YEAR = "(?:19(?:7[26]|8[048]|9[26])|2[0-9](?:0[48]|[2468][048]|[13579][26])|2[048]00)"
_MONTH_DAY = (
    "(?:(?:0[13578]|1[02])-(?:0[1-9]|[12][0-9]|3[01])"
    "|(?:0[469]|11)-(?:0[1-9]|[12][0-9]|30)"
    "|02-(?:0[1-9]|1[0-9]|2[0-8]))"
)
_DATE = f"(?:{_YEAR}-{_MONTH_DAY}|{_LEAP_YEAR}-02-29)"
_TIME = "[Tt](?:[01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](?:[.][0-9]+)?"
_OFFSET = "(?:[Zz]|[+-](?:[01][0-9]|2[0-3]):[0-5][0-9])"
TIMESTAMP_PATTERN = f"^{_DATE}{_TIME}{_OFFSET}$"
# What the hub writes: RFC 3339, any year, the offset it holds (Z for UTC).
WRITTEN_TIMESTAMP_PATTERN = (
    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(?:[.][0-9]+)?(?:Z|[+-][0-9]{2}:[0-9]{2})$"
)
TIMESTAMP_EXAMPLE = "2026-11-27T09:30:00+08:00"


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
    SchemaOnly(format="date-time", pattern=TIMESTAMP_PATTERN, **NO_CONTROL_CHARACTERS),
]
# A moment the hub writes (alerts, dead-letter headers): validated as any datetime, as before.
WrittenTimestamp = Annotated[datetime, SchemaOnly(format="date-time", pattern=WRITTEN_TIMESTAMP_PATTERN)]

Latitude = Annotated[float, Field(ge=-90, le=90)]
Longitude = Annotated[float, Field(ge=-180, le=180)]

# Any JSON value without NUL in a string or a key: what unknown fields and free-form objects may hold.
# Schema only: the hub checks NUL once per message (InboundEvent._no_nul_anywhere), not per value.
NulFreeText = Annotated[str, SchemaOnly(**NO_NUL)]
NulFreeValue = TypeAliasType(
    "NulFreeValue",
    Annotated[
        "bool | int | float | NulFreeText | list[NulFreeValue] | dict[NulFreeText, NulFreeValue] | None",
        Field(description="Any JSON value in which no string and no key contains NUL (U+0000)."),
    ],
)
FreeForm = Annotated[dict[str, Any], SchemaOnly(like=dict[NulFreeText, NulFreeValue])]


def open_object_schema(core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
    """The JSON Schema of a model that keeps unknown fields: they may hold anything but NUL."""
    schema = handler(core_schema)
    target = handler.resolve_ref_schema(schema)
    target["propertyNames"] = {"type": "string", **NO_NUL}
    target["additionalProperties"] = handler(TypeAdapter(NulFreeValue).core_schema)
    return schema


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
