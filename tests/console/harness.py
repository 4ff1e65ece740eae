"""The console under test: uvicorn in a thread on a socket bound here, users with a cheap argon2
profile, tasks written with the store's own writer, and a browser confined to loopback."""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncpg
import httpx
import orjson
import uvicorn
from argon2 import PasswordHasher, profiles
from starlette.types import ASGIApp

from hub.core.ids import stable_id
from hub.core.outputs import AlertDecision, TaskDecision
from hub.core.topics import Destinations, Queue
from hub.ops.users import Role, add_user, hash_password
from hub.store.writes import created, write_alerts, write_tasks
from schemas.enums import AlertKind, Severity
from schemas.outbound import Alert, AlertSource

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
CHEAP = PasswordHasher.from_parameters(profiles.CHEAPEST)  # the tests log in often; production uses RFC 9106
PASSWORD = "correct horse battery"
ROOT = Path(__file__).resolve().parents[2]


class ThreadedServer:
    """uvicorn.Server in a daemon thread, on a socket bound before it starts (no free-port race)."""

    def __init__(self, app: ASGIApp, graceful: float = 2.0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(
            app,
            log_level="warning",
            lifespan="on",
            timeout_graceful_shutdown=graceful,
            proxy_headers=False,  # as `hub console` runs it: X-Forwarded-* only per HUB_CONSOLE_TRUSTED_PROXIES
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self) -> ThreadedServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the console did not start (see the log above)")
            time.sleep(0.02)
        return self

    def stop(self) -> None:
        # Signal handlers exist only in the main thread, so sse-starlette cannot see this server
        # stop: tell it directly, and reset the flag (process-global) for later servers.
        from sse_starlette.sse import AppStatus

        AppStatus.should_exit = True
        self.server.should_exit = True
        self.thread.join(15)
        AppStatus.should_exit = False
        assert not self.thread.is_alive(), "the console did not stop"


# ------------------------------------------------------------------------------------------ users


async def make_user(dsn: str, name: str, role: Role, departments: Iterable[str] = ()) -> str:
    conn = await asyncpg.connect(dsn)
    try:
        await add_user(conn, name, role, list(departments), hash_password(PASSWORD, CHEAP))
    finally:
        await conn.close()
    return name


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


# ------------------------------------------------------------------------------------------ data


async def jsonb_connection(dsn: str) -> asyncpg.Connection:
    conn = await asyncpg.connect(dsn)
    await conn.set_type_codec(
        "jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog"
    )
    return conn


async def make_task(
    dsn: str,
    *,
    department: str = "claims",
    severity: str = "P2",
    title: str | None = None,
    shipment_id: str | None = None,
    customer_id: str | None = None,
    due_in: timedelta = timedelta(hours=6),
    kind: str = "damage",
    rule: str = "damage",
) -> str:
    """An open task written as the hub writes one (store writer, `created` history row, NOTIFY)."""
    now = datetime.now(UTC)
    task_id = str(uuid.uuid4())
    task = TaskDecision(
        task_id=task_id,
        department=department,
        kind=kind,
        severity=Severity(severity),
        shipment_id=shipment_id,
        customer_id=customer_id,
        title=title or f"Test task {task_id[:8]}",
        details={"test": True},
        opened_at=now - timedelta(hours=1),
        due_at=now + due_in,
        warn_at=now + due_in * 0.75,
        escalate_at=now + due_in * 2,
        source_event_id=f"test:{task_id}",
        rule=rule,
        alert_id=stable_id("alert", "test", task_id),
    )
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await write_tasks(conn, [task], created([task], now))
    finally:
        await conn.close()
    return task_id


def alert_for(
    task_id: str, *, kind: str = "damage", severity: str = "P1", shipment_id: str | None = None, summary: str = ""
) -> Alert:
    now = datetime.now(UTC)
    return Alert(
        alert_id=stable_id("alert", "test", task_id),
        kind=AlertKind(kind),
        severity=Severity(severity),
        rule=kind,
        shipment_id=shipment_id,
        customer_id=None,
        summary=summary or f"test alert for {task_id[:8]}",
        task_id=task_id,
        source=AlertSource(topic="test", partition=0, offset=0, event_id=f"test:{task_id}"),
        created_at=now,
        due_at=now + timedelta(hours=2),
    )


async def write_alert(dsn: str, destinations: Destinations, queue: Queue, alert: Alert) -> None:
    """An alert into the outbox exactly as the hub's store writes one (silences applied, NOTIFY)."""
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await write_alerts(conn, [AlertDecision(queue, alert)], destinations)
    finally:
        await conn.close()


# ----------------------------------------------------------------------------------- HTTP clients


async def http_login(base: str, username: str, password: str = PASSWORD, **client_args: Any) -> httpx.AsyncClient:
    """An httpx client with a console session (it goes through the login form like a browser)."""
    client = httpx.AsyncClient(base_url=base, follow_redirects=False, timeout=30, trust_env=False, **client_args)
    page = await client.get("/login")
    token = form_token(page.text)
    answer = await client.post("/login", data={"csrf": token, "username": username, "password": password})
    assert answer.status_code == 303, answer.text
    return client


def form_token(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


async def session_token(client: httpx.AsyncClient) -> str:
    return form_token((await client.get("/queues")).text)


# ----------------------------------------------------------------------------------------- browser


def is_loopback(url: str) -> bool:
    parts = urlsplit(url)
    if parts.scheme in ("data", "blob", "about"):
        return True
    if parts.hostname == "localhost":
        return True
    try:
        return ipaddress.ip_address(parts.hostname or "").is_loopback
    except ValueError:
        return False


async def loopback_only(route: Any) -> None:
    if is_loopback(route.request.url):
        await route.continue_()
    else:
        await route.abort("blockedbyclient")


def screenshots_dir(default: Path) -> Path:
    """HUB_CONSOLE_SCREENSHOTS=docs/console writes the README's screenshots; else a temporary folder."""
    chosen = os.environ.get("HUB_CONSOLE_SCREENSHOTS")
    folder = (ROOT / chosen) if chosen and not Path(chosen).is_absolute() else Path(chosen or default)
    folder.mkdir(parents=True, exist_ok=True)
    return folder
