"""How the console's pages show times, durations and bytes (Jinja2 filters and globals).

Times are shown in HUB_TIMEZONE (the templates pass `zone`), as the desk reads them.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from hub.ops.shipments import gist as shipment_gist


def when(moment: datetime | None, zone: ZoneInfo | None = None) -> str:
    if moment is None:
        return "-"
    local = moment.astimezone(zone) if zone else moment
    return local.strftime("%Y-%m-%d %H:%M")


def when_seconds(moment: datetime | None, zone: ZoneInfo | None = None) -> str:
    if moment is None:
        return "-"
    local = moment.astimezone(zone) if zone else moment
    return local.strftime("%Y-%m-%d %H:%M:%S")


def duration(span: timedelta) -> str:
    """2d 3h, 3h 5m, 12m, 40s."""
    seconds = int(abs(span).total_seconds())
    if seconds < 60:
        return f"{seconds}s"
    minutes = seconds // 60
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    if days:
        return f"{days}d {hours}h"
    if hours:
        return f"{hours}h {minutes}m"
    return f"{minutes}m"


def pretty_json(value: Any) -> str:
    return orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode()


def visible(text: str | None) -> str:
    """Control characters (other than newline and tab) made visible, e.g. an escape byte as \\x1b."""
    if text is None:
        return ""
    return "".join(c if c in "\n\t" or (ord(c) >= 32 and ord(c) != 127) else f"\\x{ord(c):02x}" for c in text)


def selected(value: object, current: object) -> str:
    return "selected" if value == current else ""


FILTERS = {
    "when": when,
    "when_seconds": when_seconds,
    "duration": duration,
    "pretty_json": pretty_json,
    "visible": visible,
}
GLOBALS = {"selected": selected}


NOTES_SHOWN = 200  # characters of a contact's free-text notes in the timeline


def gist(payload: dict[str, Any]) -> str:
    return shipment_gist(payload, NOTES_SHOWN)


FILTERS["gist"] = gist
