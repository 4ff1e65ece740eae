"""The console's pages and actions. Each handler reads or changes through hub/ops; who may do
what is checked here, on the server, whatever the page showed (hub/console/auth.py).

GET pages need a session (any role reads). POST actions need a session, its CSRF token and the
action's role (and, for a task, the task's department); every action is recorded with its user
(task_events for tasks, console_audit for everything).
"""

from __future__ import annotations

import asyncio
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote, urlencode

import asyncpg
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.datastructures import FormData
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import Route

from hub.console.app import ConsoleState, anonymous_page
from hub.console.auth import (
    LANG_COOKIE,
    PRE_SESSION_COOKIE,
    SESSION_COOKIE,
    TASK_ACTIONS,
    Forbidden,
    Session,
    clear_cookie,
    client_address,
    current_session,
    end_session,
    log_in,
    require,
    require_department,
    sent_csrf_token,
    session_alive,
    set_cookie,
    start_session,
)
from hub.console.i18n import HTML_LANG, LANGUAGES, Translator, language_of, translator
from hub.core.silences import MatcherError, make_matcher
from hub.core.topics import Queue
from hub.ops import customers as customer_ops
from hub.ops import dead_letters as dlq_ops
from hub.ops import queues as queue_ops
from hub.ops import shipments as shipment_ops
from hub.ops import silences as silence_ops
from hub.ops import stored_reports
from hub.ops import tasks as task_ops
from hub.ops import users as user_ops
from hub.ops.db import NotFound, OpsError
from hub.ops.users import Role, audit
from schemas.enums import AlertKind, DeadLetterReason, Department, Severity, TaskStatus

VALUE_SHOWN_BYTES = 16 * 1024
SSE_SESSION_CHECK_S = 30.0
PAGE_SIZE = 50


# ------------------------------------------------------------------------------------------ plumbing


@dataclass
class Ctx:
    request: Request
    state: ConsoleState
    conn: asyncpg.Connection
    session: Session | None
    language: str
    _: Translator
    now: datetime = field(default_factory=lambda: datetime.now(UTC))

    @property
    def user(self) -> Any:
        return self.session.user if self.session else None

    @property
    def client(self) -> str | None:
        return client_address(self.request)

    def html(self, template: str, status: int = 200, **values: Any) -> HTMLResponse:
        body = self.state.render(
            template,
            _=self._,
            lang=HTML_LANG[self.language],
            language=self.language,
            languages=LANGUAGES,
            user=self.user,
            csrf=self.session.csrf_token if self.session else "",
            path=self.request.url.path,
            here=_here(self.request),
            zone=self.state.settings.zone,
            now=self.now,
            Role=Role,
            **values,
        )
        return HTMLResponse(body, status_code=status)

    def problem(self, status: int, title: str, message: str) -> HTMLResponse:
        return self.html("error.html", status=status, title=title, message=message)


Handler = Callable[[Ctx], Awaitable[Response]]


def _here(request: Request) -> str:
    return request.url.path + (f"?{request.url.query}" if request.url.query else "")


