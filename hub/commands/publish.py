"""`hub publish --topic T FILE.jsonl`: let a carrier or warehouse test its feed."""

from __future__ import annotations

from pathlib import Path

import orjson
import typer
from pydantic import ValidationError

from hub.commands._common import console, err_console, fail, kafka_bootstrap, run, settings
from hub.decoding import describe_validation_error
from producers.feeds import FEEDS, DeliveryError, Feed


def _feed_for(topic: str) -> type[Feed]:
    s = settings()
    for feed in FEEDS:
        if getattr(s, feed.topic_setting) == topic:
            return feed
    names = ", ".join(getattr(s, f.topic_setting) for f in FEEDS)
    fail(f"unknown topic {topic!r}; the hub reads {names}")


def validate_lines(path: Path, feed: type[Feed]) -> tuple[list[tuple[bytes, bytes, str]], list[str]]:
    """(key, original line bytes, event_id) per valid line, and a line-numbered error report."""
    valid, errors = [], []
    for number, line in enumerate(path.read_bytes().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            event = feed.model.model_validate(orjson.loads(line))
        except orjson.JSONDecodeError as exc:
            errors.append(f"{path}:{number}: not JSON: {exc}")
        except ValidationError as exc:
            errors.append(f"{path}:{number}: {describe_validation_error(exc)}")
        else:
            valid.append((event.key.encode(), line, event.event_id))
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
        feed_class = _feed_for(topic)
        valid, errors = validate_lines(file, feed_class)
        if errors:
            for error in errors:
                err_console.print(error)
            fail(f"{len(errors)} invalid line(s) in {file}; nothing was published")
        s = settings().model_copy(update={"kafka_bootstrap": kafka_bootstrap(settings())})

        async def go() -> int:
            async with feed_class(settings=s, topic=topic) as feed:
                delivered = await feed.publish_raw_many((event_id, key, line) for key, line, event_id in valid)
            return len(delivered)

        try:
            console.print(f"published {run(go())} event(s) from {file} to {topic}")
        except DeliveryError as exc:
            fail(str(exc))
