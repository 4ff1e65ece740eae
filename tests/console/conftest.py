"""Fixtures of the console tests: one migrated database and one console server for the session,
users of every role, the hub itself where a test needs alerts to flow, and Debian's Chromium
(driven by Playwright's async API, never downloaded) that may reach loopback addresses only."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from hub.config import Settings
from hub.console.app import create_app
from hub.dev.databases import scratch_database
from hub.migrate import apply_migrations
from hub.ops.users import Role
from tests.console.harness import (
    CHEAP,
    CHROMIUM,
    CHROMIUM_ARGS,
    PASSWORD,
    ThreadedServer,
    loopback_only,
    make_user,
    screenshots_dir,
)
from tests.support import isolated_settings, running_hub

USERS = {
    "ada": (Role.ADMIN, ()),
    "sam": (Role.SUPERVISOR, ()),
    "cleo": (Role.AGENT, ("claims",)),
    "cody": (Role.AGENT, ("complaints",)),
    "vera": (Role.VIEWER, ()),
}


@pytest.fixture(scope="session")
async def console_dsn(pg_admin_dsn: str) -> AsyncIterator[str]:
    async with scratch_database(pg_admin_dsn, "hub_console") as dsn:
        await apply_migrations(dsn)
        yield dsn


@pytest.fixture(scope="session")
def console_settings(kafka_bootstrap: str, kafka_is_embedded: bool, console_dsn: str) -> Settings:
    # The test client and browser connect from 127.0.0.1, which is trusted as a reverse proxy here
    # (tests/console/test_console_http.py checks an untrusted one too).
    return isolated_settings(kafka_bootstrap, kafka_is_embedded, console_dsn, console_trusted_proxies="127.0.0.1")


@pytest.fixture(scope="session")
async def users(console_dsn: str) -> dict[str, Role]:
    for name, (role, departments) in USERS.items():
        await make_user(console_dsn, name, role, departments)
    return {name: role for name, (role, _) in USERS.items()}


@pytest.fixture(scope="session")
def console(console_settings: Settings, users: dict[str, Role]) -> Any:
    server = ThreadedServer(create_app(console_settings, hasher=CHEAP)).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def base(console: ThreadedServer) -> str:
    return console.url


@pytest.fixture(scope="session")
async def hub(console_settings: Settings) -> AsyncIterator[Any]:
    """The hub itself on the console's database and topics (started on first use)."""
    async with running_hub(console_settings) as runtime:
        yield runtime


# ------------------------------------------------------------------------------------------- browser


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"{CHROMIUM} is missing: install it with `python -m hub.dev.system` (Debian's chromium)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "headless": True, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {
        **browser_context_args,
        "locale": "zh-CN",
        "timezone_id": "Asia/Shanghai",
        "viewport": {"width": 1360, "height": 900},
        "service_workers": "block",
    }


class PageProblems:
    """Console errors (CSP violations among them) and uncaught script errors of every page."""

    def __init__(self) -> None:
        self.found: list[str] = []

    def watch(self, page: Any) -> None:
        page.on("console", lambda m: self.found.append(f"console {m.type}: {m.text}") if m.type == "error" else None)
        page.on("pageerror", lambda e: self.found.append(f"page error: {e}"))


# What Chromium logs for a page the server answered with 4xx on purpose (a refused action): not a problem.
EXPECTED_ERRORS = ("Failed to load resource: the server responded with a status of 4",)


@pytest.fixture
def page_problems() -> Any:
    """Every browser test ends without a CSP violation or a script error on any of its pages
    (checked after its browser contexts are closed)."""
    problems = PageProblems()
    yield problems
    unexpected = [p for p in problems.found if not any(e in p for e in EXPECTED_ERRORS)]
    assert not unexpected, unexpected


@pytest_asyncio.fixture(loop_scope="session")
async def context(context: Any, page_problems: PageProblems) -> Any:
    await context.route("**/*", loopback_only)
    context.on("page", page_problems.watch)
    return context


@pytest_asyncio.fixture(loop_scope="session")
async def browser_page(
    browser: Any, browser_context_args: dict, page_problems: PageProblems, base: str
) -> AsyncIterator[Callable[..., Awaitable[Any]]]:
    """A new browser (own cookies; context options may override the defaults, e.g. locale),
    confined to loopback, optionally logged in as `user`."""
    contexts = []

    async def open_page(user: str | None = None, **context_args: Any) -> Any:
        ctx = await browser.new_context(**{**browser_context_args, **context_args})
        contexts.append(ctx)
        await ctx.route("**/*", loopback_only)
        ctx.on("page", page_problems.watch)
        page = await ctx.new_page()
        if user is not None:
            await log_in(page, base, user)
        return page

    yield open_page
    for ctx in contexts:
        await ctx.close()


async def log_in(page: Any, base: str, user: str, password: str = PASSWORD) -> None:
    await page.goto(f"{base}/login")
    await page.fill("#username", user)
    await page.fill("#password", password)
    await page.click("#login")
    await page.wait_for_url(f"{base}/queues")


@pytest.fixture(scope="session")
def shots(tmp_path_factory: pytest.TempPathFactory) -> Callable[[Any, str], Awaitable[None]]:
    folder = screenshots_dir(tmp_path_factory.mktemp("console-shots"))

    async def shot(page: Any, name: str, full_page: bool = True) -> None:
        await page.screenshot(path=str(folder / f"{name}.png"), full_page=full_page)

    return shot