def _safe_next(target: str | None) -> str:
    """A local path to go to after login or a language switch; never another site."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/queues"


def _state(request: Request) -> ConsoleState:
    state: ConsoleState = request.app.state.console
    return state


def _errors(ctx: Ctx, exc: Exception) -> Response:
    if isinstance(exc, Forbidden):
        return ctx.problem(403, ctx._("Not allowed"), str(exc))
    if isinstance(exc, NotFound):
        return ctx.problem(404, ctx._("Not found"), str(exc))
    return ctx.problem(409, ctx._("Refused"), str(exc))


def view(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """A page: any logged-in user reads it; others go to the login page first."""

    async def endpoint(request: Request) -> Response:
        state = _state(request)
        assert state.pool is not None
        language = language_of(request)
        async with state.pool.acquire() as conn:
            session = await current_session(conn, request)
            if session is None:
                return RedirectResponse("/login?" + urlencode({"next": _here(request)}), status_code=303)
            ctx = Ctx(request, state, conn, session, language, translator(language))
            try:
                return await handler(ctx)
            except (Forbidden, OpsError) as exc:
                return _errors(ctx, exc)

    return endpoint


def action(role: Role) -> Callable[[Handler], Callable[[Request], Awaitable[Response]]]:
    """A change: a session, its CSRF token and at least `role`, else 403 and nothing changes."""

    def wrap(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            state = _state(request)
            assert state.pool is not None
            language = language_of(request)
            _ = translator(language)
            sent = await sent_csrf_token(request)
            async with state.pool.acquire() as conn:
                session = await current_session(conn, request)
                ctx = Ctx(request, state, conn, session, language, _)
                if session is None:
                    return ctx.problem(403, _("Forbidden"), _("Your session has ended; please log in again."))
                if not state.csrf.check(request, sent, session):
                    return ctx.problem(403, _("Forbidden"), _("The form expired; please try again."))
                try:
                    require(session.user, role, request.url.path)
                    return await handler(ctx)
                except (Forbidden, OpsError) as exc:
                    return _errors(ctx, exc)

        return endpoint

    return wrap


async def _form(ctx: Ctx) -> FormData:
    return await ctx.request.form()


def _field(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


# --------------------------------------------------------------------------------- health, login


async def health(request: Request) -> Response:
    """200 when the console answers and Postgres does; 503 otherwise (for probes)."""
    state = _state(request)
    try:
        assert state.pool is not None
        async with state.pool.acquire(timeout=5) as conn:
            await conn.fetchval("SELECT 1")
    except (OSError, TimeoutError, AssertionError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return JSONResponse({"status": "unavailable", "postgres": type(exc).__name__}, status_code=503)
    live = state.live is not None and state.live.listening.is_set()
    return JSONResponse({"status": "ok", "postgres": "ok", "listening": live})


async def health_live(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


def _login_page(ctx: Ctx, nonce: str, status: int = 200, error: str | None = None, next_: str = "") -> HTMLResponse:
    response = ctx.html(
        "login.html",
        status=status,
        error=error,
        login_csrf=ctx.state.csrf.pre_session_token(nonce),
        next=next_,
    )
    set_cookie(response, ctx.request, PRE_SESSION_COOKIE, nonce)
    return response


async def login_page(request: Request) -> Response:
    state = _state(request)
    assert state.pool is not None
    language = language_of(request)
    async with state.pool.acquire() as conn:
        session = await current_session(conn, request)
        next_ = _safe_next(request.query_params.get("next"))
        if session is not None:
            return RedirectResponse(next_, status_code=303)
        ctx = Ctx(request, state, conn, None, language, translator(language))
        nonce = request.cookies.get(PRE_SESSION_COOKIE) or ""
        if not (20 <= len(nonce) <= 64):
            nonce = secrets.token_urlsafe(24)
        return _login_page(ctx, nonce, next_=next_)


async def login(request: Request) -> Response:
    state = _state(request)
    assert state.pool is not None
    language = language_of(request)
    _ = translator(language)
    sent = await sent_csrf_token(request)
    form = await request.form()
    next_ = _safe_next(_field(form, "next"))
    async with state.pool.acquire() as conn:
        ctx = Ctx(request, state, conn, None, language, _)
        nonce = request.cookies.get(PRE_SESSION_COOKIE) or ""
        if not state.csrf.check(request, sent, None):
            return _login_page(ctx, secrets.token_urlsafe(24), 403, _("The form expired; please try again."), next_)
        password = form.get("password")
        result = await log_in(
            conn,
            _field(form, "username"),
            password if isinstance(password, str) else "",
            ctx.client,
            state.hasher,
        )
        if result.user is None:
            if result.problem == "locked":
                until = result.locked_until.astimezone(state.settings.zone) if result.locked_until else None
                message = _("Too many failed logins: this account is locked until {until}.").format(
                    until=until.strftime("%H:%M") if until else "-"
                )
            elif result.problem == "disabled":
                message = _("This account is disabled.")
            else:
                message = _("Wrong user name or password.")
            return _login_page(ctx, nonce, 401, message, next_)
        token, _csrf = await start_session(conn, result.user, ctx.client)
    response = RedirectResponse(next_, status_code=303)
    set_cookie(response, request, SESSION_COOKIE, token)
    clear_cookie(response, request, PRE_SESSION_COOKIE)
    return response


@action(Role.VIEWER)
async def logout(ctx: Ctx) -> Response:
    username = await end_session(ctx.conn, ctx.request, "logout")
    if username:
        await audit(ctx.conn, username, "logout", username, {}, ctx.client)
    response = RedirectResponse("/login", status_code=303)
    clear_cookie(response, ctx.request, SESSION_COOKIE)
    return response


async def switch_language(request: Request) -> Response:
    """The language switch: works logged in (session CSRF) and on the login page (pre-session CSRF)."""
    state = _state(request)
    assert state.pool is not None
    sent = await sent_csrf_token(request)
    form = await request.form()
    async with state.pool.acquire() as conn:
        session = await current_session(conn, request)
    language = language_of(request)
    if not state.csrf.check(request, sent, session):
        _ = translator(language)
        return anonymous_page(
            request, "error.html", 403, title=_("Forbidden"), message=_("The form expired; please try again.")
        )
    chosen = _field(form, "lang")
    response = RedirectResponse(_safe_next(_field(form, "next")), status_code=303)
    if chosen in LANGUAGES:
        set_cookie(response, request, LANG_COOKIE, chosen, max_age=365 * 24 * 3600)
    return response


async def home(request: Request) -> Response:
    return RedirectResponse("/queues", status_code=303)


# -------------------------------------------------------------------------------------------- queues


@view
async def queues_page(ctx: Ctx) -> Response:
    board = await queue_ops.board(ctx.conn, ctx.state.queues_of_rules, ctx.state.queue_topics, ctx.now)
    return ctx.html("queues.html", board=board, queues=[q.value for q in Queue])


async def events(request: Request) -> Response:
    """Server-sent events for the live sections: `counts`, `urgent`, `alerts` (HTML fragments)."""
    state = _state(request)
    assert state.pool is not None and state.live is not None
    async with state.pool.acquire() as conn:
        session = await current_session(conn, request)
    if session is None:
        return Response("log in first", status_code=401, media_type="text/plain")
    live, language, pool, digest = state.live, language_of(request), state.pool, session.token_hash

    async def stream() -> AsyncIterator[ServerSentEvent]:
        with live.subscription(language) as subscriber:
            if live.latest.get(language):
                subscriber.offer(live.latest[language])
            else:
                live.poke()
            checked = time.monotonic()
            while True:
                try:
                    fragments = await asyncio.wait_for(subscriber.queue.get(), timeout=SSE_SESSION_CHECK_S / 2)
                except TimeoutError:
                    fragments = None
                if time.monotonic() - checked > SSE_SESSION_CHECK_S:
                    checked = time.monotonic()
                    async with pool.acquire() as conn:
                        if not await session_alive(conn, digest):
                            return  # logged out, disabled, or idle elsewhere: the stream ends too
                for name, html in (fragments or {}).items():
                    yield ServerSentEvent(data=html, event=name)

    return EventSourceResponse(stream(), ping=15, send_timeout=10, headers={"Cache-Control": "no-store"})


# --------------------------------------------------------------------------------------------- tasks


def _task_filter(ctx: Ctx) -> tuple[task_ops.TaskFilter, dict[str, str]]:
    q = ctx.request.query_params
    chosen = {name: q.get(name, "") for name in ("department", "severity", "status", "escalation", "overdue")}
    departments = {d.value for d in Department}
    statuses = {s.value for s in TaskStatus}
    department = chosen["department"] if chosen["department"] in departments else None
    severity = chosen["severity"] if chosen["severity"] in {s.value for s in Severity} else None
    status = chosen["status"]
    if status == "all":
        wanted_statuses = tuple(sorted(statuses))
    elif status in statuses:
        wanted_statuses = (status,)
    else:
        wanted_statuses = task_ops.TaskFilter.statuses
    level = int(chosen["escalation"]) if chosen["escalation"] in ("0", "1", "2") else None
    wanted = task_ops.TaskFilter(
        statuses=wanted_statuses,
        department=department,
        severity=severity,
        overdue=chosen["overdue"] == "1",
        escalation_level=level,
        limit=PAGE_SIZE,
    )
    return wanted, chosen


@view
async def tasks_page(ctx: Ctx) -> Response:
    wanted, chosen = _task_filter(ctx)
    page = await task_ops.list_tasks(ctx.conn, wanted, ctx.now)
    return ctx.html(
        "tasks.html",
        page=page,
        chosen=chosen,
        departments=[d.value for d in Department],
        severities=[s.value for s in Severity],
        statuses=[s.value for s in TaskStatus],
        limit=PAGE_SIZE,
    )


def _task_permissions(ctx: Ctx, task: task_ops.Task) -> dict[str, bool]:
    """What the page offers; the actions check it all again."""
    user = ctx.user
    mine = user.covers(task.department)
    agent = user.can(Role.AGENT) and mine
    supervisor = user.can(Role.SUPERVISOR) and mine
    active = task.status in ("open", "in_progress")
    # an agent closes open tasks and its own; a task someone else holds, only a supervisor
    closable = agent and active and (task.status == "open" or task.claimed_by == user.username or supervisor)
    return {
        "claim": agent and task.status == "open",
        "takeover": supervisor and task.status == "in_progress" and task.claimed_by != user.username,
        "release": agent and task.status == "in_progress" and task.claimed_by == user.username,
        "comment": agent,
        "reassign": supervisor and active,
        "resolve": closable,
        "cancel": closable,
        "reopen": agent and task.status == "done",
    }


async def _task_page(ctx: Ctx, task_id: str, status: int = 200, error: str | None = None) -> Response:
    task = await task_ops.get_task(ctx.conn, task_id)
    history = await task_ops.history(ctx.conn, task_id)
    done = ctx.request.query_params.get("done", "")
    return ctx.html(
        "task.html",
        status=status,
        task=task,
        history=history,
        can=_task_permissions(ctx, task),
        departments=[d.value for d in Department],
        error=error,
        done=done if done in TASK_ACTIONS else "",
    )


@view
async def task_page(ctx: Ctx) -> Response:
    return await _task_page(ctx, ctx.request.path_params["task_id"])


@action(Role.AGENT)
async def task_action(ctx: Ctx) -> Response:
    task_id, name = ctx.request.path_params["task_id"], ctx.request.path_params["action"]
    if name not in TASK_ACTIONS:
        raise NotFound(f"no task action {name!r}")
    user = ctx.user
    require(user, TASK_ACTIONS[name], name)
    task = await task_ops.get_task(ctx.conn, task_id)
    require_department(user, task.department, name)
    if name in ("resolve", "cancel") and task.status == "in_progress" and task.claimed_by != user.username:
        # an agent closes open tasks and its own; someone else's only a supervisor
        require(user, Role.SUPERVISOR, f"{name} a task {task.claimed_by} holds")
    form = await _form(ctx)
    by = user.username
    try:
        async with ctx.conn.transaction():
            changed = await _apply_task_action(ctx, name, task_id, by, form)
            if changed.event is not None:
                await audit(ctx.conn, by, f"task_{name}", task_id, changed.event.detail, ctx.client)
    except OpsError as exc:
        if isinstance(exc, NotFound):
            raise
        return await _task_page(
            ctx, task_id, 409, _refusal(ctx, name, task_id, by, exc, await task_ops.get_task(ctx.conn, task_id))
        )
    return RedirectResponse(f"/tasks/{quote(task_id)}?done={name}", status_code=303)


async def _apply_task_action(ctx: Ctx, name: str, task_id: str, by: str, form: FormData) -> task_ops.Changed:
    conn = ctx.conn
    if name == "claim":
        return await task_ops.claim(conn, task_id, by)
    if name == "takeover":
        return await task_ops.claim(conn, task_id, by, take_over=True)
    if name == "release":
        return await task_ops.release(conn, task_id, by)
    if name == "comment":
        return await task_ops.comment(conn, task_id, by, _field(form, "text"))
    if name == "reassign":
        department = _field(form, "department") or None
        to = _field(form, "to") or None
        return await task_ops.reassign(conn, task_id, by, department=department, to=to)
    if name == "resolve":
        return await task_ops.resolve(conn, task_id, by, _field(form, "resolution"))
    if name == "cancel":
        return await task_ops.cancel(conn, task_id, by, _field(form, "resolution"))
    return await task_ops.reopen(conn, task_id, by, _field(form, "reason") or None)


def _refusal(ctx: Ctx, name: str, task_id: str, by: str, exc: OpsError, task: task_ops.Task) -> str:
    """The refusal in the page's language where it matters most (a lost claim race), else as ops said it."""
    if name == "claim" and task.status == "in_progress" and task.claimed_by not in (None, by):
        return ctx._("Task {id} is held by {who} since {when}.").format(
            id=task_id,
            who=task.claimed_by,
            when=task.claimed_at.astimezone(ctx.state.settings.zone).strftime("%Y-%m-%d %H:%M")
            if task.claimed_at
            else "-",
        )
    return str(exc)


