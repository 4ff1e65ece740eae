"""`hub publish --topic T FILE.jsonl`: let a carrier or warehouse test its feed."""

from __future__ import annotations

from pathlib import Path

import typer
from aiokafka.errors import KafkaError

from hub.commands._common import console, err_console, fail, kafka_bootstrap, run, settings
from hub.config import Settings
from hub.core.decoding import Accepted, check_value
from hub.kafka import KafkaSetupError
from producers.feeds import FEEDS, DeliveryError, Feed


def _feed_for(s: Settings, topic: str) -> type[Feed]:
    stream = s.streams.get(topic)
    if stream is None:
        fail(f"unknown topic {topic!r}; the hub reads {', '.join(s.streams)}")
    return FEEDS[stream.name]


def validate_lines(s: Settings, path: Path, topic: str) -> tuple[list[tuple[bytes, bytes, str]], list[str]]:
    """(key, original line bytes, event_id) per valid line, and a line-numbered error report.

    Each line gets the verdict the hub itself would give it (hub.core.decoding.check_value)."""
    model = s.streams[topic].model
    valid, errors = [], []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        verdict = check_value(line, model, s.max_message_bytes, topic)
        if isinstance(verdict, Accepted):
            valid.append((verdict.event.key.encode(), line, verdict.event.event_id))
        else:
            errors.append(f"{path}:{number}: {verdict.reason.value}: {verdict.message}")
    return valid, errors


def register(app: typer.Typer) -> None:
    @app.command()
    def publish(
        file: Path = typer.Argument(..., exists=True, dir_okay=False, help="One JSON event per line"),
        topic: str = typer.Option(..., "--topic", "-t", help="shipment.events, call.logs or carrier.updates"),
    ) -> None:
        """Validate every line against the contract, then publish them as they are, keyed per the contract.

        If any line is invalid, nothing is published and each bad line is reported with its number.
        """
        s = settings()
        feed_class = _feed_for(s, topic)
        valid, errors = validate_lines(s, file, topic)
        if errors:
            for error in errors:
                err_console.print(error)
            fail(f"{len(errors)} invalid line(s) in {file}; nothing was published")
        s = s.model_copy(update={"kafka_bootstrap": kafka_bootstrap(s)})

        async def go() -> int:
            async with feed_class(settings=s, topic=topic) as feed:
                delivered = await feed.publish_raw_many((event_id, key, line) for key, line, event_id in valid)
            return len(delivered)

        try:
            console.print(f"published {run(go())} event(s) from {file} to {topic}")
        except (DeliveryError, KafkaSetupError) as exc:
            fail(str(exc))
        except (KafkaError, OSError) as exc:
            fail(f"cannot publish to {s.kafka_bootstrap} ({type(exc).__name__}: {exc}); check HUB_KAFKA_BOOTSTRAP")
