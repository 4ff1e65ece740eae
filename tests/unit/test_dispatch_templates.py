"""Every notice renders for every channel in both languages, with realistic values; a Chinese SMS
fits one UCS-2 segment (70 characters); the templates cannot reach into Python (sandbox)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
from jinja2.exceptions import SecurityError

from hub.core.outputs import render_notification
from hub.core.rules import load_rules
from hub.core.state import CustomerInfo
from hub.dispatch.outgoing import Outgoing
from hub.dispatch.templates import TemplateError, every_template, render
from schemas.enums import CustomerTier, Language, NotificationChannel, NotificationKind

RULES = load_rules()
UCS2_SEGMENT = 70
SHIPMENT = "SF1234567890123"  # a long real-world waybill number
REFERENCE = "3f9c2d1e-8b7a-5c4d-9e0f-1a2b3c4d5e6f"
ETA = datetime(2026, 12, 5, 18, 30, tzinfo=UTC)
NAMES = {Language.ZH: "上海华东物流有限公司", Language.EN: "Northwind Imports Ltd"}


def realistic(kind: str, channel: str, language: str) -> Outgoing:
    customer = CustomerInfo("C1", CustomerTier.KEY, Language(language), NotificationChannel(channel))
    notice = render_notification(
        NotificationKind(kind),
        customer,
        RULES,
        source_event_id="evt-1",
        shipment_id=SHIPMENT,
        order_id="O-2026-000123",
        reference=REFERENCE,
        eta=ETA,
        promise=ETA,
    )
    return Outgoing(
        notice.notification_id,
        kind,
        channel,
        language,
        notice.body,
        "C1",
        SHIPMENT,
        ETA,
        0,
        1,
        customer_name=NAMES[Language(language)],
    )


@pytest.mark.parametrize(("kind", "channel", "language"), every_template())
def test_every_template_renders_with_realistic_values(kind: str, channel: str, language: str):
    note = render(realistic(kind, channel, language))
    assert note.text.strip() and "{{" not in note.text and "{" not in note.body
    if channel == "email":
        assert note.subject.strip() and "\n" not in note.subject
        assert NAMES[Language(language)] in note.text


@pytest.mark.parametrize("kind", [k.value for k in NotificationKind])
def test_a_chinese_sms_fits_one_segment(kind: str):
    text = render(realistic(kind, "sms", "zh")).text
    assert len(text) <= UCS2_SEGMENT, f"{kind}: {len(text)} characters: {text}"


@pytest.mark.parametrize("kind", [k.value for k in NotificationKind])
def test_both_languages_differ(kind: str):
    zh, en = render(realistic(kind, "email", "zh")), render(realistic(kind, "email", "en"))
    assert zh.subject != en.subject or zh.text != en.text


def test_a_missing_translation_is_an_error_naming_the_template(tmp_path: Path):
    path = tmp_path / "templates.yaml"
    path.write_text('defaults:\n  sms: {zh: "{{ body }}"}\nkinds: {}\n', encoding="utf-8")
    with pytest.raises(TemplateError, match="no en template for delay by sms"):
        render(realistic("delay", "sms", "en"), path)


def test_a_template_cannot_reach_into_python(tmp_path: Path):
    path = tmp_path / "templates.yaml"
    path.write_text('defaults:\n  sms: {zh: "{{ body.__class__.__mro__ }}"}\nkinds: {}\n', encoding="utf-8")
    with pytest.raises(SecurityError):
        render(realistic("delay", "sms", "zh"), path)