# ------------------------------------------------------------------------------------------ shipments


@view
async def shipments_page(ctx: Ctx) -> Response:
    wanted = ctx.request.query_params.get("id", "").strip()
    if wanted:
        return RedirectResponse(f"/shipments/{quote(wanted, safe='')}", status_code=303)
    return ctx.html("shipment_search.html")


@view
async def shipment_page(ctx: Ctx) -> Response:
    shipment_id = ctx.request.path_params["shipment_id"]
    topic = ctx.state.settings.topic_call_logs
    file = await shipment_ops.shipment_file(ctx.conn, shipment_id, topic)
    timeline = await shipment_ops.shipment_timeline(ctx.conn, file, topic)
    return ctx.html("shipment.html", file=file, sheet=file.sheet, timeline=timeline)


# --------------------------------------------------------------------------------------- dead letters


@view
async def dead_letters_page(ctx: Ctx) -> Response:
    q = ctx.request.query_params
    reason = q.get("reason") if q.get("reason") in {r.value for r in DeadLetterReason} else None
    letters = await dlq_ops.list_dead_letters(ctx.conn, reason, q.get("topic") or None, 100)
    return ctx.html(
        "dead_letters.html", letters=letters, reasons=[r.value for r in DeadLetterReason], chosen_reason=reason or ""
    )


