"""`hub tasks list|show|claim|resolve`: the coordination tasks the hub opened for each department.

Also home of the small view helpers the other ops commands share (times, severities, JSON).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import orjson
import typer
from rich.table import Table
from rich.text import Text

from hub.commands._common import console, database_url, fail, run, settings
from hub.ops import OpsError, Task, TaskFilter, claim_task, database, get_task, list_tasks, resolve_task
from schemas.enums import Department, Severity, TaskStatus

NAME = "tasks"
app = typer.Typer(help="Coordination tasks: list, inspect, claim and resolve them.", no_args_is_help=True)

T = TypeVar("T")

SEVERITY_STYLE = {"P1": "bold red", "P2": "dark_orange", "P3": "blue", "P4": "dim"}
STATUS_STYLE = {"open": "bold", "in_progress": "cyan", "done": "green", "cancelled": "dim"}


# --- shared view helpers -----------------------------------------------------------------------


def with_database(work: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
    """Run `work` on one connection to HUB_DATABASE_URL; an OpsError ends the command with its advice."""
    dsn = database_url(settings())

    async def go() -> T:
        async with database(dsn) as conn:
            return await work(conn)

    try:
        return run(go())
    except OpsError as exc:
        fail(str(exc))


def print_json(value: Any) -> None:
    """One JSON document on stdout, timestamps in RFC 3339 (never wrapped or coloured by rich)."""
    typer.echo(orjson.dumps(value, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS).decode())


def when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M")


def short_when(moment: datetime | None) -> str:
    """For table cells, where 80 columns must fit: no year."""
    return "-" if moment is None else moment.astimezone(UTC).strftime("%m-%d %H:%M")


def duration(span: timedelta) -> str:
    minutes = int(abs(span).total_seconds() // 60)
    days, minutes = divmod(minutes, 24 * 60)
    hours, minutes = divmod(minutes, 60)
    parts = [f"{days}d"] if days else []
    parts += [f"{hours}h"] if hours or days else []
    parts += [f"{minutes}m"] if not days else []
    return " ".join(parts)


def due_text(task: Task, now: datetime, moment: Callable[[datetime], str] = when, sep: str = " ") -> Text:
    if not task.active:
        return Text(moment(task.due_at), style="dim")
    if task.overdue(now):
        return Text(f"{moment(task.due_at)}{sep}({duration(now - task.due_at)} overdue)", style="bold red")
    return Text(f"{moment(task.due_at)}{sep}(in {duration(task.due_at - now)})")


def severity_text(severity: str) -> Text:
    return Text(severity, style=SEVERITY_STYLE.get(severity, ""))


def lines(first: str | Text, *dim: str) -> Text:
    """A cell with a main line and dim detail lines (ids and the like)."""
    text = Text.assemble(first)
    for line in dim:
        text.append("\n" + line, style="dim")
    return text


def _status_cell(task: Task) -> Text:
    who = task.claimed_by if task.status == TaskStatus.IN_PROGRESS else task.resolved_by
    return lines(Text(task.status, style=STATUS_STYLE.get(task.status, "")), *([who] if who else []))


def task_table(tasks: list[Task], now: datetime, title: str | None = None) -> Table:
    table = Table(title=title, caption="times in UTC", caption_justify="left")
    table.add_column("sev", no_wrap=True)
    table.add_column("due", no_wrap=True)
    table.add_column("department", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("task", overflow="fold", min_width=20)
    for t in tasks:
        table.add_row(severity_text(t.severity), due_text(t, now, short_when, "\n"), t.department, _status_cell(t),
                      lines(t.title, f"customer {t.customer_id or '(not known yet)'}", t.task_id))
    return table


# --- commands ----------------------------------------------------------------------------------


def _task_details(task: Task, now: datetime) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    rows = [
        ("task", task.task_id), ("title", task.title), ("severity", severity_text(task.severity)),
        ("status", Text(task.status, style=STATUS_STYLE.get(task.status, ""))), ("department", task.department),
        ("kind", task.kind), ("due", due_text(task, now)), ("shipment", task.shipment_id or "-"),
        ("customer", task.customer_id or "(not known yet)"), ("rule", task.rule),
        ("source event", task.source_event_id), ("alert", task.alert_id or "-"),
        ("created", when(task.created_at)), ("updated", when(task.updated_at)),
        ("claimed", f"{task.claimed_by} at {when(task.claimed_at)}" if task.claimed_by else "-"),
        ("resolved", f"{task.resolved_by} at {when(task.resolved_at)}" if task.resolved_by else "-"),
        ("details", orjson.dumps(task.details, option=orjson.OPT_INDENT_2).decode()),
    ]
    for label, value in rows:
        grid.add_row(label, value)
    return grid


def _by(name: str) -> str:
    name = name.strip()
    if not name:
        fail("--by needs your name (who takes the task), e.g. --by alice")
    return name


@app.command(name="list")
def list_command(
    department: Department | None = typer.Option(None, "--department", "-d", help="Only this department"),
    severity: Severity | None = typer.Option(None, "--severity", "-s", help="Only this severity"),
    status: TaskStatus | None = typer.Option(None, "--status", help="Only this status [default: open and in_progress]"),
    overdue: bool = typer.Option(False, "--overdue", help="Only tasks past their due time"),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="At most this many tasks"),
    as_json: bool = typer.Option(False, "--json", help="A JSON array instead of a table"),
) -> None:
    """Tasks by severity, then due time (most urgent first)."""
    wanted = TaskFilter(
        statuses=(status.value,) if status else TaskFilter.statuses, department=department and department.value,
        severity=severity and severity.value, overdue=overdue, limit=limit,
    )
    now = datetime.now(UTC)
    page = with_database(lambda conn: list_tasks(conn, wanted, now))
    if as_json:
        print_json(page.tasks)
        return
    if not page.tasks:
        console.print("no tasks match" + ("" if status else " (closed tasks: add --status done or --status cancelled)"))
        return
    console.print(task_table(page.tasks, now))
    if page.more:
        console.print(f"[yellow]more tasks match:[/] showing the first {limit}; raise --limit or filter further")


@app.command(name="show")
def show_command(
    task_id: str = typer.Argument(..., help="The task id (from `hub tasks list`)"),
    as_json: bool = typer.Option(False, "--json", help="A JSON object instead of a table"),
) -> None:
    """Everything about one task."""
    task = with_database(lambda conn: get_task(conn, task_id))
    if as_json:
        print_json(task)
    else:
        console.print(_task_details(task, datetime.now(UTC)))


@app.command(name="claim")
def claim_command(
    task_id: str = typer.Argument(..., help="The task id (from `hub tasks list`)"),
    by: str = typer.Option(..., "--by", help="Who takes the task"),
) -> None:
    """Take a task: it becomes in_progress, with who and when recorded (claiming again hands it over)."""
    name = _by(by)
    claimed = with_database(lambda conn: claim_task(conn, task_id, name))
    task = claimed.task
    console.print(f"task {task.task_id} is [cyan]in_progress[/], claimed by {task.claimed_by} "
                  f"at {when(task.claimed_at)} UTC: {task.title}")
    if claimed.previous_claimer:
        console.print(f"[yellow]note:[/] it was claimed by {claimed.previous_claimer}; let them know you took it over")


@app.command(name="resolve")
def resolve_command(
    task_id: str = typer.Argument(..., help="The task id (from `hub tasks list`)"),
    by: str = typer.Option(..., "--by", help="Who closes the task"),
    cancel: bool = typer.Option(False, "--cancel", help="Close it as cancelled (nothing to do) instead of done"),
) -> None:
    """Close a task as done (or cancelled), with who and when recorded."""
    name = _by(by)
    task = with_database(lambda conn: resolve_task(conn, task_id, name, cancel))
    console.print(f"task {task.task_id} is [{STATUS_STYLE[task.status]}]{task.status}[/], by {task.resolved_by} "
                  f"at {when(task.resolved_at)} UTC: {task.title}")
