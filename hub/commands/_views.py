"""How the ops commands show things: times, durations, severities, task tables, JSON, and running
a command's work on one database connection."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import asyncpg
import orjson
import typer
from rich.table import Table
from rich.text import Text

from hub.commands._common import database_url, fail, run, settings
from hub.ops.db import OpsError, database
from hub.ops.tasks import HUB_ACTOR, HistoryEntry, Task
from schemas.enums import TaskStatus

T = TypeVar("T")

SEVERITY_STYLE = {"P1": "bold red", "P2": "dark_orange", "P3": "blue", "P4": "dim"}
STATUS_STYLE = {"open": "bold", "in_progress": "cyan", "done": "green", "cancelled": "dim"}
ESCALATION_STYLE = {1: "dark_orange", 2: "bold red"}


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


def escalation_text(level: int, long: bool = False) -> Text:
    """L1 (breached: the supervisor's) / L2 (the manager's); nothing at level 0 in tables."""
    if long:
        names = {0: "0 (not escalated)", 1: "1 (breached: supervisor)", 2: "2 (manager)"}
        return Text(names.get(level, str(level)), style=ESCALATION_STYLE.get(level, ""))
    return Text(f"L{level}" if level else "", style=ESCALATION_STYLE.get(level, ""))


def _severity_cell(task: Task) -> Text:
    cell = severity_text(task.severity)
    if task.escalation_level:
        cell.append("\n").append_text(escalation_text(task.escalation_level))
    return cell


def _status_cell(task: Task) -> Text:
    who = task.claimed_by if task.status == TaskStatus.IN_PROGRESS else task.resolved_by
    return lines(Text(task.status, style=STATUS_STYLE.get(task.status, "")), *([who] if who else []))


def task_table(tasks: list[Task], now: datetime, title: str | None = None) -> Table:
    table = Table(title=title, caption="times in UTC; L1/L2: escalation level", caption_justify="left")
    table.add_column("sev", no_wrap=True)
    table.add_column("due", no_wrap=True)
    table.add_column("department", no_wrap=True)
    table.add_column("status", no_wrap=True)
    table.add_column("task", overflow="fold", min_width=20)
    for t in tasks:
        table.add_row(
            _severity_cell(t),
            due_text(t, now, short_when, "\n"),
            t.department,
            _status_cell(t),
            lines(t.title, f"customer {t.customer_id or '(not known yet)'}", t.task_id),
        )
    return table


def _moment(value: Any) -> str:
    try:
        return when(datetime.fromisoformat(value))
    except (TypeError, ValueError):
        return str(value)


def detail_text(action: str, detail: dict[str, Any]) -> str:
    """A history row's detail on one line, for people (`--json` has it as recorded)."""
    d = detail
    if action == "commented":
        return str(d.get("text", ""))
    if action in ("resolved", "cancelled") and set(d) == {"resolution"}:
        return str(d["resolution"])
    if action == "claimed" and d.get("taken_over_from"):
        return f"taken over from {d['taken_over_from']}"
    if action == "released" and d.get("held_since"):
        return f"held since {_moment(d['held_since'])}"
    if action == "reassigned":
        moves = [
            f"{what} {d.get(f'from_{what}') or 'nobody'} -> {d.get(f'to_{what}') or 'nobody'}"
            for what in ("department", "person")
            if d.get(f"from_{what}") != d.get(f"to_{what}")
        ]
        return "; ".join(moves)
    if action == "reopened":
        parts = [f"reason: {d['reason']}"] if d.get("reason") else []
        if d.get("resolved_by"):
            parts.append(f"was done by {d['resolved_by']} at {_moment(d.get('resolved_at'))}: {d.get('resolution')}")
        return "; ".join(parts)
    shown = [(key, value) for key, value in sorted(d.items()) if value not in (None, "", {}, [])]
    return "; ".join(
        f"{key}: {value if isinstance(value, str) else orjson.dumps(value).decode()}" for key, value in shown
    )


def history_table(entries: list[HistoryEntry], title: str | None = None) -> Table:
    table = Table(title=title, caption="times in UTC; actor hub: the hub itself", caption_justify="left")
    table.add_column("at", no_wrap=True)
    table.add_column("actor", no_wrap=True)
    table.add_column("action", no_wrap=True)
    table.add_column("detail", overflow="fold")
    for e in entries:
        table.add_row(
            e.at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            Text(e.actor, style="dim" if e.actor == HUB_ACTOR else ""),
            e.action,
            Text(detail_text(e.action, e.detail)),  # Text: people's words are not markup
        )
    return table
