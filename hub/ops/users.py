"""The console's users (contract 1.1, "Ops console"): who they are, their role and departments,
their password (argon2id), lock-out after failed logins, and the audit record of what they did.
Shared by `hub users` and `hub console`.

Roles, each with everything the one before may do:
  viewer      reads every page;
  agent       claims, releases, comments on, resolves, cancels and reopens tasks of its departments;
  supervisor  also reassigns, takes tasks over, silences alerts and replays dead letters;
  admin       also manages users.
An agent has at least one department; a supervisor or admin without departments acts on all.
"""

from __future__ import annotations

import functools
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import asyncpg
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from hub.ops.db import NotFound, OpsError
from hub.ops.tasks import HUB_ACTOR
from schemas.enums import Department

MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 256
FAILED_LOGINS_TO_LOCK = 5
LOCK_FOR = timedelta(minutes=15)
USERNAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")

# argon2id with RFC 9106's low-memory parameters (t=3, m=64 MiB, p=4): 0.2-0.4 s per check here.
# Callers run hashing and checking in a thread, never on an event loop.
DEFAULT_HASHER = PasswordHasher()


class Role(StrEnum):
    VIEWER = "viewer"
    AGENT = "agent"
    SUPERVISOR = "supervisor"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return list(Role).index(self)

    def at_least(self, other: Role) -> bool:
        return self.rank >= other.rank


USER_COLUMNS = """
username, role, departments, failed_logins, locked_until, disabled_at, password_changed_at, last_login_at,
created_at, updated_at
"""
INSERT_USER = f"""
INSERT INTO console_users (username, role, departments, password_hash) VALUES ($1, $2, $3, $4)
ON CONFLICT (username) DO NOTHING
RETURNING {USER_COLUMNS}
"""
SELECT_USER = f"SELECT {USER_COLUMNS}, password_hash FROM console_users WHERE username = $1"
SELECT_USERS = f"SELECT {USER_COLUMNS} FROM console_users ORDER BY username"
SET_PASSWORD = f"""
UPDATE console_users SET password_hash = $2, password_changed_at = now(), failed_logins = 0, locked_until = NULL,
                         updated_at = now()
WHERE username = $1
RETURNING {USER_COLUMNS}
"""
DISABLE_USER = f"""
UPDATE console_users SET disabled_at = coalesce(disabled_at, now()), updated_at = now() WHERE username = $1
RETURNING {USER_COLUMNS}
"""
UNLOCK_USER = f"""
UPDATE console_users SET failed_logins = 0, locked_until = NULL, updated_at = now() WHERE username = $1
RETURNING {USER_COLUMNS}
"""
END_SESSIONS = """
UPDATE console_sessions SET ended_at = now(), ended_why = $2 WHERE username = $1 AND ended_at IS NULL
"""
# One more failure; the fifth in a row locks the account (and starts the count again).
FAILED_LOGIN = """
UPDATE console_users
SET failed_logins = CASE WHEN failed_logins + 1 >= $2 THEN 0 ELSE failed_logins + 1 END,
    locked_until = CASE WHEN failed_logins + 1 >= $2 THEN now() + $3::interval ELSE locked_until END,
    updated_at = now()
WHERE username = $1
RETURNING locked_until > now() AS locked, locked_until
"""
GOOD_LOGIN = """
UPDATE console_users SET failed_logins = 0, locked_until = NULL, last_login_at = now(), password_hash = $2
WHERE username = $1
"""
INSERT_AUDIT = """
INSERT INTO console_audit (actor, action, subject, detail, client) VALUES ($1, $2, $3, $4, $5)
"""


@dataclass(frozen=True)
class User:
    username: str
    role: Role
    departments: tuple[str, ...]  # empty: all (never for an agent)
    failed_logins: int
    locked_until: datetime | None
    disabled_at: datetime | None
    password_changed_at: datetime
    last_login_at: datetime | None
    created_at: datetime
    updated_at: datetime

    def can(self, role: Role) -> bool:
        return self.disabled_at is None and self.role.at_least(role)

    def covers(self, department: str) -> bool:
        """Whether tasks of `department` are this user's to act on."""
        return not self.departments or department in self.departments


def _user(row: asyncpg.Record) -> User:
    values = {k: row[k] for k in row.keys() if k != "password_hash"}  # noqa: SIM118 - asyncpg.Record
    values["role"] = Role(values["role"])
    values["departments"] = tuple(values["departments"])
    return User(**values)


