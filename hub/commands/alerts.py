"""`hub alerts watch`: a live terminal view of the handler queues and of overdue tasks."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import typer
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from hub.commands._common import console, database_url, fail, kafka_bootstrap, run, settings
from hub.commands._views import duration, severity_text, short_when, when
from hub.config import Settings
from hub.core.topics import Queue, parse_queue
from hub.ops.alert_stream import AlertBoard, AlertStream
from hub.ops.db import OpsError, database
from hub.ops.tasks import OverdueCount, overdue_by_department
from schemas.enums import AlertKind, Severity
from schemas.outbound import Alert

NAME = "alerts"
app = typer.Typer(help="The handler queues (alerts.*), live.", no_args_is_help=True)

OVERDUE_REFRESH_S = 10.0  # Postgres is asked this often; alerts arrive as they come
POLL_S = 0.5
NEWEST_KEPT = 20


def _queue_option(text: str | None) -> Queue | None:
    if text is None:
        return None
    try:
        return parse_queue(text)
    except ValueError:
        raise typer.BadParameter(
            f"{text!r} is no handler queue; use one of {', '.join(q.value for q in Queue)}"
        ) from None


@dataclass
class Screen:
    """Everything one frame shows; rendering it is pure."""

    board: AlertBoard
    overdue: list[OverdueCount] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    at: datetime = field(default_factory=lambda: datetime.now(UTC))


def _counts_table(screen: Screen) -> Table:
    board = screen.board
    queues = [board.queue] if board.queue else [q.value for q in Queue]
    severities = [board.severity] if board.severity else [s.value for s in Severity]
    table = Table(title="Alerts per queue and severity")
    table.add_column("queue", no_wrap=True)
    for severity in severities:
        table.add_column(severity_text(severity), justify="right")
    table.add_column("total", justify="right", style="bold")
    for queue in queues:
        row = [board.counts[(queue, s)] for s in severities]
        table.add_row(queue, *(str(n) for n in row), str(sum(row)))
    return table


def sla_text(alert: Alert) -> Text:
    """What the clock's SLA alerts add to a row: "warning", "breach L2 → manager"; empty for others."""
    if alert.kind is AlertKind.SLA_WARNING:
        return Text("warning", style="dark_orange")
    if alert.kind is AlertKind.SLA_BREACH or alert.level is not None:
        to = f" → {alert.escalated_to.value}" if alert.escalated_to else ""
        return Text(f"breach L{alert.level or '?'}{to}", style="bold red" if alert.level == 2 else "red")
    return Text("")


def _newest_table(screen: Screen) -> Table:
    table = Table(title=f"Newest alerts (up to {screen.board.keep})", caption="times in UTC", caption_justify="left")
    table.add_column("created", no_wrap=True)
    table.add_column("sev", no_wrap=True)
    table.add_column("queue", no_wrap=True)
    table.add_column("summary", min_width=20)
    table.add_column("due", no_wrap=True)
    for seen in screen.board.newest:
        a = seen.alert
        style = "bold red" if a.due_at < screen.at else ""
        sla = sla_text(a)  # in the summary's cell, not a column of its own: 80 columns must fit
        table.add_row(
            short_when(a.created_at),
            severity_text(a.severity.value),
            seen.queue,
            Text.assemble(sla, ": ", a.summary) if sla else a.summary,
            Text(short_when(a.due_at), style=style),
            style="dim" if a.severity is Severity.P4 else None,
        )
    return table


def _overdue_table(screen: Screen) -> RenderableType:
    if not screen.overdue:
        return Text("no overdue tasks", style="green")
    table = Table(title="Overdue tasks (open or in progress, past due)")
    table.add_column("department", no_wrap=True)
    table.add_column("tasks", justify="right", style="bold red")
    table.add_column("oldest due", no_wrap=True)
    for row in screen.overdue:
        table.add_row(
            row.department,
            str(row.tasks),
            f"{short_when(row.oldest_due_at)} ({duration(screen.at - row.oldest_due_at)} overdue)",
        )
    return table


def render(screen: Screen) -> Group:
    board = screen.board
    filters = [f"queue {board.queue}" if board.queue else "", f"severity {board.severity}" if board.severity else ""]
    shown = ", ".join(f for f in filters if f)
    header = Text(
        f"hub alerts at {when(screen.at)} UTC: {board.total} distinct alert(s)" + (f" ({shown})" if shown else ""),
        style="bold",
    )
    parts: list[RenderableType] = [header, _counts_table(screen)]
    parts.append(_newest_table(screen) if board.newest else Text("no alerts yet", style="dim"))
    parts.append(_overdue_table(screen))
    parts += [Text(note, style="yellow") for note in screen.notes]
    return Group(*parts)


