"""The customer register row, as loaded from CSV by `hub customers import`."""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

from schemas.enums import CreditRating, CustomerTier, Language, NotificationChannel
from schemas.types import Id, ShortText

REQUIRED_COLUMNS = ("customer_id",)
CSV_COLUMNS = ("customer_id", "name", "tier", "language", "preferred_channel", "email", "phone")
# contract 1.1: optional columns (webhook secrets are never imported: `hub customers webhook-secret`)
OPTIONAL_COLUMNS = ("webhook_url", "timezone", "quiet_hours", "credit_rating", "account_manager")
ALL_COLUMNS = CSV_COLUMNS + OPTIONAL_COLUMNS
_QUIET = re.compile(r"^([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d$")
# Reasonable, not RFC 5322: one @, no spaces or brackets, a dotted domain whose last label is letters
# (internationalised ones included). Rejects the usual garbage: a name, "n/a", a phone number, two addresses.
_EMAIL = re.compile(r"^[^\s@<>()\[\],;:\"]+@(?:[^\W_](?:[\w-]*[^\W_])?\.)+[^\W\d_]{2,}$")
# Digits, an optional leading +, and spaces, dashes, dots or parentheses between them: +86 138 0013 8000,
# (021) 5555-0199, 138-0013-8000.
_PHONE = re.compile(r"^\+?[\d\s().-]+$")
PHONE_DIGITS = (7, 20)


class Customer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    customer_id: Id
    name: ShortText | None = None
    tier: CustomerTier = CustomerTier.STANDARD
    language: Language = Language.ZH
    preferred_channel: NotificationChannel = NotificationChannel.SMS
    email: ShortText | None = Field(None, description="Personal data")
    phone: ShortText | None = Field(None, description="Personal data")
    webhook_url: ShortText | None = Field(None, description="Where webhook notices go (https)")
    timezone: ShortText | None = Field(None, description="The customer's zone for quiet hours (IANA name)")
    quiet_hours: ShortText | None = Field(None, description="HH:MM-HH:MM in the customer's zone, e.g. 22:00-08:00")
    credit_rating: CreditRating | None = None
    account_manager: ShortText | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, name: str | None) -> str | None:
        if name is None:
            return None
        try:
            ZoneInfo(name)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown time zone {name!r}; use an IANA name such as Asia/Shanghai") from None
        return name

    @field_validator("quiet_hours")
    @classmethod
    def _window(cls, text: str | None) -> str | None:
        if text is not None and not _QUIET.match(text):
            raise ValueError("write quiet hours as HH:MM-HH:MM, e.g. 22:00-08:00")
        return text

    @field_validator("email")
    @classmethod
    def _email(cls, address: str | None) -> str | None:
        if address is not None and not _EMAIL.match(address):
            raise ValueError("not an e-mail address like name@example.com (one address, no spaces)")
        return address

    @field_validator("phone")
    @classmethod
    def _phone(cls, number: str | None) -> str | None:
        if number is None:
            return None
        digits = sum(c.isdigit() for c in number)
        low, high = PHONE_DIGITS
        if not _PHONE.match(number) or not low <= digits <= high:
            raise ValueError(
                f"not a phone number: {low}-{high} digits, an optional leading +, and spaces, dashes, dots "
                "or parentheses between them (e.g. +86 138 0013 8000)"
            )
        return number

    @field_validator("webhook_url")
    @classmethod
    def _url(cls, url: str | None) -> str | None:
        if url is not None and not url.lower().startswith(("https://", "http://")):
            raise ValueError("a webhook URL starts with https:// (or http:// for HUB_WEBHOOK_INSECURE_HOSTS)")
        return url
