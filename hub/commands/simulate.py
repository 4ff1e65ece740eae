"""`hub simulate`: publish realistic traffic (hub/simulator.py) to the three inbound topics, paced."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
import typer
from aiokafka.errors import KafkaError
from rich.console import Console
from rich.table import Table

from hub.commands._common import console, fail, kafka_bootstrap, run, settings
from hub.commands.publish import EXPECT_DEAD_LETTER
from hub.config import Settings
from hub.core.topics import STREAM_BY_NAME
from hub.dev.simulator import (
    DUPLICATE,
    ETA_SLIP,
    EXCEPTION,
    KINDS,
    LATE,
    MALFORMED,
    REPEAT_CONTACT,
    URGENT,
    PlannedMessage,
    customers,
    customers_csv,
    generate,
)
from hub.kafka import KafkaSetupError, ensure_topics, start_producer
from producers.feeds import FEEDS, DeliveryError, Feed

TICK_S = 0.05  # messages due within one tick are sent together, then we sleep until the next tick


@dataclass
class TrafficReport:
    """What was sent (acknowledged by the broker): per stream and per special category."""

    sent: Counter = field(default_factory=Counter)  # kind -> messages
    tags: Counter = field(default_factory=Counter)  # tag -> messages
    elapsed_s: float = 0.0
    behind_s: float = 0.0  # how far the last batch was behind its schedule (the broker or CPU could not keep up)

    @property
    def total(self) -> int:
        return sum(self.sent.values())

    def add(self, batch: Iterable[PlannedMessage]) -> None:
        for message in batch:
            self.sent[message.kind] += 1
            self.tags.update(message.tags)


def topic_of(s: Settings, kind: str) -> str:
    """The topic of a simulator kind (a stream name of hub.core.topics)."""
    return s.topic(STREAM_BY_NAME[kind].topic_setting)


async def publish_traffic(
    s: Settings, messages: Iterable[PlannedMessage], report: TrafficReport | None = None
) -> TrafficReport:
    """Send each message at its `at_offset_s` (in ticks of TICK_S), through the typed feeds on one producer.

    Every message goes out as the simulator rendered it (`publish_raw_many`), so what is published is
    byte for byte what `--dry-run` writes and a duplicate is the very same bytes.
    """
    report = TrafficReport() if report is None else report
    messages = iter(messages)
    first = next(messages, None)  # the simulator warms up on the first message: not on the clock
    if first is None:
        return report
    producer = await start_producer(s, "starting the simulator's producer")
    try:
        feeds = {kind: feed(settings=s, producer=producer) for kind, feed in FEEDS.items()}
        loop = asyncio.get_running_loop()
        began = loop.time()
        for tick, batch in itertools.groupby(
            itertools.chain([first], messages), key=lambda m: int(m.at_offset_s / TICK_S)
        ):
            messages_now = list(batch)
            due = began + tick * TICK_S
            if due > loop.time():
                await asyncio.sleep(due - loop.time())
            report.behind_s = max(0.0, loop.time() - due)
            await _send(feeds, messages_now)
            report.add(messages_now)
        report.elapsed_s = loop.time() - began
    finally:
        await producer.stop()
    return report


async def _send(feeds: dict[str, Feed], batch: list[PlannedMessage]) -> None:
    per_kind = {kind: [(m.event_id, m.key, m.value) for m in batch if m.kind == kind] for kind in KINDS}
    await asyncio.gather(*(feeds[kind].publish_raw_many(items) for kind, items in per_kind.items() if items))


def write_dry_run(s: Settings, messages: Iterable[PlannedMessage], path: Path) -> TrafficReport:
    """One envelope per line, in publishing order: `hub publish FILE` (no --topic) checks and publishes it.

    `topic`, `key` and `value` (the record's bytes as text) are what would be sent; a malformed
    message, which the hub must dead-letter, says so with "expect": "dead_letter"."""
    report = TrafficReport()
    with path.open("wb") as out:
        for m in messages:
            envelope = {
                "topic": topic_of(s, m.kind),
                "key": m.key.decode(),
                "value": m.value.decode(),
                "at_offset_s": m.at_offset_s,
                "event_id": m.event_id,
                "tags": list(m.tags),
            }
            if MALFORMED in m.tags:
                envelope["expect"] = EXPECT_DEAD_LETTER
            out.write(orjson.dumps(envelope, option=orjson.OPT_APPEND_NEWLINE))
            report.add([m])
    return report


def report_tables(s: Settings, report: TrafficReport) -> tuple[Table, Table]:
    streams = Table(title="sent per stream")
    streams.add_column("topic")
    streams.add_column("messages", justify="right")
    for kind in KINDS:
        streams.add_row(topic_of(s, kind), f"{report.sent[kind]:,}")
    streams.add_row("[bold]total[/]", f"[bold]{report.total:,}[/]")
    special = Table(title="special messages")
    special.add_column("category")
    special.add_column("messages", justify="right")
    for label, count in special_rows(report.tags):
        special.add_row(label, f"{count:,}")
    return streams, special


def special_rows(tags: Counter) -> list[tuple[str, int]]:
    rows = [("exceptions (all)", tags[EXCEPTION])]
    rows += [(f"  {tag.split(':', 1)[1]}", n) for tag, n in sorted(tags.items()) if tag.startswith(f"{EXCEPTION}:")]
    rows += [
        ("ETA slips past the promise", tags[ETA_SLIP]),
        ("urgent shipments and orders", tags[URGENT]),
        ("repeat contacts", tags[REPEAT_CONTACT]),
        ("exact duplicates", tags[DUPLICATE]),
        ("late events", tags[LATE]),
        ("malformed (all)", tags[MALFORMED]),
    ]
    rows += [(f"  {tag.split(':', 1)[1]}", n) for tag, n in sorted(tags.items()) if tag.startswith(f"{MALFORMED}:")]
    return rows


def parse_start(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC).replace(microsecond=0)
    try:
        start = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--start {text!r} is not an RFC 3339 timestamp; write it like 2026-03-02T08:00:00+08:00")
    if start.tzinfo is None:
        fail(f"--start {text!r} has no offset; add one, e.g. {text}+08:00 or {text}Z")
    return start


def register(app: typer.Typer) -> None:
    @app.command()
    def simulate(
        rate: float = typer.Option(100.0, "--rate", min=0.1, help="Messages per second"),
        duration: float = typer.Option(60.0, "--duration", min=0.0, help="Seconds to publish for"),
        seed: int = typer.Option(7, "--seed", help="Same seed and --start: the same traffic, byte for byte"),
        exception_rate: float = typer.Option(
            0.10, "--exception-rate", min=0.0, max=1.0, help="Share of shipments that hit an incident"
        ),
        start: str | None = typer.Option(
            None,
            "--start",
            help="Simulated time of the first message (RFC 3339; default now). Event ids depend on it too.",
        ),
        dry_run: Path | None = typer.Option(
            None, "--dry-run", dir_okay=False, help="Write the traffic to this JSON-lines file instead of publishing"
        ),
        customers_file: Path | None = typer.Option(
            None,
            "--customers",
            dir_okay=False,
            help="Also write the customer register the traffic refers to (CSV for `hub customers import`)",
        ),
    ) -> None:
        """Publish realistic traffic: shipment lifecycles, carrier updates with ETAs, calls, incidents.

        About 55% shipment events, 30% carrier updates and 15% calls, with ~1% each of exact
        duplicates, late events and malformed messages (which the hub must dead-letter).
        """
        s = settings()
        first = parse_start(start)
        traffic = generate(seed, rate, duration, start=first, exception_rate=exception_rate)
        if customers_file is not None:
            customers_file.write_text(customers_csv(customers(seed)), encoding="utf-8")
            console.print(
                f"wrote the customer register to {customers_file} "
                f"(load it with `hub customers import {customers_file}`)"
            )
        if dry_run is not None:
            report = write_dry_run(s, traffic, dry_run)
            console.print(
                f"wrote {report.total:,} messages to {dry_run} (nothing published; "
                f"`hub publish --check {dry_run}` checks them, `hub publish {dry_run}` sends them)"
            )
        else:
            kafka_bootstrap(s)  # says what to set when it is missing
            report = TrafficReport()
            try:
                run(_publish(s, traffic, rate, duration, report))
            except KeyboardInterrupt:
                print_report(console, s, report)
                fail(f"interrupted after {report.total:,} messages", code=130)
        print_report(console, s, report)
        console.print(
            f"reproduce with: hub simulate --seed {seed} --start {first.isoformat()} --rate {rate:g} "
            f"--duration {duration:g} --exception-rate {exception_rate:g}",
            soft_wrap=True,
        )


async def _publish(
    s: Settings, traffic: Iterable[PlannedMessage], rate: float, duration: float, report: TrafficReport
) -> None:
    try:
        await ensure_topics(s)
    except (KafkaSetupError, KafkaError, OSError) as exc:  # e.g. no right to create topics: they may exist
        console.print(f"[yellow]note:[/] could not check or create the topics ({exc}); publishing anyway")
    console.print(
        f"publishing {round(rate * duration):,} messages at {rate:g}/s for {duration:g}s to {s.kafka_bootstrap} ..."
    )
    try:
        await publish_traffic(s, traffic, report)
    except KafkaSetupError as exc:
        fail(str(exc))
    except DeliveryError as exc:
        fail(f"{exc}. Check that the broker at {s.kafka_bootstrap} is up and accepts writes to the inbound topics.")
    except (KafkaError, OSError) as exc:
        fail(f"cannot publish to {s.kafka_bootstrap} ({type(exc).__name__}: {exc}); check HUB_KAFKA_BOOTSTRAP")


def print_report(out: Console, s: Settings, report: TrafficReport) -> None:
    streams, special = report_tables(s, report)
    out.print(streams)
    out.print(special)
    if report.elapsed_s:
        achieved = report.total / report.elapsed_s
        out.print(
            f"sent in {report.elapsed_s:.1f}s ({achieved:,.0f} msg/s)"
            + (f"; the last batch was {report.behind_s:.1f}s behind schedule" if report.behind_s > 1 else "")
        )
