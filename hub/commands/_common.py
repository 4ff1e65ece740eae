"""Helpers shared by CLI commands: settings, clear errors, async entry."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, NoReturn

import typer
from pydantic import ValidationError
from rich.console import Console

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


def _problem(error: dict) -> str:
    name = "_".join(str(part) for part in error["loc"])
    message = error["msg"].removeprefix("Value error, ")
    return f"HUB_{name.upper()}: {message}" if name else message


def database_url(s: Settings, *, for_migrations: bool = False) -> str:
    url = (s.migrate_database_url if for_migrations and s.migrate_database_url else s.database_url)
    if url is None:
        fail("HUB_DATABASE_URL is not set. Point it at Postgres (postgresql://user@host:5432/db), "
             "or start the embedded runtime with `hub run` and use the address it prints.")
    return url.get_secret_value()


def kafka_bootstrap(s: Settings) -> str:
    if not s.kafka_bootstrap:
        fail("HUB_KAFKA_BOOTSTRAP is not set. Point it at Kafka (host:9092), "
             "or start the embedded runtime with `hub run` and use the address it prints.")
    return s.kafka_bootstrap


def run(coro: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coro)
