"""`hub tick [--now T]`: evaluate the clock once, as of T, and print what fired.

How tests, backfills and a person asking "what would fire tomorrow morning" use the clock. It
takes the tick lock every evaluator takes, so it runs between two ticks of a running `hub run` and
a timer fires once whoever evaluates it; `--now` is this command's time only, never a running hub's.
"""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import typer
from rich.table import Table

from hub.clock.engine import Clock, TickReport
from hub.clock.lock import ClockBusy, locked_tick
from hub.commands._common import console, database_url, err_console, fail, run, settings
from hub.commands._views import print_json
from hub.config import Settings
from hub.core.rules import RulesError, load_rules
from hub.ops.db import OpsError, database

LOCK_WAIT_S = 60.0


def parse_now(text: str | None) -> datetime:
    if text is None:
        return datetime.now(UTC)
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        fail(f"--now {text!r} is not an RFC 3339 timestamp; write it like 2026-12-05T08:00:00+08:00")
    if moment.tzinfo is None:
        fail(f"--now {text!r} has no offset; add one, e.g. {text}+08:00 or {text}Z")
    return moment


async def _locked_tick(conn: asyncpg.Connection, now: datetime, clock: Clock) -> TickReport:
    def waiting() -> None:
        err_console.print("waiting for another evaluator of the clock (a running hub, or another hub tick) ...")

    try:
        return await locked_tick(conn, now, clock, wait_s=LOCK_WAIT_S, on_wait=waiting)
    except ClockBusy as exc:
        fail(f"{exc}; try again")


def render(report: TickReport, s: Settings) -> Table:
    zone = s.zone
    table = Table(
        title=f"hub tick as of {report.now.astimezone(zone):%Y-%m-%d %H:%M:%S %Z} ({s.timezone}): "
        f"{len(report.fired)} timer(s) fired",
        caption=f"due: the moment each timer was due, in {s.timezone}",
        caption_justify="left",
    )
    table.add_column("due", no_wrap=True)
    table.add_column("timer", no_wrap=True)
    table.add_column("what", overflow="fold")
    for firing in report.fired:
        table.add_row(f"{firing.due_at.astimezone(zone):%m-%d %H:%M}", firing.timer.value, firing.summary)
    return table


def register(app: typer.Typer) -> None:
    @app.command(name="tick")
    def tick_command(
        now: str | None = typer.Option(
            None, "--now", help="Evaluate as of this moment (RFC 3339 with offset) [default: now]"
        ),
        as_json: bool = typer.Option(False, "--json", help="What fired as JSON instead of a table"),
    ) -> None:
        """Evaluate the clock's timers once (SLA warnings and breaches, stale shipments, overdue deliveries,
        key-account reviews, surveys, monthly statements) and print what fired; its alerts go out
        through the outbox."""
        s = settings()
        moment = parse_now(now)
        try:
            rules = load_rules(s.rules_file)
        except RulesError as exc:
            fail(f"rules file refused: {exc}")
        clock = Clock.of(s, rules)
        dsn = database_url(s)

        async def go() -> TickReport:
            async with database(dsn, decode_jsonb=False) as conn:
                report = await _locked_tick(conn, moment, clock)
                while report.more:  # a long sweep (the month's statements) goes on to its end
                    report = report.then(await _locked_tick(conn, moment, clock))
                return report

        try:
            report = run(go())
        except OpsError as exc:
            fail(str(exc))
        if as_json:
            print_json(
                {
                    "now": report.now,
                    "fired": [f._asdict() for f in report.fired],
                    "alerts": report.alerts,
                    "tasks": report.tasks,
                    "notifications": report.notifications,
                    "lag_s": report.lag_s,
                    "duration_ms": round(report.duration_s * 1000, 1),
                }
            )
            return
        console.print(render(report, s))
        console.print(
            f"{report.alerts} alert(s) queued in the outbox (a running `hub run` publishes them), "
            f"{report.tasks} task(s), {report.notifications} notification(s); "
            f"tick took {report.duration_s * 1000:.0f} ms"
        )
