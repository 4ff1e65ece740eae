"""The dispatch scenarios' receivers: an SMTP server and an HTTP server (webhook endpoints and the
SMS gateway) on 127.0.0.1 that record every delivery *before* answering, so a hub killed while it
waits for the answer leaves a receipt it never recorded (the copies the kill scenario counts).

hub/dev/receivers.py has the same peers for the demo and the tests; these add what a fault drill
needs: answers per path for the whole run (an endpoint that is down), slow answers, a server
stopped and started again on its port, and the webhook signature checked on every request with
the independent `standardwebhooks` library.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import orjson
from aiosmtpd.controller import Controller
from standardwebhooks import Webhook, WebhookVerificationError

SMS_PATH = "/sms"


@dataclass
class Receipt:
    """One delivery as the receiver saw it."""

    at: datetime
    channel: str  # email, webhook, sms
    path: str  # the HTTP path, or the recipient address for e-mail
    notice_id: str | None  # the id it carries: webhook-id, Message-ID, idempotency_key
    body_id: str | None = None  # webhooks: the notification_id inside the body
    customer_id: str | None = None  # webhooks: the body's customer_id
    to: str | None = None  # e-mail: To; sms: the number
    kind: str | None = None
    verified: bool | None = None  # webhooks: the signature verified with the customer's secret
    answered: int = 0  # the status (HTTP) or code (SMTP) the receiver meant to answer

    @property
    def delivered(self) -> bool:
        """The receiver accepted it (a 2xx answer, SMTP 250)."""
        return 200 <= self.answered < 300


# --- HTTP ------------------------------------------------------------------------------------------------

Answer = Callable[[str], tuple[int, float]]  # path -> (status, seconds to wait before answering)


def always_ok(_path: str) -> tuple[int, float]:
    return 200, 0.0


@dataclass
class HttpPeer:
    answer: Answer = always_ok
    secrets: dict[str, list[str]] = field(default_factory=dict)  # path -> the secrets that may sign it
    receipts: list[Receipt] = field(default_factory=list)
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self) -> HttpPeer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 5)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ValueError, OSError):
            while True:
                request = await _read(reader)
                if request is None:
                    break
                path, headers, body = request
                status, delay = self.answer(path)
                self.receipts.append(self._receipt(path, headers, body, status))
                if delay:
                    await asyncio.sleep(delay)
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\n\r\n{{}}".encode())
                await writer.drain()
        writer.close()

    def _receipt(self, path: str, headers: dict[str, str], body: bytes, status: int) -> Receipt:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            doc = {}
        now = datetime.now(UTC)
        if path == SMS_PATH:
            return Receipt(now, "sms", path, doc.get("idempotency_key"), to=doc.get("to"), answered=status)
        return Receipt(
            now,
            "webhook",
            path,
            headers.get("webhook-id"),
            body_id=doc.get("notification_id"),
            customer_id=doc.get("customer_id"),
            kind=doc.get("kind"),
            verified=self._verified(path, headers, body),
            answered=status,
        )

    def _verified(self, path: str, headers: dict[str, str], body: bytes) -> bool:
        for secret in self.secrets.get(path, []):
            try:
                Webhook(secret).verify(body, headers)
                return True
            except WebhookVerificationError:
                continue
        return False


async def _read(reader: asyncio.StreamReader) -> tuple[str, dict[str, str], bytes] | None:
    line = await reader.readline()
    if not line:
        return None
    _method, path, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, str] = {}
    while header := (await reader.readline()).decode("latin-1").strip():
        name, _, value = header.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return path, headers, body


# --- SMTP ------------------------------------------------------------------------------------------------


class _Handler:
    def __init__(self, peer: MailPeer) -> None:
        self.peer = peer

    async def handle_DATA(self, server, session, envelope) -> str:  # noqa: N802 - aiosmtpd's name
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        message = email.message_from_bytes(content)
        self.peer.receipts.append(
            Receipt(
                datetime.now(UTC),
                "email",
                ",".join(envelope.rcpt_tos),
                _message_id(str(message.get("Message-ID", ""))),
                to=str(message.get("To", "")),
                answered=250,
            )
        )
        if self.peer.delay_s:
            await asyncio.sleep(self.peer.delay_s)
        return "250 OK"


def _message_id(header: str) -> str | None:
    """`<notification_id@domain>` -> notification_id@domain (the caller checks the domain)."""
    header = header.strip()
    return header[1:-1] if header.startswith("<") and header.endswith(">") else (header or None)


@dataclass
class MailPeer:
    """An SMTP server that keeps every message; stop() and start() again on the same port."""

    delay_s: float = 0.0
    receipts: list[Receipt] = field(default_factory=list)
    port: int = 0
    _controller: Controller | None = None

    def start(self) -> MailPeer:
        self.port = self.port or _free_port()
        self._controller = Controller(_Handler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    @property
    def running(self) -> bool:
        return self._controller is not None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


__all__ = ["SMS_PATH", "HttpPeer", "MailPeer", "Receipt", "always_ok"]
