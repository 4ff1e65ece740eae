"""`hub console`: the web ops console (contract 1.1, "Ops console"), a Starlette application.

Server-rendered pages (Jinja2, autoescaped), htmx and its SSE extension vendored under static/
(no CDN, no build step), live sections fed by Postgres LISTEN/NOTIFY (hub/console/live.py).
Every read and change goes through hub/ops, as the command line's do; who may do what is
checked here, on the server, for every request (hub/console/auth.py).

Run it with `hub console`, which serves `from_environment()` with uvicorn.
"""

from __future__ import annotations

import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import jinja2
import orjson
from argon2 import PasswordHasher
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import Mount
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from hub.config import Settings
from hub.console import formats
from hub.console.auth import Csrf
from hub.console.i18n import HTML_LANG, ZH, language_of, translator
from hub.console.live import Live
from hub.core.rules import load_rules
from hub.migrate import pending_migrations
from hub.ops import queues
from hub.ops.users import DEFAULT_HASHER

HERE = Path(__file__).parent
STATIC = HERE / "static"
TEMPLATES = HERE / "templates"

# No inline scripts or styles anywhere (htmx is configured not to inject its indicator style and
# not to eval); EventSource and form posts go to this origin only; nobody may frame the console.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
)
SECURITY_HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]
NO_STORE = (b"cache-control", b"no-store")
STATIC_CACHE = (b"cache-control", b"public, max-age=3600")


class SecurityHeaders:
    """A pure ASGI middleware (a BaseHTTPMiddleware would buffer the event streams): the CSP and
    friends on every response; `Cache-Control: no-store` on everything but the static files, since
    pages carry personal data; HSTS when the request came over https."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control" or static]
                own_policy = any(k.lower() == b"content-security-policy" for k, _ in headers)  # a stored report
                headers += [(k, v) for k, v in SECURITY_HEADERS if not (own_policy and k == b"content-security-policy")]
                if not static:
                    headers.append(NO_STORE)
                elif not any(k.lower() == b"cache-control" for k, _ in headers):
                    headers.append(STATIC_CACHE)
                if https:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


@dataclass
class ConsoleState:
    settings: Settings
    hasher: PasswordHasher
    csrf: Csrf
    templates: jinja2.Environment
    queues_of_rules: dict[str, str]
    queue_topics: dict[str, str]  # alert topic -> queue
    pool: asyncpg.Pool | None = None
    live: Live | None = None

    def render(self, name: str, **context: Any) -> str:
        return self.templates.get_template(name).render(**context)

    async def board_fragments(self, languages: set[str]) -> dict[str, dict[str, str]]:
        """The queues page's live sections, rendered once for each language someone watches in."""
        assert self.pool is not None
        now = datetime.now(UTC)
        async with self.pool.acquire() as conn:
            board = await queues.board(conn, self.queues_of_rules, self.queue_topics, now)
        rendered = {}
        for language in sorted(languages & set(HTML_LANG)):
            context = {"board": board, "now": now, "_": translator(language), "zone": self.settings.zone}
            rendered[language] = {
                "counts": self.render("_counts.html", **context),
                "urgent": self.render("_urgent.html", **context),
                "alerts": self.render("_alerts.html", **context),
            }
        return rendered


def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,  # every value is escaped unless a template says otherwise (none does)
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(formats.FILTERS)
    env.globals.update(formats.GLOBALS)
    return env


async def _init_connection(conn: asyncpg.Connection) -> None:
    # jsonb as Python values, as hub.ops.db.database does for the command line
    await conn.set_type_codec(
        "jsonb", encoder=lambda v: orjson.dumps(v).decode(), decoder=orjson.loads, schema="pg_catalog"
    )


def create_app(settings: Settings, *, hasher: PasswordHasher = DEFAULT_HASHER, pool_size: int = 8) -> Starlette:
    """The console for these settings. `hasher` checks passwords (tests pass a cheap one)."""
    from hub.console import pages

    secret = settings.console_secret.get_secret_value().encode() if settings.console_secret else None
    state = ConsoleState(
        settings=settings,
        hasher=hasher,
        csrf=Csrf(secret or secrets.token_bytes(32)),
        templates=environment(),
        queues_of_rules=queues.rule_queues(load_rules(settings.rules_file)),
        queue_topics={topic: queue.value for queue, topic in settings.queues.items()},
    )

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        dsn = settings.dsn
        state.pool = await asyncpg.create_pool(
            dsn, min_size=1, max_size=pool_size, init=_init_connection, command_timeout=30
        )
        try:
            async with state.pool.acquire() as conn:
                missing = await pending_migrations(conn)
            if missing:
                raise RuntimeError(f"the database lacks migrations {', '.join(missing)}; run `hub migrate` first")
            state.live = Live(dsn, state.board_fragments)
            state.live.start()
            try:
                yield
            finally:
                await state.live.stop()
        finally:
            await state.pool.close()

    middleware = []
    trusted = [h.strip() for h in settings.console_trusted_proxies.split(",") if h.strip()]
    if trusted:
        # X-Forwarded-For / -Proto only from these addresses: the client's address in the audit,
        # and https (the Secure cookie flag, HSTS) when the proxy terminated TLS.
        middleware.append(Middleware(ProxyHeadersMiddleware, trusted_hosts=trusted))
    middleware.append(Middleware(SecurityHeaders))
    app = Starlette(
        routes=[
            *pages.ROUTES,
            Mount("/static", StaticFiles(directory=str(STATIC)), name="static"),
        ],
        middleware=middleware,
        exception_handlers={HTTPException: _http_error},
        lifespan=lifespan,
    )
    app.state.console = state
    return app


def anonymous_page(request: Request, template: str, status: int, **values: Any) -> HTMLResponse:
    """A page for someone not logged in (errors before a session is known)."""
    state: ConsoleState = request.app.state.console
    language = language_of(request)
    body = state.render(
        template,
        _=translator(language),
        lang=HTML_LANG[language],
        language=language,
        user=None,
        csrf="",
        path=request.url.path,
        here="/queues",
        zone=state.settings.zone,
        now=datetime.now(UTC),
        **values,
    )
    return HTMLResponse(body, status_code=status)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    if request.url.path.startswith("/static/") or request.url.path in ("/health", "/events"):
        return Response(str(exc.detail), status_code=exc.status_code, media_type="text/plain")
    _ = translator(language_of(request))
    title = _("Page not found.") if exc.status_code == 404 else str(exc.detail)
    return anonymous_page(request, "error.html", exc.status_code, title=title, message=title)


def from_environment() -> Starlette:
    """The uvicorn factory `hub console` serves: settings from HUB_* variables."""
    return create_app(Settings())


def translations_complete(strings: set[str]) -> list[str]:
    """Strings used with _() that have no Chinese (for the tests)."""
    return sorted(s for s in strings if s not in ZH)
