"""`hub tasks ...`: the coordination tasks the hub opened for each department, and their lifecycle
(claim, release, comment, reassign, resolve, cancel, reopen) with its history. See hub/ops/tasks.py."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import orjson
import typer
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from hub.commands._common import console, fail
from hub.commands._views import (
    STATUS_STYLE,
    detail_text,
    due_text,
    escalation_text,
    history_table,
    print_json,
    severity_text,
    task_table,
    when,
    with_database,
)
from hub.ops import tasks as ops
from hub.ops.db import OpsError
from hub.ops.tasks import Task, TaskFilter, TaskView
from schemas.enums import Department, Severity, TaskStatus

NAME = "tasks"
app = typer.Typer(
    help="Coordination tasks: list and inspect them, claim, release, comment, reassign, resolve, cancel, reopen, "
    "and their history.",
    no_args_is_help=True,
)

T = TypeVar("T")

TASK_ID = typer.Argument(..., help="The task id (from `hub tasks list`)")


def _checked(check: Callable[[], T]) -> T:
    """Refuse bad input before connecting (the ops functions check it again, for other callers)."""
    try:
        return check()
    except OpsError as exc:
        fail(str(exc))


def _by(name: str) -> str:
    return _checked(lambda: ops.person(name))


def _title(task: Task) -> str:
    return f"task {task.task_id} ({escape(task.title)})"


def _status(task: Task) -> str:
    return f"[{STATUS_STYLE.get(task.status, '')}]{task.status}[/]"


def _task_details(view: TaskView, now: datetime) -> Table:
    task = view.task
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
        ("opened", when(task.opened_at)),
        ("due", due_text(task, now)),
        ("escalation", escalation_text(task.escalation_level, long=True)),
        ("warned", when(task.warned_at)),
        ("breached", when(task.breached_at)),
        ("shipment", task.shipment_id or "-"),
        ("customer", task.customer_id or "(not known yet)"),
        ("rule", task.rule),
        ("source event", task.source_event_id),
        ("alert", task.alert_id or "-"),
        ("created", when(task.created_at)),
        ("updated", when(task.updated_at)),
        ("claimed", f"{task.claimed_by} at {when(task.claimed_at)}" if task.claimed_by else "-"),
        ("resolved", f"{task.resolved_by} at {when(task.resolved_at)}" if task.resolved_by else "-"),
        ("resolution", task.resolution or "-"),
        ("details", orjson.dumps(task.details, option=orjson.OPT_INDENT_2).decode()),
    ]
    for label, value in rows:
        grid.add_row(label, value if isinstance(value, Text) else Text(value))  # Text: data is not markup
    return grid


@app.command(name="list")
def list_command(
    department: Department | None = typer.Option(None, "--department", "-d", help="Only this department"),
    severity: Severity | None = typer.Option(None, "--severity", "-s", help="Only this severity"),
    status: TaskStatus | None = typer.Option(None, "--status", help="Only this status [default: open and in_progress]"),
    overdue: bool = typer.Option(False, "--overdue", help="Only tasks past their due time"),
    breached: bool = typer.Option(False, "--breached", help="Only tasks the clock escalated (level 1 or 2)"),
    escalation_level: int | None = typer.Option(
        None, "--escalation-level", min=0, max=2, help="Only tasks at this escalation level (0, 1 or 2)"
    ),
    limit: int = typer.Option(50, "--limit", "-n", min=1, help="At most this many tasks"),
    as_json: bool = typer.Option(False, "--json", help="A JSON array instead of a table"),
) -> None:
    """Tasks by severity, then due time (most urgent first), with their escalation level and time left or overdue."""
    wanted = TaskFilter(
        statuses=(status.value,) if status else TaskFilter.statuses,
        department=department and department.value,
        severity=severity and severity.value,
        overdue=overdue,
        breached=breached,
        escalation_level=escalation_level,
        limit=limit,
    )
    now = datetime.now(UTC)
    page = with_database(lambda conn: ops.list_tasks(conn, wanted, now))
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
    task_id: str = TASK_ID,
    as_json: bool = typer.Option(False, "--json", help="A JSON object instead of a table (the task's row)"),
) -> None:
    """Everything about one task, and the last few changes of its history."""
    view = with_database(lambda conn: ops.task_view(conn, task_id))
    if as_json:
        print_json(view.task)
        return
    console.print(_task_details(view, datetime.now(UTC)))
    if view.recent:
        shown = len(view.recent)
        title = f"history: last {shown} of {view.history_size}" if view.history_size > shown else "history"
        console.print(history_table(view.recent, title))
        if view.history_size > shown:
            console.print(f"all of it: hub tasks history {view.task.task_id}")


@app.command(name="history")
def history_command(
    task_id: str = TASK_ID,
    as_json: bool = typer.Option(False, "--json", help="A JSON array instead of a table"),
) -> None:
    """Every change of the task, oldest first: when, who (`hub` for the hub itself), what, and its detail."""
    entries = with_database(lambda conn: ops.history(conn, task_id))
    if as_json:
        print_json(entries)
    else:
        console.print(history_table(entries, f"history of task {task_id}"))


@app.command(name="claim")
def claim_command(
    task_id: str = TASK_ID,
    by: str = typer.Option(..., "--by", help="Who takes the task"),
    take_over: bool = typer.Option(
        False, "--take-over", help="Take it even though someone else holds it (tell them: the history names you)"
    ),
) -> None:
    """Take an open task: it becomes in_progress, held by you. A task someone else holds is refused,
    naming them, unless --take-over."""
    name = _by(by)
    changed = with_database(lambda conn: ops.claim(conn, task_id, name, take_over=take_over))
    task = changed.task
    if changed.event is None:
        console.print(f"you already hold {_title(task)}, since {when(task.claimed_at)} UTC; nothing changed")
        return
    console.print(f"{_title(task)} is {_status(task)}, claimed by {escape(name)} at {when(task.claimed_at)} UTC")
    if previous := changed.event.detail.get("taken_over_from"):
        console.print(f"[yellow]note:[/] you took it over from {escape(previous)}; let them know")


@app.command(name="release")
def release_command(
    task_id: str = TASK_ID,
    by: str = typer.Option(..., "--by", help="Who gives it back (its holder)"),
) -> None:
    """Give back a task you hold: it is open again, for anyone in its department to claim."""
    name = _by(by)
    task = with_database(lambda conn: ops.release(conn, task_id, name)).task
    console.print(f"{_title(task)} is {_status(task)} again: released by {escape(name)}")


@app.command(name="comment")
def comment_command(
    task_id: str = TASK_ID,
    by: str = typer.Option(..., "--by", help="Who writes the comment"),
    text: str = typer.Option(..., "--text", "-m", help="The comment (any task, closed ones included)"),
) -> None:
    """Add a comment to the task's history."""
    name = _by(by)
    task = with_database(lambda conn: ops.comment(conn, task_id, name, text)).task
    console.print(f"comment added to {_title(task)} by {escape(name)}")


