"""`hub console`: serve the web ops console (hub/console) with uvicorn.

The console is its own process: it needs Postgres (HUB_DATABASE_URL, migrated) and, to replay
dead letters, Kafka (HUB_KAFKA_BOOTSTRAP). Users come from `hub users add`.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import FrameType

import typer

from hub.commands._common import console as out
from hub.commands._common import database_url, fail, settings
from hub.config import Settings
from hub.logs import configure_logging
from hub.migrate import pending_migrations
from hub.ops.db import OpsError, database
from hub.ops.users import Role, add_user, audit, find_user, hash_password, list_users, set_password

# uvicorn serves the application by its import path (a factory reading the HUB_* settings), so
# the command line and the console stay independent packages (see the layers in pyproject.toml).
APP_FACTORY = "hub.console.app:from_environment"
# Open event streams are closed on SIGTERM (sse-starlette watches uvicorn's exit); anything
# still running after this many seconds is cancelled, so a stop never hangs.
GRACEFUL_SHUTDOWN_S = 5


async def _preflight(dsn: str) -> tuple[list[str], int]:
    async with database(dsn) as conn:
        missing = await pending_migrations(conn)
        users = 0 if missing else len(await list_users(conn))
    return missing, users


def register(app: typer.Typer) -> None:
    @app.command(name="console")
    def console_command(
        host: str | None = typer.Option(None, "--host", help="Listen address [default: HUB_CONSOLE_HOST, 127.0.0.1]"),
        port: int | None = typer.Option(
            None, "--port", min=0, max=65535, help="Listen port [default: HUB_CONSOLE_PORT, 8080]"
        ),
    ) -> None:
        """Serve the web ops console: live queues, tasks and their lifecycle, shipments, dead letters,
        customers, silences, reports; Chinese and English. Log in with a user from `hub users add`."""
        s = settings()
        dsn = database_url(s)
        configure_logging(s.log_level, s.log_format)
        try:
            missing, users = asyncio.run(_preflight(dsn))
        except OpsError as exc:
            fail(str(exc))
        if missing:
            fail(f"the database lacks migrations {', '.join(missing)}; run `hub migrate` first")
        bind_host, bind_port = host or s.console_host, s.console_port if port is None else port
        out.print(f"console at http://{bind_host}:{bind_port}/ (Ctrl-C stops it)", soft_wrap=True)
        if not users:
            out.print("[yellow]no console users yet:[/] create one with `hub users add NAME --role admin`")
        import uvicorn  # here, not at import: every `hub` command loads this module

        config = uvicorn.Config(
            APP_FACTORY,
            factory=True,
            host=bind_host,
            port=bind_port,
            lifespan="on",
            proxy_headers=False,  # the app applies X-Forwarded-* itself, from HUB_CONSOLE_TRUSTED_PROXIES only
            server_header=False,
            log_config=None,  # keep the hub's logging (text or JSON, phone numbers masked)
            log_level=s.log_level.lower(),
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_S,
        )

        class Server(uvicorn.Server):
            """Exits 0 after a graceful stop on SIGTERM or Ctrl-C, as `hub run` does (uvicorn would
            raise the signal again once stopped, so the process would end by it)."""

            def handle_exit(self, sig: int, frame: FrameType | None) -> None:
                super().handle_exit(sig, frame)
                self._captured_signals.clear()

        server = Server(config)
        server.run()
        if not server.started:
            fail("the console did not start; see the messages above")


# --- the console inside `hub demo` -----------------------------------------------------------------

DEMO_USER = "demo"
START_TIMEOUT_S = 60.0


async def _demo_login(dsn: str) -> str:
    """The demo's admin login, with a new password each run (the embedded Postgres keeps users)."""
    password = secrets.token_urlsafe(12)
    hashed = await asyncio.to_thread(hash_password, password)
    async with database(dsn) as conn:
        user, _ = await find_user(conn, DEMO_USER)
        if user is None:
            await add_user(conn, DEMO_USER, Role.ADMIN, [], hashed)
        else:
            await set_password(conn, DEMO_USER, hashed)
        await audit(conn, "hub demo", "user_added" if user is None else "password_changed", DEMO_USER, {})
    return password


def _any_free_port(host: str) -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        port: int = probe.getsockname()[1]
    return port


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def demo_console(s: Settings) -> Iterator[str | None]:
    """`hub console` beside the demo's hub, on the demo's database (already migrated), with an
    admin login made for this run; stopped with the demo. Yields its URL (None if it did not start)."""
    host = "127.0.0.1"
    port = s.console_port if s.console_port and _port_free(host, s.console_port) else _any_free_port(host)
    try:
        password = asyncio.run(_demo_login(s.dsn))
    except OpsError as exc:
        out.print(f"[yellow]note:[/] no console this time ({exc})")
        yield None
        return
    logs = Path(s.data_dir) / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    env = s.child_environment()
    env.update(HUB_CONSOLE_HOST=host, HUB_CONSOLE_PORT=str(port), HUB_LOG_LEVEL="WARNING")
    with open(logs / "console.log", "ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "hub", "console"], env=env, stdout=log, stderr=subprocess.STDOUT
        )
        url = f"http://{host}:{port}/"
        try:
            if _wait_healthy(process, f"http://{host}:{port}/health/live"):
                out.print(
                    f"web console: [bold]{url}[/] log in as [bold]{DEMO_USER}[/] / [bold]{password}[/] "
                    "(an admin made for this run; it stops with the demo)",
                    soft_wrap=True,
                )
                yield url
            else:
                out.print(f"[yellow]note:[/] the web console did not start; see {logs / 'console.log'}")
                yield None
        finally:
            process.terminate()
            try:
                process.wait(timeout=GRACEFUL_SHUTDOWN_S + 5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_healthy(process: subprocess.Popen, url: str) -> bool:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline and process.poll() is None:
        try:
            with opener.open(url, timeout=2) as answer:
                if answer.status == 200:
                    return True
        except OSError:
            time.sleep(0.25)
    return False
