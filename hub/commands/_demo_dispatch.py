"""The demo's notification dispatch: a local SMTP sink and an HTTP receiver (webhooks, the SMS and
WeChat gateways), some customers switched to webhooks, dispatch on, and what reached whom."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime

import asyncpg
from rich.table import Table

from hub.config import Settings
from hub.dev.receivers import HttpReceiver, SmtpSink
from hub.ops.customers import create_webhook_secret
from schemas.customers import Customer
from schemas.enums import NotificationChannel

WEBHOOK_EVERY = 8  # one customer in eight receives its notices by webhook in the demo
STATUSES = ("sent", "pending", "suppressed", "failed")

BY_CHANNEL = """
SELECT channel, status, count(*) AS n FROM customer_notifications WHERE created_at >= $1 GROUP BY 1, 2
"""
DUE_NOW = "SELECT count(*) FROM customer_notifications WHERE status = 'pending' AND next_attempt_at <= now()"


@dataclass
class LocalReceivers:
    smtp: SmtpSink = field(default_factory=SmtpSink)
    http: HttpReceiver = field(default_factory=HttpReceiver)

    async def start(self) -> None:
        self.smtp.start()
        await self.http.start()

    async def stop(self) -> None:
        self.smtp.stop()
        await self.http.stop()

    def settings(self, s: Settings) -> Settings:
        """Dispatch on, every channel pointed at these receivers."""
        return s.model_copy(
            update={
                "dispatch_enabled": True,
                "smtp_host": "127.0.0.1",
                "smtp_port": self.smtp.port,
                "smtp_starttls": False,
                "sms_gateway_url": self.http.url("/sms"),
                "wechat_gateway_url": self.http.url("/wechat"),
                "webhook_insecure_hosts": "127.0.0.1",
            }
        )

    def received(self) -> dict[str, int]:
        """What each receiver got: e-mails, webhook calls, SMS and WeChat gateway calls."""
        return {
            "email": len(self.smtp.received),
            "webhook": sum(r.path.startswith("/hooks/") for r in self.http.received),
            "sms": len(self.http.to("/sms")),
            "wechat": len(self.http.to("/wechat")),
        }


def with_webhooks(register: list[Customer], receivers: LocalReceivers) -> list[Customer]:
    return [
        c.model_copy(
            update={
                "preferred_channel": NotificationChannel.WEBHOOK,
                "webhook_url": receivers.http.url(f"/hooks/{c.customer_id}"),
            }
        )
        if i % WEBHOOK_EVERY == 0
        else c
        for i, c in enumerate(register)
    ]


async def create_secrets(conn: asyncpg.Connection, register: list[Customer]) -> int:
    hooked = [c for c in register if c.preferred_channel is NotificationChannel.WEBHOOK]
    for customer in hooked:
        await create_webhook_secret(conn, customer.customer_id, rotate=False)
    return len(hooked)


async def settle(conn: asyncpg.Connection, timeout_s: float) -> bool:
    """Until no notice is due any more (a call-back waits for the call centre; quiet hours for the morning)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if await conn.fetchval(DUE_NOW) == 0:
            return True
        await asyncio.sleep(0.2)
    return False


async def by_channel(conn: asyncpg.Connection, since: datetime) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for row in await conn.fetch(BY_CHANNEL, since):
        out.setdefault(row["channel"], dict.fromkeys(STATUSES, 0))[row["status"]] = row["n"]
    return out


def table(counts: dict[str, dict[str, int]], received: dict[str, int]) -> Table:
    out = Table(title="notifications per channel (dispatch on: local SMTP sink and HTTP receiver)")
    for name in ("channel", "sent", "waiting", "suppressed", "failed", "received"):
        out.add_column(name, justify="left" if name == "channel" else "right")
    for channel in sorted(counts):
        row = counts[channel]
        out.add_row(
            channel,
            *(f"{row.get(status, 0):,}" for status in STATUSES),
            f"{received[channel]:,}" if channel in received else "call-backs",
        )
    return out