def _readable(data: bytes | None, limit: int = VALUE_SHOWN_BYTES) -> dlq_ops.ReadableBytes | None:
    return dlq_ops.readable(data, limit)


async def _dead_letter_page(
    ctx: Ctx, letter_id: str, status: int = 200, error: str | None = None, done: Any = None
) -> Response:
    letter = await dlq_ops.get_dead_letter(ctx.conn, letter_id)
    return ctx.html(
        "dead_letter.html",
        status=status,
        letter=letter,
        value=_readable(letter.value),
        key=_readable(letter.key, 256),
        headers=[(name, _readable(value, 512)) for name, value in letter.headers],
        can_replay=ctx.user.can(Role.SUPERVISOR),
        error=error,
        done=done,
    )


@view
async def dead_letter_page(ctx: Ctx) -> Response:
    return await _dead_letter_page(ctx, ctx.request.path_params["letter_id"])


@action(Role.SUPERVISOR)
async def replay(ctx: Ctx) -> Response:
    """Publish the original bytes again to the source topic (with key and headers); the letter stays."""
    letter_id = ctx.request.path_params["letter_id"]
    letter = await dlq_ops.get_dead_letter(ctx.conn, letter_id)
    if letter.value is None:
        raise OpsError("this dead letter has no value (a tombstone): there is nothing to replay")
    settings = ctx.state.settings
    if not settings.kafka_bootstrap:
        raise OpsError("the console has no HUB_KAFKA_BOOTSTRAP: set it to replay dead letters")
    done = await dlq_ops.replay_dead_letter(ctx.conn, settings, letter, letter.value, letter.key)
    await audit(
        ctx.conn,
        ctx.user.username,
        "dead_letter_replayed",
        letter.id,
        {"topic": done.topic, "partition": done.partition, "offset": done.offset},
        ctx.client,
    )
    return await _dead_letter_page(ctx, letter_id, done=done)


