"""`hub publish [--topic T] [--check] FILE`: let a carrier or warehouse test its feed, then publish it.

Every line gets the verdict the hub itself would give it (hub.core.decoding.check_value: size,
UTF-8, nesting, version, the model), so a file that passes `--check` is a file the hub accepts.
The report quotes the offending values: the file is the integrator's own. The hub's dead-letter
messages never do (they may hold personal data); this command only adds to them, here.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import typer
from aiokafka.errors import KafkaError
from pydantic import ValidationError
from pydantic_core import ErrorDetails

from hub.commands._common import console, err_console, fail, kafka_bootstrap, run, settings
from hub.config import Settings
from hub.core.decoding import Accepted, Rejected, check_value
from hub.kafka import KafkaSetupError, start_producer
from producers.feeds import FEEDS, DeliveryError

EXPECT_DEAD_LETTER = "dead_letter"  # an envelope's "expect": the line is meant to be dead-lettered
ENVELOPE = "an envelope {topic, key, value}"
SHOWN_CHARACTERS = 60


class Line(NamedTuple):
    """One record to check and maybe publish."""

    number: int
    topic: str
    key: bytes | None  # None: the contract's key (bare lines), or an envelope without one
    value: bytes
    expect_dead_letter: bool = False


class Verdict(NamedTuple):
    line: Line
    result: Accepted | Rejected


class FileCheck(NamedTuple):
    """What the hub would make of every line, and what is wrong with the file (the report)."""

    verdicts: list[Verdict]
    problems: list[str]  # report lines, `FILE:N: ...`
    invalid: int  # lines with a problem

    def publishable(self) -> list[tuple[str, str | None, bytes | None, bytes]]:
        """(topic, event_id, key, value) per line, keyed per the contract where the line is valid."""
        items: list[tuple[str, str | None, bytes | None, bytes]] = []
        for line, result in self.verdicts:
            if isinstance(result, Accepted):
                items.append((line.topic, result.event.event_id, result.event.key.encode(), line.value))
            else:
                items.append((line.topic, None, line.key, line.value))
        return items


def check_file(s: Settings, path: Path, topic: str | None) -> FileCheck:
    """Check every line of `path`: bare values for `topic`, or (topic None) envelopes as
    `hub simulate --dry-run` writes them."""
    verdicts: list[Verdict] = []
    problems: list[str] = []
    invalid = 0
    for number, raw in enumerate(path.read_bytes().splitlines(), start=1):
        if not raw.strip():
            continue
        where = f"{path}:{number}"
        if topic is not None:
            line = Line(number, topic, None, raw)
        else:
            line_or_problem = _envelope(s, number, raw)
            if isinstance(line_or_problem, str):
                problems.append(f"{where}: {line_or_problem}")
                invalid += 1
                continue
            line = line_or_problem
        result = check_value(line.value, s.streams[line.topic].model, s.max_message_bytes, line.topic)
        verdicts.append(Verdict(line, result))
        found = _problems(s, line, result, topic is None)
        problems.extend(f"{where}: {problem}" for problem in found)
        invalid += bool(found)
    return FileCheck(verdicts, problems, invalid)


def _envelope(s: Settings, number: int, raw: bytes) -> Line | str:
    try:
        doc = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        return f"not {ENVELOPE} ({exc}); give --topic T for a file of bare messages"
    if not isinstance(doc, dict) or not isinstance(doc.get("topic"), str) or not isinstance(doc.get("value"), str):
        return f"not {ENVELOPE} with text topic and value; give --topic T for a file of bare messages"
    topic, key, expect = doc["topic"], doc.get("key"), doc.get("expect")
    if topic not in s.streams:
        return f"unknown topic {topic!r}; the hub reads {', '.join(s.streams)}"
    if key is not None and not isinstance(key, str):
        return f"the envelope's key must be text or null, not {_show(key)}"
    if expect not in (None, EXPECT_DEAD_LETTER):
        return f'the envelope\'s "expect" can only be "{EXPECT_DEAD_LETTER}", not {_show(expect)}'
    return Line(number, topic, None if key is None else key.encode(), doc["value"].encode(), expect is not None)


def _problems(s: Settings, line: Line, result: Accepted | Rejected, enveloped: bool) -> list[str]:
    if isinstance(result, Accepted):
        if line.expect_dead_letter:
            return [f'marked "expect": "{EXPECT_DEAD_LETTER}", but the hub would accept it']
        if line.key is not None and line.key != result.event.key.encode():
            model = s.streams[line.topic].model
            return [
                f"key {_show(line.key.decode())} is not the contract's key for {line.topic}: "
                f"{model.topic_key} {_show(result.event.key)}"
            ]
        return []
    if line.expect_dead_letter:
        return []
    problems = [f"{result.reason.value}: {explain(s, line, result)}"]
    hints = [f"this looks like a {other} message" for other in fits_elsewhere(s, line)]
    if not enveloped and _is_envelope(line.value):
        hints.append("this line is an envelope as `hub simulate --dry-run` writes it: leave out --topic")
    return problems + [f"hint: {hint}" for hint in hints]


def explain(s: Settings, line: Line, rejected: Rejected) -> str:
    """The hub's verdict, with the offending values quoted where the model names them."""
    if rejected.error_class != "ValidationError":
        return rejected.message  # size, encoding, JSON, depth, version: nothing to quote
    try:
        s.streams[line.topic].model.model_validate(orjson.loads(line.value))
    except ValidationError as exc:
        return "; ".join(describe(error) for error in exc.errors(include_url=False))
    return rejected.message


