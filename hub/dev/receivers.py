"""Local receivers for notifications: an SMTP sink and an HTTP receiver (webhooks, SMS and WeChat
gateways). The demo sends to them; the tests script their answers (a 451, a 500, a 410) and check
what arrived. Loopback only.
"""

from __future__ import annotations

import asyncio
import contextlib
import email
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import Message
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session


@dataclass
class SentMail:
    to: list[str]
    message: Message

    @property
    def message_id(self) -> str:
        return str(self.message["Message-ID"])


class _SmtpHandler:
    def __init__(self, sink: SmtpSink) -> None:
        self.sink = sink

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:  # noqa: N802 - aiosmtpd's name
        if self.sink.replies:
            reply = self.sink.replies.pop(0)
            if not reply.startswith("250"):
                return reply
        content = envelope.content if isinstance(envelope.content, bytes) else str(envelope.content).encode()
        self.sink.received.append(SentMail(list(envelope.rcpt_tos), email.message_from_bytes(content)))
        return "250 OK"


@dataclass
class SmtpSink:
    """An SMTP server on 127.0.0.1 that keeps what it is sent. `replies`: the answers to the next
    messages (e.g. "451 4.3.0 try later"), then "250 OK" for the rest."""

    received: list[SentMail] = field(default_factory=list)
    replies: list[str] = field(default_factory=list)
    port: int = 0
    _controller: Controller | None = None

    def start(self, port: int = 0) -> int:
        self.port = port or _free_port()
        self._controller = Controller(_SmtpHandler(self), hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self.port

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    verified: bool | None = None  # the signature check's verdict, when the receiver has one


Answer = tuple[int, dict[str, str]]


@dataclass
class HttpReceiver:
    """An HTTP/1.1 server on 127.0.0.1 that records every request and answers per path: the next
    scripted answer for that path if any (`script[path]`: [(status, headers), ...]), else 200."""

    verify: Callable[[Request], bool] | None = None
    received: list[Request] = field(default_factory=list)
    script: dict[str, list[Answer]] = field(default_factory=dict)
    port: int = 0
    _server: asyncio.Server | None = None

    async def start(self, port: int = 0) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    def to(self, path: str) -> list[Request]:
        return [r for r in self.received if r.path == path]

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, ValueError):
            while True:
                request = await _read(reader)
                if request is None:
                    break
                if self.verify is not None:
                    request.verified = self.verify(request)
                self.received.append(request)
                status, headers = (
                    (self.script.get(request.path) or [(200, {})]).pop(0)
                    if self.script.get(request.path)
                    else (200, {})
                )
                head = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
                writer.write(f"HTTP/1.1 {status} X\r\ncontent-length: 2\r\n{head}\r\n{{}}".encode())
                await writer.drain()
        writer.close()


async def _read(reader: asyncio.StreamReader) -> Request | None:
    line = await reader.readline()
    if not line:
        return None
    method, path, _ = line.decode("latin-1").split(" ", 2)
    headers: dict[str, Any] = {}
    while header := (await reader.readline()).decode("latin-1").strip():
        name, _, value = header.partition(":")
        headers[name.strip().lower()] = value.strip()
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return Request(method, path, headers, body)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