# ------------------------------------------------------------------------------------------ customers


@view
async def customers_page(ctx: Ctx) -> Response:
    q = ctx.request.query_params
    search = q.get("q", "").strip()[:64]
    try:
        offset = max(0, int(q.get("offset", "0")))
    except ValueError:
        offset = 0
    entries, more = await customer_ops.register_page(ctx.conn, search or None, PAGE_SIZE, offset)
    return ctx.html("customers.html", entries=entries, more=more, search=search, offset=offset, page_size=PAGE_SIZE)


@view
async def customer_page(ctx: Ctx) -> Response:
    view_ = await customer_ops.customer_view(ctx.conn, ctx.request.path_params["customer_id"])
    return ctx.html("customer.html", v=view_, c=view_.customer)


# ------------------------------------------------------------------------------------------- silences


async def _silences_page(
    ctx: Ctx, status: int = 200, error: str | None = None, form: dict[str, str] | None = None
) -> Response:
    silences = await silence_ops.list_silences(ctx.conn)
    return ctx.html(
        "silences.html",
        status=status,
        silences=silences,
        error=error,
        form=form or {},
        queues=[q.value for q in Queue],
        kinds=[k.value for k in AlertKind],
        departments=[d.value for d in Department],
        can_silence=ctx.user.can(Role.SUPERVISOR),
    )


