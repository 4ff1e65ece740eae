"""`hub users add|passwd|disable|list`: who may log in to `hub console`, with which role and departments."""

from __future__ import annotations

import getpass
import sys

import typer
from rich.table import Table

from hub.commands._common import console, fail
from hub.commands._views import print_json, when, with_database
from hub.ops.db import OpsError
from hub.ops.users import (
    Role,
    add_user,
    audit,
    check_departments,
    check_password,
    check_username,
    disable_user,
    find_user,
    get_user,
    hash_password,
    list_users,
    set_password,
)
from schemas.enums import Department

NAME = "users"
app = typer.Typer(
    help="Console users: add them with a role (viewer, agent, supervisor, admin) and departments, change "
    "passwords, disable them.",
    no_args_is_help=True,
)

PASSWORD_STDIN = typer.Option(
    False, "--password-stdin", help="Read the password from the first line of standard input (for scripts)"
)


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def _password(from_stdin: bool) -> str:
    if from_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    try:
        return check_password(password)
    except OpsError as exc:
        fail(str(exc))


def _checked(check):
    try:
        return check()
    except OpsError as exc:
        fail(str(exc))


@app.command(name="add")
def add_command(
    username: str = typer.Argument(..., help="Log-in name (letters, digits, . _ @ -)"),
    role: Role = typer.Option(
        ...,
        "--role",
        help="viewer reads; agent works tasks of its departments; "
        "supervisor also reassigns, takes over, silences, replays; admin also manages users",
    ),
    department: list[Department] = typer.Option(
        [], "--department", "-d", help="A department the user acts for (repeat for several; agents need one)"
    ),
    password_stdin: bool = PASSWORD_STDIN,
) -> None:
    """Add a console user; the password is asked twice (or read with --password-stdin) and stored as argon2id."""
    name = _checked(lambda: check_username(username))
    departments = _checked(lambda: check_departments(role, [d.value for d in department]))
    if with_database(lambda conn: find_user(conn, name))[0] is not None:  # before asking for a password
        fail(f"user {name} already exists; change their password with `hub users passwd {name}`")
    hashed = hash_password(_password(password_stdin))

    async def go(conn):
        async with conn.transaction():
            user = await add_user(conn, name, role, departments, hashed)
            await audit(conn, _actor(), "user_added", name, {"role": role.value, "departments": departments})
        return user

    user = with_database(go)
    where = ", ".join(user.departments) if user.departments else "every department"
    console.print(f"added {user.username} ({user.role.value}, {where}); they can log in to `hub console` now")


@app.command(name="passwd")
def passwd_command(
    username: str = typer.Argument(..., help="The user"),
    password_stdin: bool = PASSWORD_STDIN,
) -> None:
    """Set a user's password; their sessions end and a lock-out is lifted."""
    with_database(lambda conn: get_user(conn, username))  # an unknown user before asking for a password
    hashed = hash_password(_password(password_stdin))

    async def go(conn):
        async with conn.transaction():
            user = await set_password(conn, username, hashed)
            await audit(conn, _actor(), "password_changed", username, {})
        return user

    user = with_database(go)
    console.print(f"password of {user.username} changed; their open sessions have ended")


@app.command(name="disable")
def disable_command(username: str = typer.Argument(..., help="The user")) -> None:
    """Disable a user: they can no longer log in, and their open sessions end now."""

    async def go(conn):
        async with conn.transaction():
            user = await disable_user(conn, username)
            await audit(conn, _actor(), "user_disabled", username, {})
        return user

    user = with_database(go)
    console.print(f"{user.username} is disabled since {when(user.disabled_at)} UTC; their sessions have ended")


@app.command(name="list")
def list_command(as_json: bool = typer.Option(False, "--json", help="A JSON array instead of a table")) -> None:
    """Console users with their role, departments and state (never their passwords)."""
    users = with_database(list_users)
    if as_json:
        print_json(users)
        return
    if not users:
        console.print("no console users yet: `hub users add NAME --role admin`")
        return
    table = Table(title="Console users", caption="times in UTC", caption_justify="left")
    for column in ("user", "role", "departments", "state", "last login"):
        table.add_column(column)
    for u in users:
        state = "disabled" if u.disabled_at else ("locked" if u.locked_until else "active")
        table.add_row(u.username, u.role.value, ", ".join(u.departments) or "all", state, when(u.last_login_at))
    console.print(table)
