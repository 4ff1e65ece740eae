"""Render a notice for its channel: templates.yaml, sandboxed Jinja2 (the templates are data an
operator edits; the sandbox keeps them from reaching into Python)."""

from __future__ import annotations

from dataclasses import replace
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from jinja2 import StrictUndefined, Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

from hub.dispatch.outgoing import Outgoing
from schemas.enums import Language, NotificationChannel, NotificationKind

TEMPLATES_FILE = Path(__file__).with_name("templates.yaml")
_ENV = ImmutableSandboxedEnvironment(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=False)


class TemplateError(ValueError):
    """A template that is missing or does not render; the message names kind, channel and language."""


def _pick(table: dict[str, Any], kind: str, channel: str) -> Any:
    return table.get("kinds", {}).get(kind, {}).get(channel) or table["defaults"][channel]


@cache
def _compiled(path: Path, kind: str, channel: str, part: str, language: str) -> Template:
    table = yaml.safe_load(path.read_text(encoding="utf-8"))
    entry = _pick(table, kind, channel)
    if channel == NotificationChannel.EMAIL.value:
        entry = entry.get(part) or _pick({"defaults": table["defaults"], "kinds": {}}, kind, channel)[part]
    text = entry.get(language) if isinstance(entry, dict) else None
    if not isinstance(text, str):
        raise TemplateError(f"{path}: no {language} template for {kind} by {channel}" + (f" ({part})" if part else ""))
    return _ENV.from_string(text)


def render(note: Outgoing, path: Path = TEMPLATES_FILE) -> Outgoing:
    """`note` with its channel text (and subject, for e-mail) filled in."""
    values = {
        "body": note.body,
        "shipment_id": note.shipment_id,
        "customer_name": note.customer_name,
        "notification_id": note.notification_id,
        "kind": note.kind,
    }
    text_part = "text" if note.channel == NotificationChannel.EMAIL.value else ""
    text = _compiled(path, note.kind, note.channel, text_part, note.language).render(values)
    subject = ""
    if note.channel == NotificationChannel.EMAIL.value:
        subject = _compiled(path, note.kind, note.channel, "subject", note.language).render(values)
    return replace(note, text=text, subject=subject)


def every_template() -> list[tuple[str, str, str]]:
    """(kind, channel, language) of every template a notice can need."""
    return [(k.value, c.value, lang.value) for k in NotificationKind for c in NotificationChannel for lang in Language]