@view
async def silences_page(ctx: Ctx) -> Response:
    return await _silences_page(ctx)


@action(Role.SUPERVISOR)
async def create_silence(ctx: Ctx) -> Response:
    form = await _form(ctx)
    values = {
        name: _field(form, name) for name in ("queue", "kind", "department", "carrier_id", "customer_id", "shipment_id")
    }
    comment = _field(form, "comment")
    try:
        hours = float(_field(form, "hours") or "0")
    except ValueError:
        hours = 0
    try:
        matcher = make_matcher(
            values,
            queues=[q.value for q in Queue],
            kinds=[k.value for k in AlertKind],
            departments=[d.value for d in Department],
        )
        if not 0 < hours <= silence_ops.LONGEST.total_seconds() / 3600:
            raise OpsError(f"a silence lasts more than 0 and at most {silence_ops.LONGEST.days * 24} hours")
        now = await ctx.conn.fetchval("SELECT now()")
        async with ctx.conn.transaction():
            silence = await silence_ops.create_silence(
                ctx.conn, matcher, ctx.user.username, comment, now + timedelta(hours=hours)
            )
            await audit(
                ctx.conn,
                ctx.user.username,
                "silence_created",
                str(silence.id),
                {"matcher": matcher.named(), "comment": comment, "ends_at": silence.ends_at.isoformat()},
                ctx.client,
            )
    except (MatcherError, OpsError) as exc:
        return await _silences_page(ctx, 422, str(exc), {**values, "comment": comment, "hours": _field(form, "hours")})
    return RedirectResponse("/silences", status_code=303)


@action(Role.SUPERVISOR)
async def expire_silence(ctx: Ctx) -> Response:
    try:
        silence_id = int(ctx.request.path_params["silence_id"])
    except ValueError:
        raise NotFound("no such silence") from None
    async with ctx.conn.transaction():
        silence = await silence_ops.expire_silence(ctx.conn, silence_id, ctx.user.username)
        await audit(ctx.conn, ctx.user.username, "silence_expired", str(silence.id), {}, ctx.client)
    return RedirectResponse("/silences", status_code=303)