def export_text(renderable: RenderableType, path: Path, width: int) -> None:
    recorder = Console(record=True, file=io.StringIO(), width=width)
    recorder.print(renderable)
    path.write_text(recorder.export_text(), encoding="utf-8")


# --- reading -----------------------------------------------------------------------------------


def _stream_notes(stream: AlertStream, once: bool) -> list[str]:
    notes = []
    if stream.missing_topics:
        notes.append(
            f"topic(s) {', '.join(stream.missing_topics)} do not exist yet: has the hub run against "
            "this broker? (check HUB_TOPIC_* and HUB_KAFKA_BOOTSTRAP)"
        )
    if stream.unreadable:
        notes.append(f"{stream.unreadable} record(s) on the alert topics are not alerts and were skipped")
    if once and not stream.from_beginning:
        notes.append("only alerts newer than this run are read: add --from-beginning to include earlier ones")
    return notes


async def _snapshot(stream_settings: Settings, dsn: str, board: AlertBoard, from_beginning: bool) -> Screen:
    async with AlertStream(stream_settings, from_beginning) as stream, database(dsn) as conn:
        board.add(await stream.drain())
        now = datetime.now(UTC)
        return Screen(board, await overdue_by_department(conn, now), _stream_notes(stream, once=True), now)


async def _overdue_or_note(conn: asyncpg.Connection) -> tuple[list[OverdueCount] | None, str | None]:
    """A live screen outlives a Postgres hiccup: it says so and keeps the last counts."""
    try:
        return await overdue_by_department(conn, datetime.now(UTC)), None
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
        return (
            None,
            f"overdue tasks not refreshed ({type(exc).__name__}); is Postgres up? Restart the watch if it stays",
        )


async def _live(
    stream_settings: Settings, dsn: str, board: AlertBoard, from_beginning: bool, last: list[Screen]
) -> None:
    """Redraw as alerts arrive until Ctrl-C; `last` keeps the latest frame for --export-text."""
    async with AlertStream(stream_settings, from_beginning) as stream, database(dsn) as conn:
        overdue, asked, db_note = await overdue_by_department(conn, datetime.now(UTC)), time.monotonic(), None
        last.append(Screen(board, overdue, _stream_notes(stream, once=False)))
        with Live(render(last[-1]), console=console, refresh_per_second=4) as live:
            while True:
                board.add(await stream.poll(POLL_S))
                if time.monotonic() - asked > OVERDUE_REFRESH_S:
                    fresh, db_note = await _overdue_or_note(conn)
                    overdue, asked = fresh if fresh is not None else overdue, time.monotonic()
                notes = _stream_notes(stream, once=False) + ([db_note] if db_note else [])
                last[-1] = Screen(board, overdue, notes)
                live.update(render(last[-1]))


@app.command(name="watch")
def watch_command(
    queue: str | None = typer.Option(
        None,
        "--queue",
        "-q",
        callback=_queue_option,
        help=f"Only this handler queue: {', '.join(q.value for q in Queue)}",
    ),
    severity: Severity | None = typer.Option(None, "--severity", "-s", help="Only this severity"),
    once: bool = typer.Option(False, "--once", help="Read what is there, show one snapshot and exit"),
    from_beginning: bool = typer.Option(False, "--from-beginning", help="Include alerts already on the topics"),
    export: Path | None = typer.Option(
        None, "--export-text", dir_okay=False, metavar="FILE", help="Also save the (last) screen as plain text"
    ),
) -> None:
    """Newest alerts with severity colours, counts per queue and severity, and overdue tasks per department.

    Reads every handler queue's topic on every partition without joining a consumer group (nothing is committed).
    SLA alerts (alerts.escalations) show their level and who they went to, e.g. "breach L2 → manager".
    Re-sent copies of an alert are dropped by alert_id. Ctrl-C stops.
    """
    s = settings()
    s = s.model_copy(update={"kafka_bootstrap": kafka_bootstrap(s)})
    dsn = database_url(s)
    board = AlertBoard(keep=NEWEST_KEPT, queue=queue, severity=severity and severity.value)
    last: list[Screen] = []
    try:
        if once:
            last.append(run(_snapshot(s, dsn, board, from_beginning)))
            console.print(render(last[-1]))
        else:
            run(_live(s, dsn, board, from_beginning, last))
    except KeyboardInterrupt:
        pass
    except OpsError as exc:
        fail(str(exc))
    if export is not None and last:
        export_text(render(last[-1]), export, console.width)
        console.print(f"screen saved as text to {export}")
