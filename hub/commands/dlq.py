"""`hub dlq list|show|replay`: the dead letters (the `dead_letters` register; the topic holds the same records)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import typer
from rich.table import Table
from rich.text import Text

from hub.commands._common import console, err_console, fail, kafka_bootstrap, settings
from hub.commands._views import lines, print_json, short_when, when, with_database
from hub.config import Settings
from hub.core.decoding import Accepted, check_value
from hub.ops.dead_letters import DeadLetter, get_dead_letter, list_dead_letters, readable, replay_dead_letter
from schemas.enums import DeadLetterReason
from schemas.inbound import InboundEvent

NAME = "dlq"
app = typer.Typer(
    help="Dead letters: what the hub could not process, and replaying them once fixed.", no_args_is_help=True
)

VALUE_SHOWN_BYTES = 4096  # of the original value on screen; the full bytes stay in Postgres and on the topic


def _key_text(key: bytes | None) -> str | None:
    shown = readable(key, limit=256)
    if shown is None:
        return None
    return shown.text if shown.encoding == "utf-8" else f"hex:{shown.text}"


def _summary(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "reason": letter.reason,
        "error_class": letter.error_class,
        "message": letter.message,
        "source": {"topic": letter.source_topic, "partition": letter.source_partition, "offset": letter.source_offset},
        "key": _key_text(letter.key),
        "value_size": letter.value_size,
        "created_at": letter.created_at,
        "replayed_at": letter.replayed_at,
    }


def _value_json(letter: DeadLetter) -> dict[str, Any] | None:
    shown = readable(letter.value, VALUE_SHOWN_BYTES)
    if shown is None:
        return None
    return {
        "encoding": shown.encoding,
        "text": shown.text,
        "shown_bytes": shown.shown_bytes,
        "total_bytes": shown.total_bytes,
        "truncated": shown.truncated,
    }


def _list_table(letters: list[DeadLetter]) -> Table:
    table = Table(title="Dead letters (newest first)", caption="times in UTC", caption_justify="left")
    table.add_column("created", no_wrap=True)
    table.add_column("reason / source", overflow="fold")
    table.add_column("message / id", overflow="fold", min_width=20)
    table.add_column("replayed", no_wrap=True)
    for d in letters:
        table.add_row(
            short_when(d.created_at),
            lines(Text(d.reason, style="bold"), f"{d.source_topic} {d.source_partition}@{d.source_offset}"),
            lines(d.message, d.id),
            short_when(d.replayed_at) if d.replayed_at else "-",
        )
    return table


def _details(letter: DeadLetter) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in (
        ("dead letter", letter.id),
        ("reason", letter.reason),
        ("error", f"{letter.error_class}: {letter.message}"),
        ("source", f"{letter.source_topic} partition {letter.source_partition} offset {letter.source_offset}"),
        ("key", _key_text(letter.key) or "(none)"),
        ("created", f"{when(letter.created_at)} UTC"),
        ("replayed", f"{when(letter.replayed_at)} UTC" if letter.replayed_at else "not yet"),
    ):
        grid.add_row(label, value)
    shown = readable(letter.value, VALUE_SHOWN_BYTES)
    if shown is None:
        grid.add_row("value", Text("(none: the record was a tombstone)", style="dim"))
        return grid
    grid.add_row(f"value ({shown.encoding})", Text(shown.text))
    if shown.truncated:
        grid.add_row(
            "",
            Text(
                f"(first {shown.shown_bytes:,} of {shown.total_bytes:,} bytes shown; the full value "
                "is in the dead_letters table and on the dead-letter topic)",
                style="yellow",
            ),
        )
    return grid


@app.command(name="list")
def list_command(
    reason: DeadLetterReason | None = typer.Option(None, "--reason", "-r", help="Only this reason"),
    topic: str | None = typer.Option(None, "--topic", "-t", help="Only dead letters from this source topic"),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="At most this many"),
    as_json: bool = typer.Option(False, "--json", help="A JSON array instead of a table"),
) -> None:
    """Dead letters, newest first."""
    letters = with_database(lambda conn: list_dead_letters(conn, reason and reason.value, topic, limit))
    if as_json:
        print_json([_summary(d) for d in letters])
    elif not letters:
        console.print("no dead letters match")
    else:
        console.print(_list_table(letters))


@app.command(name="show")
def show_command(
    dead_letter_id: str = typer.Argument(..., help="The dead letter's id (from `hub dlq list`)"),
    as_json: bool = typer.Option(False, "--json", help="A JSON object instead of a table"),
) -> None:
    """One dead letter, with its original value (as text if UTF-8, else hex)."""
    letter = with_database(lambda conn: get_dead_letter(conn, dead_letter_id))
    if as_json:
        print_json({**_summary(letter), "value": _value_json(letter)})
    else:
        console.print(_details(letter))


# --- replay ------------------------------------------------------------------------------------


def _model_for(s: Settings, topic: str) -> type[InboundEvent] | None:
    stream = s.streams.get(topic)
    return stream.model if stream else None


def _fixed_value(path: Path, model: type[InboundEvent] | None, max_bytes: int) -> tuple[bytes, InboundEvent | None]:
    """The fixed event as compact JSON, checked against the source topic's contract before anything is sent."""
    try:
        document = orjson.loads(path.read_bytes())
    except orjson.JSONDecodeError as exc:
        fail(f"{path} is not JSON ({exc}); fix it and run again; nothing was published")
    if not isinstance(document, dict):
        fail(f"{path} must hold one JSON object (the fixed event); nothing was published")
    value = orjson.dumps(document)
    if model is None:
        return value, None
    verdict = check_value(value, model, max_bytes)
    if not isinstance(verdict, Accepted):
        fail(
            f"{path} would be dead-lettered again ({verdict.reason.value}: {verdict.message}); "
            "fix it and run again; nothing was published"
        )
    return value, verdict.event