def describe(error: ErrorDetails) -> str:
    """One validation error, quoting its input: `type 'on_hold' is not one of 'created', ...`."""
    where = ".".join(str(part) for part in error["loc"])
    value = error.get("input")
    message = error["msg"].removeprefix("Value error, ")
    kind = error["type"]
    if not where:
        return message  # about the whole message (a NUL, a missing exception object): no one value to quote
    if kind == "missing":
        return f"{where} is required"
    if kind == "enum":
        return f"{where} {_show(value)} is not one of {error.get('ctx', {}).get('expected', '')}"
    if kind == "timezone_aware":
        return f"{where} {_show(value)} has no offset; write it like 2026-11-27T09:30:00+08:00 or ...Z"
    return f"{where} {_show(value)}: {message}"


def _show(value: Any) -> str:
    if isinstance(value, dict):
        return "(an object)"
    if isinstance(value, list):
        return "(a list)"
    if isinstance(value, str):
        if len(value) > SHOWN_CHARACTERS:
            return f"{value[:SHOWN_CHARACTERS]!r}… ({len(value):,} characters)"
        return repr(value)
    return json.dumps(value)


def fits_elsewhere(s: Settings, line: Line) -> list[str]:
    """The other inbound topics whose contract this value meets."""
    return [
        topic
        for topic, stream in s.streams.items()
        if topic != line.topic and isinstance(check_value(line.value, stream.model, s.max_message_bytes), Accepted)
    ]


def _is_envelope(value: bytes) -> bool:
    try:
        doc = orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    return isinstance(doc, dict) and isinstance(doc.get("topic"), str) and isinstance(doc.get("value"), str)


def summary(path: Path, checked: FileCheck) -> str:
    valid = Counter(line.topic for line, result in checked.verdicts if isinstance(result, Accepted))
    expected = Counter(
        result.reason.value
        for line, result in checked.verdicts
        if line.expect_dead_letter and isinstance(result, Rejected)
    )
    parts = [f"{sum(valid.values()):,} valid" + (f" ({_counts(valid)})" if valid else "")]
    if expected:
        parts.append(f"{sum(expected.values()):,} marked to be dead-lettered, as they will be ({_counts(expected)})")
    parts.append(f"{checked.invalid:,} invalid")
    return f"{path}: " + ", ".join(parts)


def _counts(counter: Counter[str]) -> str:
    return ", ".join(f"{name} {n:,}" for name, n in counter.items())


async def publish_all(s: Settings, items: list[tuple[str, str | None, bytes | None, bytes]]) -> Counter[str]:
    """Send every item to its topic, in file order per topic, on one producer."""
    producer = await start_producer(s, "starting the producer for `hub publish`")
    try:
        per_topic: dict[str, list[tuple[str | None, bytes | None, bytes]]] = {}
        for topic, event_id, key, value in items:
            per_topic.setdefault(topic, []).append((event_id, key, value))
        feeds = {topic: FEEDS[s.streams[topic].name](settings=s, topic=topic, producer=producer) for topic in per_topic}
        sent = await asyncio.gather(*(feeds[t].publish_raw_many(records) for t, records in per_topic.items()))
        return Counter({topic: len(delivered) for topic, delivered in zip(per_topic, sent, strict=True)})
    finally:
        await producer.stop()


def register(app: typer.Typer) -> None:
    @app.command()
    def publish(
        file: Path = typer.Argument(
            ...,
            exists=True,
            dir_okay=False,
            help="One message per line: its JSON value (with --topic), or without --topic an envelope "
            '{"topic", "key", "value"} as `hub simulate --dry-run` writes',
        ),
        topic: str | None = typer.Option(
            None, "--topic", "-t", help="shipment.events, call.logs or carrier.updates: every line is a bare value"
        ),
        check: bool = typer.Option(
            False, "--check", help="Only check every line as the hub would and report; publish nothing, no broker"
        ),
    ) -> None:
        """Check every line exactly as the hub will, then publish them as they are, keyed per the contract.

        If any line is invalid, nothing is published; each bad line is reported with its number, the
        dead-letter reason the hub would give it and the values at fault. With --check nothing is
        published either way (exit status 1 if a line is invalid). An envelope may say
        "expect": "dead_letter" for a line meant to be dead-lettered (the simulator's malformed ones).
        """
        s = settings()
        if topic is not None and topic not in s.streams:
            fail(f"unknown topic {topic!r}; the hub reads {', '.join(s.streams)}")
        checked = check_file(s, file, topic)
        for problem in checked.problems:
            err_console.print(problem, markup=False, highlight=False)
        if check:
            console.print(
                f"{summary(file, checked)}; nothing was published (--check)",
                markup=False,
                highlight=False,
                soft_wrap=True,
            )
            raise typer.Exit(1 if checked.problems else 0)
        if checked.problems:
            fail(f"{checked.invalid} invalid line(s) in {file}; nothing was published")
        s = s.model_copy(update={"kafka_bootstrap": kafka_bootstrap(s)})
        try:
            sent = run(publish_all(s, checked.publishable()))
        except (DeliveryError, KafkaSetupError) as exc:
            fail(str(exc))
        except (KafkaError, OSError) as exc:
            fail(f"cannot publish to {s.kafka_bootstrap} ({type(exc).__name__}: {exc}); check HUB_KAFKA_BOOTSTRAP")
        console.print(f"published {sum(sent.values()):,} event(s) from {file} to {_counts(sent)}")
