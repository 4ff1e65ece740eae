"""E-mail over SMTP (aiosmtplib): STARTTLS and login as configured, the notice in the customer's
language, `Message-ID: <notification_id@domain>` so a receiver sees a re-sent copy as the same mail."""

from __future__ import annotations

import email.utils
from email.message import EmailMessage

import aiosmtplib

from hub.config import Settings
from hub.core.dispatch import TryResult, classify_smtp, refused, unreachable
from hub.dispatch.outgoing import Outgoing


class EmailChannel:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.domain = settings.smtp_from.rpartition("@")[2] or "logistics-hub.invalid"

    @property
    def endpoint(self) -> str:
        return f"smtp://{self.settings.smtp_host}:{self.settings.smtp_port}"

    def message(self, note: Outgoing) -> EmailMessage:
        msg = EmailMessage()
        msg["From"] = self.settings.smtp_from
        msg["To"] = note.email or ""
        msg["Subject"] = note.subject
        msg["Message-ID"] = f"<{note.notification_id}@{self.domain}>"
        msg["Date"] = email.utils.format_datetime(note.created_at)
        msg["Content-Language"] = "zh-CN" if note.language == "zh" else "en"
        msg.set_content(note.text, charset="utf-8")
        if note.pdf is not None:
            name = f"statement-{note.customer_id}-{note.statement_period}.pdf"
            msg.add_attachment(note.pdf, maintype="application", subtype="pdf", filename=name)
        return msg

    async def send(self, note: Outgoing) -> TryResult:
        s = self.settings
        if not s.smtp_host:
            return refused("e-mail is not configured: set HUB_SMTP_HOST (and HUB_SMTP_FROM)")
        if not note.email:
            return refused("the customer has no e-mail address in the register")
        try:
            errors, response = await aiosmtplib.send(
                self.message(note),
                hostname=s.smtp_host,
                port=s.smtp_port,
                start_tls=s.smtp_starttls or None,
                username=s.smtp_username,
                password=s.smtp_password.get_secret_value() if s.smtp_password else None,
                timeout=s.webhook_timeout_s,
            )
        except aiosmtplib.SMTPResponseException as exc:  # refused recipients, a 4xx or 5xx reply
            return classify_smtp(exc.code, exc.message)
        except (TimeoutError, aiosmtplib.SMTPException, OSError) as exc:
            return unreachable(f"SMTP relay {self.endpoint}: {type(exc).__name__}: {exc}"[:300])
        if errors:  # a recipient refused while others were accepted: with one recipient, that one
            code, text = next(iter(errors.values()))
            return classify_smtp(code, text)
        return classify_smtp(250, response[:200])