# -------------------------------------------------------------------------------------------- reports


@view
async def reports_page(ctx: Ctx) -> Response:
    reports = await stored_reports.list_reports(ctx.conn)
    return ctx.html("reports.html", reports=reports or [])


# A stored report is shown as its own document in a sandbox (a unique origin, no scripts), so
# whatever it holds cannot reach the console's cookies or pages.
REPORT_VIEW_CSP = (
    "sandbox; default-src 'none'; style-src 'unsafe-inline'; img-src data:; font-src data:; frame-ancestors 'none'"
)


async def _report(ctx: Ctx, download: bool) -> Response:
    report, data = await stored_reports.get_report(ctx.conn, ctx.request.path_params["report_id"])
    inline = not download and report.format in ("html", "pdf", "json", "csv")
    media_type = report.media_type if not (inline and report.format == "csv") else "text/plain; charset=utf-8"
    disposition = "inline" if inline else "attachment"
    await audit(
        ctx.conn, ctx.user.username, "report_downloaded" if download else "report_viewed", report.id, {}, ctx.client
    )
    return Response(
        data,
        media_type=media_type,
        headers={
            "Content-Disposition": f'{disposition}; filename="{report.filename}"',
            "Content-Security-Policy": REPORT_VIEW_CSP,
        },
    )


@view
async def report_view(ctx: Ctx) -> Response:
    return await _report(ctx, download=False)


@view
async def report_download(ctx: Ctx) -> Response:
    return await _report(ctx, download=True)


# ---------------------------------------------------------------------------------------------- users


@view
async def users_page(ctx: Ctx) -> Response:
    require(ctx.user, Role.ADMIN, "the users page")
    return ctx.html("users.html", users=await user_ops.list_users(ctx.conn))


@action(Role.ADMIN)
async def user_action(ctx: Ctx) -> Response:
    """An admin disables a user (their sessions end at once) or lifts a lock-out. Adding users and
    setting passwords stay with `hub users` on the command line: no password crosses the browser."""
    username, name = ctx.request.path_params["username"], ctx.request.path_params["action"]
    if name not in ("disable", "unlock"):
        raise NotFound(f"no user action {name!r}")
    if name == "disable" and username == ctx.user.username:
        raise OpsError("you cannot disable yourself; ask another admin, or use `hub users disable`")
    async with ctx.conn.transaction():
        if name == "disable":
            await user_ops.disable_user(ctx.conn, username)
        else:
            await user_ops.unlock_user(ctx.conn, username)
        action_name = {"disable": "user_disabled", "unlock": "user_unlocked"}[name]
        await audit(ctx.conn, ctx.user.username, action_name, username, {}, ctx.client)
    return RedirectResponse("/users", status_code=303)


ROUTES = [
    Route("/health", health),
    Route("/health/live", health_live),
    Route("/", home),
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
    Route("/lang", switch_language, methods=["POST"]),
    Route("/queues", queues_page),
    Route("/events", events),
    Route("/tasks", tasks_page),
    Route("/tasks/{task_id}", task_page, methods=["GET"]),
    Route("/tasks/{task_id}/{action}", task_action, methods=["POST"]),
    Route("/shipments", shipments_page),
    Route("/shipments/{shipment_id:path}", shipment_page),
    Route("/dead-letters", dead_letters_page),
    Route("/dead-letters/{letter_id}", dead_letter_page, methods=["GET"]),
    Route("/dead-letters/{letter_id}/replay", replay, methods=["POST"]),
    Route("/customers", customers_page),
    Route("/customers/{customer_id:path}", customer_page),
    Route("/silences", silences_page, methods=["GET"]),
    Route("/silences", create_silence, methods=["POST"]),
    Route("/silences/{silence_id}/expire", expire_silence, methods=["POST"]),
    Route("/reports", reports_page),
    Route("/reports/{report_id}/view", report_view),
    Route("/reports/{report_id}/download", report_download),
    Route("/users", users_page),
    Route("/users/{username}/{action}", user_action, methods=["POST"]),
]
