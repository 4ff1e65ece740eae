"""A notification on its way out, with what its channel needs to know of the customer."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hub.core.webhooks import Secret


@dataclass(frozen=True)
class Outgoing:
    notification_id: str
    kind: str
    channel: str
    language: str
    body: str  # the notice as routing wrote it, in the customer's language
    customer_id: str
    shipment_id: str | None
    created_at: datetime
    attempts: int  # failed tries so far in the current schedule
    attempt_number: int  # of this try, over the notification's whole life
    customer_name: str | None = None
    email: str | None = field(default=None, repr=False)  # personal data: never in a repr or a log line
    phone: str | None = field(default=None, repr=False)
    webhook_url: str | None = None
    webhook_disabled: bool = False
    timezone: str | None = None
    quiet_hours: str | None = None
    secrets: tuple[Secret, ...] = field(default=(), repr=False)
    text: str = ""  # rendered for the channel by templates.py
    subject: str = ""  # e-mail only
    extra: dict[str, Any] = field(default_factory=dict)
    statement_period: str | None = None  # a monthly statement notice: the period of the statement it carries
    statement: bytes | None = field(default=None, repr=False)  # that stored statement (JSON), if stored
    pdf: bytes | None = field(default=None, repr=False)  # e-mail: the statement rendered, attached