def _replay_key(letter: DeadLetter, event: InboundEvent | None) -> bytes | None:
    """The original key; a record that came without one gets the contract's key of the fixed event."""
    if letter.key is None:
        return event.key.encode() if event is not None else None
    if event is not None and letter.key != event.key.encode():
        err_console.print(
            f"[yellow]note:[/] the original key {_key_text(letter.key)!r} is kept, although the fixed "
            f"event's contract key is {event.key!r}"
        )
    return letter.key


@app.command(name="replay")
def replay_command(
    dead_letter_id: str = typer.Argument(..., help="The dead letter's id (from `hub dlq list`)"),
    file: Path | None = typer.Option(
        None,
        "--file",
        "-f",
        exists=True,
        dir_okay=False,
        help="The fixed event (one JSON object); without it the original bytes are sent",
    ),
) -> None:
    """Publish a dead letter again to its source topic, with the same key; the dead letter is kept.

    With --file, the fixed event is checked against the contract first; nothing is sent if it fails.
    Without --file, the original bytes are republished as they are (useful after a rules or contract fix).
    """
    s = settings()
    s = s.model_copy(update={"kafka_bootstrap": kafka_bootstrap(s)})

    async def go(conn):
        letter = await get_dead_letter(conn, dead_letter_id)
        if file is not None:
            value, event = _fixed_value(file, _model_for(s, letter.source_topic), s.max_message_bytes)
            key = _replay_key(letter, event)
        elif letter.value is None:
            fail(
                f"dead letter {letter.id} has no value (a tombstone): there is nothing to republish; "
                "pass the event to send with --file"
            )
        else:
            value, key = letter.value, letter.key
        if letter.replayed_at is not None:
            err_console.print(
                f"[yellow]note:[/] this dead letter was already replayed at "
                f"{when(letter.replayed_at)} UTC; the hub ignores an event_id it has processed"
            )
        return await replay_dead_letter(conn, s, letter, value, key)

    done = with_database(go)
    console.print(
        f"replayed dead letter {done.dead_letter_id} to {done.topic} partition {done.partition} "
        f"offset {done.offset}; the dead letter is kept (replayed_at {when(done.replayed_at)} UTC)."
    )
    console.print(
        "check the outcome with `hub tasks list` or `hub shipment ID`; if it fails again it shows up "
        "as a new dead letter in `hub dlq list`."
    )
