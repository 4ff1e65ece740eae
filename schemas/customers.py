"""The customer register row, as loaded from CSV by `hub customers import`."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from schemas.enums import CustomerTier, Language, NotificationChannel
from schemas.types import Id, ShortText

CSV_COLUMNS = ("customer_id", "name", "tier", "language", "preferred_channel", "email", "phone")


class Customer(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    customer_id: Id
    name: ShortText | None = None
    tier: CustomerTier = CustomerTier.STANDARD
    language: Language = Language.ZH
    preferred_channel: NotificationChannel = NotificationChannel.SMS
    email: ShortText | None = Field(None, description="Personal data")
    phone: ShortText | None = Field(None, description="Personal data")
