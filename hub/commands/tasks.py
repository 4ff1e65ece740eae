"""`hub tasks list|show|claim|resolve`: the coordination tasks the hub opened for each department."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import typer
from rich.table import Table
from rich.text import Text

from hub.commands._common import console, fail
from hub.commands._views import (
    STATUS_STYLE,
    due_text,
    print_json,
    severity_text,
    task_table,
    when,
    with_database,
)
from hub.ops.tasks import Task, TaskFilter, claim_task, get_task, list_tasks, resolve_task
from schemas.enums import Department, Severity, TaskStatus

NAME = "tasks"
app = typer.Typer(help="Coordination tasks: list, inspect, claim and resolve them.", no_args_is_help=True)


def _task_details(task: Task, now: datetime) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    rows: list[tuple[str, str | Text]] = [
        ("task", task.task_id),
        ("title", task.title),
        ("severity", severity_text(task.severity)),
        ("status", Text(task.status, style=STATUS_STYLE.get(task.status, ""))),
        ("department", task.department),
        ("kind", task.kind),
        ("due", due_text(task, now)),
        ("shipment", task.shipment_id or "-"),
        ("customer", task.customer_id or "(not known yet)"),
        ("rule", task.rule),
        ("source event", task.source_event_id),
        ("alert", task.alert_id or "-"),
        ("created", when(task.created_at)),
        ("updated", when(task.updated_at)),
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
        statuses=(status.value,) if status else TaskFilter.statuses,
        department=department and department.value,
        severity=severity and severity.value,
        overdue=overdue,
        limit=limit,
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
    console.print(
        f"task {task.task_id} is [cyan]in_progress[/], claimed by {task.claimed_by} "
        f"at {when(task.claimed_at)} UTC: {task.title}"
    )
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
    console.print(
        f"task {task.task_id} is [{STATUS_STYLE[task.status]}]{task.status}[/], by {task.resolved_by} "
        f"at {when(task.resolved_at)} UTC: {task.title}"
    )