@app.command(name="reassign")
def reassign_command(
    task_id: str = TASK_ID,
    by: str = typer.Option(..., "--by", help="Who reassigns it"),
    department: Department | None = typer.Option(None, "--department", "-d", help="The department it goes to"),
    to: str | None = typer.Option(None, "--to", help="The person who holds it from now on (in_progress)"),
) -> None:
    """Hand an open or in-progress task to another department and/or person. With --to it is in_progress,
    held by that person; with only --department it is open in that department's queue."""
    name = _by(by)
    if department is None and to is None:
        fail("say where the task goes: --department D, --to NAME, or both")
    person = _checked(lambda: ops.person(to, "--to")) if to is not None else None
    changed = with_database(
        lambda conn: ops.reassign(conn, task_id, name, department=department and department.value, to=person)
    )
    task, detail = changed.task, changed.event.detail if changed.event else {}
    console.print(
        f"{_title(task)} reassigned by {escape(name)}: {escape(detail_text('reassigned', detail))}; now {_status(task)}"
    )


def _close(task_id: str, by: str, resolution: str, status: TaskStatus) -> None:
    name = _by(by)
    action = ops.resolve if status == TaskStatus.DONE else ops.cancel
    task = with_database(lambda conn: action(conn, task_id, name, resolution)).task
    console.print(
        f"{_title(task)} is {_status(task)}, by {escape(name)} at {when(task.resolved_at)} UTC: "
        f"{escape(task.resolution or '')}"
    )


@app.command(name="resolve")
def resolve_command(
    task_id: str = TASK_ID,
    by: str = typer.Option(..., "--by", help="Who closes the task"),
    resolution: str = typer.Option(..., "--resolution", "-r", help="What was done (required)"),
    cancel: bool = typer.Option(False, "--cancel", help="The same as `hub tasks cancel` (kept for scripts)"),
) -> None:
    """Close an open or in-progress task as done, with who, when and what was done."""
    _close(task_id, by, resolution, TaskStatus.CANCELLED if cancel else TaskStatus.DONE)


@app.command(name="cancel")
def cancel_command(
    task_id: str = TASK_ID,
    by: str = typer.Option(..., "--by", help="Who closes the task"),
    resolution: str = typer.Option(..., "--resolution", "-r", help="Why there is nothing to do (required)"),
) -> None:
    """Close an open or in-progress task as cancelled (nothing to do), with who, when and why.
    A cancelled task cannot be reopened."""
    _close(task_id, by, resolution, TaskStatus.CANCELLED)


@app.command(name="reopen")
def reopen_command(
    task_id: str = TASK_ID,
    by: str = typer.Option(..., "--by", help="Who reopens it"),
    reason: str | None = typer.Option(None, "--reason", help="Why (kept in the history)"),
) -> None:
    """Reopen a done task: open again, held by nobody, its resolution cleared (the history keeps it).
    Its SLA timers apply again. Cancelled tasks cannot be reopened."""
    name = _by(by)
    changed = with_database(lambda conn: ops.reopen(conn, task_id, name, reason))
    task = changed.task
    console.print(
        f"{_title(task)} is {_status(task)} again, reopened by {escape(name)}; due", due_text(task, datetime.now(UTC))
    )
