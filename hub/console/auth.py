"""Who is asking: server-side sessions, CSRF tokens, log-in with lock-out, and role checks.

- The session cookie (`hub_console`) holds a random token; Postgres keeps only its SHA-256 with
  the user, a CSRF token, and when it was last used. A session ends on logout, when its user is
  disabled or changes password, and after 12 h without a request. Cookie: HttpOnly,
  SameSite=Strict, Path=/, Secure whenever the request came over https (directly or, from a
  trusted proxy, per X-Forwarded-Proto).
- CSRF: every POST carries a token (form field `csrf`, or header `X-CSRF-Token`). Logged in, it
  is the session's token; on the login page (no session yet) it is an HMAC of a random cookie
  (`hub_pre`) under HUB_CONSOLE_SECRET. Both compared in constant time.
- Passwords are checked with argon2id in a worker thread (0.2-0.4 s of CPU each: never on the
  event loop, which serves every live page). Five failures in a row lock the account for 15
  minutes; an unknown name costs the same time as a known one.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import asyncpg
from argon2 import PasswordHasher
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from hub.ops.users import (
    DEFAULT_HASHER,
    Role,
    User,
    audit,
    find_user,
    record_failed_login,
    record_good_login,
    rehashed,
    verify_password,
)

SESSION_COOKIE = "hub_console"
PRE_SESSION_COOKIE = "hub_pre"
LANG_COOKIE = "hub_lang"
IDLE_TIMEOUT = timedelta(hours=12)
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"

USER_COLUMNS = """
u.username, u.role, u.departments, u.failed_logins, u.locked_until, u.disabled_at, u.password_changed_at,
u.last_login_at, u.created_at, u.updated_at
"""
INSERT_SESSION = """
INSERT INTO console_sessions (token_hash, username, csrf_token, client) VALUES ($1, $2, $3, $4)
"""
# The session, if alive (not ended, user enabled, used within the idle timeout), and whether its
# last use is old enough to record again: a write per minute per session, not per request.
SELECT_SESSION = f"""
SELECT s.csrf_token, s.last_seen_at < now() - interval '1 minute' AS stale, {USER_COLUMNS}
FROM console_sessions AS s JOIN console_users AS u ON u.username = s.username
WHERE s.token_hash = $1 AND s.ended_at IS NULL AND u.disabled_at IS NULL AND s.last_seen_at > now() - $2::interval
"""
TOUCH_SESSION = "UPDATE console_sessions SET last_seen_at = now() WHERE token_hash = $1 AND ended_at IS NULL"
SESSION_ALIVE = """
SELECT EXISTS (
    SELECT 1 FROM console_sessions s JOIN console_users u USING (username)
    WHERE s.token_hash = $1 AND s.ended_at IS NULL AND u.disabled_at IS NULL AND s.last_seen_at > now() - $2::interval
)
"""
END_SESSION = """
UPDATE console_sessions SET ended_at = now(), ended_why = $2 WHERE token_hash = $1 AND ended_at IS NULL
RETURNING username
"""


class Forbidden(Exception):
    """The user may not do this (role or department); the message says why."""


@dataclass(frozen=True)
class Session:
    user: User
    csrf_token: str
    token_hash: bytes


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def client_address(request: Request) -> str | None:
    """The client's address (the proxy's X-Forwarded-For is applied only for trusted proxies)."""
    return request.client.host if request.client else None


def is_https(request: Request) -> bool:
    return request.url.scheme == "https"


def set_cookie(response: Response, request: Request, name: str, value: str, max_age: int | None = None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=is_https(request),
    )


def clear_cookie(response: Response, request: Request, name: str) -> None:
    response.delete_cookie(name, path="/", httponly=True, samesite="strict", secure=is_https(request))


# ----------------------------------------------------------------------------------------- sessions


async def current_session(conn: asyncpg.Connection, request: Request) -> Session | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token or len(token) > 128:
        return None
    digest = token_hash(token)
    row = await conn.fetchrow(SELECT_SESSION, digest, IDLE_TIMEOUT)
    if row is None:
        return None
    if row["stale"]:
        await conn.execute(TOUCH_SESSION, digest)
    values = {k: row[k] for k in row.keys() if k not in ("csrf_token", "stale")}  # noqa: SIM118 - asyncpg.Record
    values["role"] = Role(values["role"])
    values["departments"] = tuple(values["departments"])
    return Session(User(**values), row["csrf_token"], digest)


async def session_alive(conn: asyncpg.Connection, digest: bytes) -> bool:
    return bool(await conn.fetchval(SESSION_ALIVE, digest, IDLE_TIMEOUT))


async def start_session(conn: asyncpg.Connection, user: User, client: str | None) -> tuple[str, str]:
    """A new session for the user: (cookie token, CSRF token)."""
    token, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    await conn.execute(INSERT_SESSION, token_hash(token), user.username, csrf, client)
    return token, csrf


async def end_session(conn: asyncpg.Connection, request: Request, why: str) -> str | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    username: str | None = await conn.fetchval(END_SESSION, token_hash(token), why)
    return username


# --------------------------------------------------------------------------------------------- CSRF


class Csrf:
    """Tokens for forms shown before there is a session (the login page, its language switch)."""

    def __init__(self, secret: bytes) -> None:
        self._secret = secret

    def pre_session_token(self, nonce: str) -> str:
        return hmac.new(self._secret, b"pre-session:" + nonce.encode(), hashlib.sha256).hexdigest()

    def check(self, request: Request, sent: str | None, session: Session | None) -> bool:
        if not sent:
            return False
        if session is not None:
            return hmac.compare_digest(sent.encode(), session.csrf_token.encode())
        nonce = request.cookies.get(PRE_SESSION_COOKIE)
        return bool(nonce) and hmac.compare_digest(sent.encode(), self.pre_session_token(nonce or "").encode())


async def sent_csrf_token(request: Request) -> str | None:
    header = request.headers.get(CSRF_HEADER)
    if header:
        return header
    if request.headers.get("content-type", "").split(";")[0].strip() not in (
        "application/x-www-form-urlencoded",
        "multipart/form-data",
    ):
        return None
    value = (await request.form()).get(CSRF_FIELD)
    return value if isinstance(value, str) else None


# ------------------------------------------------------------------------------------------ logging in


@dataclass(frozen=True)
class LoginResult:
    user: User | None
    problem: str | None  # 'wrong', 'locked', 'disabled'
    locked_until: datetime | None = None


async def log_in(
    conn: asyncpg.Connection, username: str, password: str, client: str | None, hasher: PasswordHasher = DEFAULT_HASHER
) -> LoginResult:
    """Check the password (in a thread), count failures, lock after five; audit every outcome."""
    username = username.strip()[:64]
    user, stored = await find_user(conn, username) if username else (None, None)
    if user is not None and user.locked_until is not None:
        now = await conn.fetchval("SELECT now()")
        if user.locked_until > now:
            await audit(conn, username, "login_refused_locked", username, {}, client)
            return LoginResult(None, "locked", user.locked_until)
    good = await run_in_threadpool(verify_password, stored, password, hasher)
    if not good or user is None or stored is None:
        if user is None:
            await audit(conn, username or "-", "login_failed", username or None, {"known_user": False}, client)
            return LoginResult(None, "wrong")
        failed = await record_failed_login(conn, username)
        await audit(conn, username, "locked" if failed.locked else "login_failed", username, {}, client)
        if failed.locked:
            return LoginResult(None, "locked", failed.locked_until)
        return LoginResult(None, "wrong")
    if user.disabled_at is not None:
        await audit(conn, username, "login_refused_disabled", username, {}, client)
        return LoginResult(None, "disabled")
    new_hash = await run_in_threadpool(rehashed, stored, password, hasher)
    await record_good_login(conn, username, new_hash)
    await audit(conn, username, "login", username, {}, client)
    return LoginResult(user, None)


# ------------------------------------------------------------------------------------- what a role may do

# Task actions and the least role each needs; the task's department must be the user's too.
TASK_ACTIONS: dict[str, Role] = {
    "claim": Role.AGENT,
    "release": Role.AGENT,
    "comment": Role.AGENT,
    "resolve": Role.AGENT,
    "cancel": Role.AGENT,
    "reopen": Role.AGENT,
    "takeover": Role.SUPERVISOR,
    "reassign": Role.SUPERVISOR,
}


def require(user: User, role: Role, what: str) -> None:
    if not user.can(role):
        raise Forbidden(f"{what} needs the role {role.value} or above; {user.username} is {user.role.value}")


def require_department(user: User, department: str, what: str) -> None:
    if not user.covers(department):
        raise Forbidden(
            f"{what}: the task belongs to {department}; {user.username} acts for {', '.join(user.departments)}"
        )
