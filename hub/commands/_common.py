"""Helpers shared by CLI commands: settings, clear errors, async entry."""

from __future__ import annotations

import asyncio
import logging
import shlex
import sys
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, NoReturn

import typer
from pydantic import SecretStr, ValidationError
from pydantic_core import ErrorDetails
from rich.console import Console
from rich.markup import escape

from hub.config import Settings

# aiokafka prints its own connection errors; the commands say what to do instead.
logging.getLogger("aiokafka").setLevel(logging.CRITICAL)

console = Console()
err_console = Console(stderr=True, soft_wrap=True)


def fail(message: str, code: int = 1) -> NoReturn:
    err_console.print(f"[bold red]error:[/] {message}", soft_wrap=True)
    raise typer.Exit(code)


def settings(**overrides: Any) -> Settings:
    """The HUB_* settings (plus `overrides` from command-line options), or a clear error naming the variable."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        fail("invalid settings: " + "; ".join(_problem(e) for e in exc.errors(include_url=False, include_input=False)))


def _problem(error: ErrorDetails) -> str:
    name = "_".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    return f"HUB_{name.upper()}: {message}" if name else message


def database_url(s: Settings, *, for_migrations: bool = False) -> str:
    url = s.migrate_database_url if for_migrations and s.migrate_database_url else s.database_url
    if url is None:
        fail(
            "HUB_DATABASE_URL is not set. Point it at Postgres (postgresql://user@host:5432/db), "
            "or start the embedded runtime with `hub run` and use the address it prints."
        )
    return url.get_secret_value()


def kafka_bootstrap(s: Settings) -> str:
    if not s.kafka_bootstrap:
        fail(
            "HUB_KAFKA_BOOTSTRAP is not set. Point it at Kafka (host:9092), "
            "or start the embedded runtime with `hub run` and use the address it prints."
        )
    return s.kafka_bootstrap


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)


def hub_command() -> str:
    """How to call this hub from another terminal in this folder: `hub` is seldom on its PATH."""
    script = Path(sys.executable).parent / "hub"
    if not script.exists():
        return f"{sys.executable} -m hub"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


def second_terminal_environment(s: Settings, embedded_db: bool) -> str:
    """The `export` line that makes a second terminal's `hub` talk to the same servers.

    Every setting that differs from its default, so topics, group and the embedded broker's
    HUB_KAFKA_IDEMPOTENCE=false come along; secrets only when they belong to the embedded database.
    """
    defaults = Settings.model_construct()
    pairs = []
    for name, value in s.as_environment().items():
        field = name.removeprefix("HUB_").lower()
        secret = isinstance(getattr(s, field), SecretStr)
        if field in _LOCAL_ONLY or (secret and not (embedded_db and field == "database_url")):
            continue
        if getattr(s, field) != getattr(defaults, field):  # typed: 120 and 120.0 are the same setting
            pairs.append(f"{name}={shlex.quote(value)}")
    return "export " + " ".join(pairs)


# Settings of this process alone, which a second terminal's commands must not copy.
_LOCAL_ONLY = {"workers", "http_port", "http_host", "data_dir", "embedded_kafka_port", "embedded_postgres_port"}


def print_second_terminal_hint(s: Settings, embedded_db: bool, commands: list[tuple[str, str]]) -> None:
    """What to paste into a second terminal, then what to run there (no line wrapped: it must paste whole)."""
    export = second_terminal_environment(s, embedded_db)
    console.print(f"from a second terminal, in this folder:\n  [bold]{export}[/]", soft_wrap=True, highlight=False)
    print_commands(commands)


def print_commands(commands: list[tuple[str, str]], hub: str | None = None) -> None:
    """One command a line, exactly as it is typed, then what it shows (never wrapped: each must paste whole)."""
    hub = hub or hub_command()
    width = max(len(f"{hub} {c}") for c, _ in commands)
    lines = [f"  [bold]{escape(f'{hub} {c}'.ljust(width))}[/]   {escape(what)}" for c, what in commands]
    console.print("\n".join(lines), soft_wrap=True, highlight=False)