def check_username(name: str) -> str:
    name = name.strip()
    if not USERNAME.match(name):
        raise OpsError(
            f"user name {name!r}: 1-64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit"
        )
    if name.lower() == HUB_ACTOR:
        raise OpsError(f"'{HUB_ACTOR}' is how task histories name the hub itself; choose another user name")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD_LENGTH:
        raise OpsError(f"the password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise OpsError(f"the password may have at most {MAX_PASSWORD_LENGTH} characters")
    return password


def check_departments(role: Role, departments: list[str] | tuple[str, ...]) -> list[str]:
    known = {d.value for d in Department}
    unknown = [d for d in departments if d not in known]
    if unknown:
        raise OpsError(f"unknown department(s) {', '.join(unknown)}: one of {', '.join(sorted(known))}")
    if role == Role.AGENT and not departments:
        raise OpsError("an agent acts on the tasks of its departments: give at least one --department")
    return sorted(set(departments))


def hash_password(password: str, hasher: PasswordHasher = DEFAULT_HASHER) -> str:
    """argon2id; slow on purpose (run it in a thread from async code)."""
    return hasher.hash(check_password(password))


@functools.cache
def _dummy_hash(hasher: PasswordHasher) -> str:
    """A hash checked when the user does not exist, so that a login for an unknown name takes as
    long as one for a known name (no user enumeration by timing)."""
    return hasher.hash(secrets.token_urlsafe(24))


def verify_password(stored: str | None, password: str, hasher: PasswordHasher = DEFAULT_HASHER) -> bool:
    try:
        return hasher.verify(stored or _dummy_hash(hasher), password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def rehashed(stored: str, password: str, hasher: PasswordHasher = DEFAULT_HASHER) -> str:
    """The stored hash, or a new one when the hasher's parameters have changed since."""
    return hasher.hash(password) if hasher.check_needs_rehash(stored) else stored


# ------------------------------------------------------------------------------------ the register


async def add_user(
    conn: asyncpg.Connection, username: str, role: Role, departments: list[str], password_hash: str
) -> User:
    username = check_username(username)
    departments = check_departments(role, departments)
    row = await conn.fetchrow(INSERT_USER, username, role.value, departments, password_hash)
    if row is None:
        raise OpsError(f"user {username} already exists; change their password with `hub users passwd {username}`")
    return _user(row)


async def get_user(conn: asyncpg.Connection, username: str) -> tuple[User, str]:
    """The user and their password hash."""
    row = await conn.fetchrow(SELECT_USER, username)
    if row is None:
        raise NotFound(f"no console user {username!r}; list them with `hub users list`")
    return _user(row), row["password_hash"]


async def find_user(conn: asyncpg.Connection, username: str) -> tuple[User | None, str | None]:
    row = await conn.fetchrow(SELECT_USER, username)
    return (None, None) if row is None else (_user(row), row["password_hash"])


async def list_users(conn: asyncpg.Connection) -> list[User]:
    return [_user(r) for r in await conn.fetch(SELECT_USERS)]


async def set_password(conn: asyncpg.Connection, username: str, password_hash: str) -> User:
    """A new password: the lock-out is lifted and every session of the user ends."""
    async with conn.transaction():
        row = await conn.fetchrow(SET_PASSWORD, username, password_hash)
        if row is None:
            raise NotFound(f"no console user {username!r}; add it with `hub users add {username} --role ROLE`")
        await conn.execute(END_SESSIONS, username, "password changed")
    return _user(row)


async def disable_user(conn: asyncpg.Connection, username: str) -> User:
    """The user can no longer log in, and their open sessions end now."""
    async with conn.transaction():
        row = await conn.fetchrow(DISABLE_USER, username)
        if row is None:
            raise NotFound(f"no console user {username!r}")
        await conn.execute(END_SESSIONS, username, "user disabled")
    return _user(row)


async def unlock_user(conn: asyncpg.Connection, username: str) -> User:
    """Lift a lock-out before its 15 minutes are over (the failure count starts again)."""
    row = await conn.fetchrow(UNLOCK_USER, username)
    if row is None:
        raise NotFound(f"no console user {username!r}")
    return _user(row)


# ---------------------------------------------------------------------------------- logging in


@dataclass(frozen=True)
class FailedLogin:
    locked: bool
    locked_until: datetime | None


async def record_failed_login(conn: asyncpg.Connection, username: str) -> FailedLogin:
    row = await conn.fetchrow(FAILED_LOGIN, username, FAILED_LOGINS_TO_LOCK, LOCK_FOR)
    if row is None:
        return FailedLogin(False, None)
    return FailedLogin(bool(row["locked"]), row["locked_until"])


async def record_good_login(conn: asyncpg.Connection, username: str, password_hash: str) -> None:
    await conn.execute(GOOD_LOGIN, username, password_hash)


async def audit(
    conn: asyncpg.Connection,
    actor: str,
    action: str,
    subject: str | None = None,
    detail: dict[str, Any] | None = None,
    client: str | None = None,
) -> None:
    """Append to console_audit (who did what, to what, from where). Needs the jsonb codec of
    hub.ops.db.database (every ops connection has it)."""
    await conn.execute(INSERT_AUDIT, actor, action, subject, detail or {}, client)
