"""Coordination tasks as the ops commands see them: list and show them, and move them through their
lifecycle (contract 1.1):

    open -> in_progress (claimed) -> done | cancelled;  in_progress -> open (released);  done -> open (reopened)

Every action is one transaction: a conditional UPDATE (its WHERE is the action's precondition, so of
two people racing exactly one changes the task and the other gets a sentence naming the winner),
then the action's row in `task_events` (append-only: the history keeps what the task row forgets,
e.g. a reopened task's resolution). Refusals are `OpsError`s that say what to do instead.

Only a `done` task can be reopened: `cancelled` means there was nothing to do, and if the problem
turns out to be real it comes back as a new event (and task). Comments are accepted on any task,
closed ones included: they change nothing but the history.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

import asyncpg

from hub.ops.db import NotFound, OpsError
from hub.store.writes import NOTIFY_TASKS
from schemas.enums import Department, TaskStatus

ACTIVE_STATUSES = (TaskStatus.OPEN, TaskStatus.IN_PROGRESS)
HUB_ACTOR = "hub"  # the hub itself in task_events; no person may act under this name
RECENT_HISTORY = 5  # rows `hub tasks show` prints

TASK_COLUMNS = """
task_id, department, kind, severity, status, shipment_id, customer_id, title, details, due_at,
created_at, updated_at, source_event_id, rule, alert_id, claimed_by, claimed_at, resolved_by, resolved_at,
opened_at, warned_at, breached_at, escalation_level, resolution
"""

# Lists are built with only the conditions a filter sets, statuses written out from their fixed
# vocabulary (never the caller's text), so Postgres picks the index for each combination and can
# match the partial indexes on open tasks; a catch-all "$n IS NULL OR ..." statement would get one
# generic plan, a sequential scan of every task (hundreds of ms at 100,000 tasks).
SELECT_TASKS_FROM = f"SELECT {TASK_COLUMNS} FROM coordination_tasks"
TASKS_ORDER = "ORDER BY severity, due_at, task_id"

SELECT_TASK = f"SELECT {TASK_COLUMNS} FROM coordination_tasks WHERE task_id = $1"

SELECT_SHIPMENT_TASKS = f"""
SELECT {TASK_COLUMNS} FROM coordination_tasks WHERE shipment_id = $1 ORDER BY created_at, severity, task_id
"""

# --- the lifecycle: each UPDATE's WHERE is its action's precondition --------------------------------
# `was` locks the row and reads it as it was before the change (its columns are prefixed so they
# cannot be confused with the target's); the UPDATE returns the task as it is now. A refused action
# changes nothing, and the caller reads the (still locked) row to say why.

WAS = """
WITH was AS (SELECT task_id AS was_id, status AS was_status, department AS was_department,
                    claimed_by AS was_claimed_by, claimed_at AS was_claimed_at, resolved_by AS was_resolved_by,
                    resolved_at AS was_resolved_at, resolution AS was_resolution
             FROM coordination_tasks WHERE task_id = $1 FOR UPDATE)
"""
WAS_COLUMNS = "was_department, was_claimed_by, was_claimed_at, was_resolved_by, was_resolved_at, was_resolution"

# $2 who claims, $3 take over from another holder
CLAIM_TASK = f"""{WAS}
UPDATE coordination_tasks AS t
SET status = 'in_progress', claimed_by = $2, claimed_at = now(), updated_at = now()
FROM was
WHERE t.task_id = was.was_id
  AND (t.status = 'open' OR (t.status = 'in_progress' AND t.claimed_by IS DISTINCT FROM $2 AND $3::bool))
RETURNING {TASK_COLUMNS}, {WAS_COLUMNS}
"""

# $2 the holder
RELEASE_TASK = f"""{WAS}
UPDATE coordination_tasks AS t
SET status = 'open', claimed_by = NULL, claimed_at = NULL, updated_at = now()
FROM was
WHERE t.task_id = was.was_id AND t.status = 'in_progress' AND t.claimed_by = $2
RETURNING {TASK_COLUMNS}, {WAS_COLUMNS}
"""

# Any status: a comment changes only the history (and when the task last changed).
COMMENT_TASK = f"""{WAS}
UPDATE coordination_tasks AS t SET updated_at = now()
FROM was
WHERE t.task_id = was.was_id
RETURNING {TASK_COLUMNS}, {WAS_COLUMNS}
"""

# $2 new department or NULL (keep), $3 new holder or NULL. A new holder makes the task in_progress;
# a new department without one sends it back to open in that department's queue (whoever held it
# belonged to the old one). Something must change.
REASSIGN_TASK = f"""{WAS}
UPDATE coordination_tasks AS t
SET department = coalesce($2, t.department),
    status = CASE WHEN $3::text IS NOT NULL THEN 'in_progress'
                  WHEN $2::text IS DISTINCT FROM t.department AND $2::text IS NOT NULL THEN 'open'
                  ELSE t.status END,
    claimed_by = CASE WHEN $3::text IS NOT NULL THEN $3
                      WHEN $2::text IS DISTINCT FROM t.department AND $2::text IS NOT NULL THEN NULL
                      ELSE t.claimed_by END,
    claimed_at = CASE WHEN $3::text IS NOT NULL AND $3 IS DISTINCT FROM t.claimed_by THEN now()
                      WHEN $3::text IS NOT NULL THEN t.claimed_at
                      WHEN $2::text IS DISTINCT FROM t.department AND $2::text IS NOT NULL THEN NULL
                      ELSE t.claimed_at END,
    updated_at = now()
FROM was
WHERE t.task_id = was.was_id AND t.status IN ('open', 'in_progress')
  AND (($2::text IS NOT NULL AND $2 IS DISTINCT FROM t.department)
       OR ($3::text IS NOT NULL AND (t.status = 'open' OR $3 IS DISTINCT FROM t.claimed_by)))
RETURNING {TASK_COLUMNS}, {WAS_COLUMNS}
"""

# $2 who closes it, $3 done | cancelled, $4 the resolution
CLOSE_TASK = f"""{WAS}
UPDATE coordination_tasks AS t
SET status = $3, resolved_by = $2, resolved_at = now(), resolution = $4, updated_at = now()
FROM was
WHERE t.task_id = was.was_id AND t.status IN ('open', 'in_progress')
RETURNING {TASK_COLUMNS}, {WAS_COLUMNS}
"""

# Back to open, nobody holding it; the clock's timers apply again from the task's own moments (its
# partial indexes select open tasks by due_at / escalate_at and escalation_level, which stays).
REOPEN_TASK = f"""{WAS}
UPDATE coordination_tasks AS t
SET status = 'open', resolved_by = NULL, resolved_at = NULL, resolution = NULL, claimed_by = NULL,
    claimed_at = NULL, updated_at = now()
FROM was
WHERE t.task_id = was.was_id AND t.status = 'done'
RETURNING {TASK_COLUMNS}, {WAS_COLUMNS}
"""

# `at` is the clock's time when the row is written, i.e. after the task's row lock was granted: two
# changes of one task are dated in the order they were made, even when their transactions overlap.
INSERT_TASK_EVENT = """
INSERT INTO task_events (task_id, at, actor, action, detail) VALUES ($1, clock_timestamp(), $2, $3, $4)
RETURNING at, actor, action, detail
"""

SELECT_HISTORY = "SELECT at, actor, action, detail FROM task_events WHERE task_id = $1 ORDER BY at, id"

SELECT_RECENT_HISTORY = """
SELECT at, actor, action, detail, count(*) OVER () AS total FROM task_events WHERE task_id = $1
ORDER BY at DESC, id DESC LIMIT $2
"""

OVERDUE_BY_DEPARTMENT = """
SELECT department, count(*) AS tasks, min(due_at) AS oldest_due_at
FROM coordination_tasks
WHERE status IN ('open', 'in_progress') AND due_at < $1
GROUP BY department
ORDER BY count(*) DESC, department
"""


@dataclass(frozen=True)
class Task:
    task_id: str
    department: str
    kind: str
    severity: str
    status: str
    shipment_id: str | None
    customer_id: str | None
    title: str
    details: dict[str, Any]
    due_at: datetime
    created_at: datetime
    updated_at: datetime
    source_event_id: str
    rule: str
    alert_id: str | None
    claimed_by: str | None
    claimed_at: datetime | None
    resolved_by: str | None
    resolved_at: datetime | None
    opened_at: datetime  # the window's start (the triggering event); due_at is its end
    warned_at: datetime | None  # when the SLA warning was due, once it fired
    breached_at: datetime | None  # when the SLA was breached (due_at), once the clock saw it
    escalation_level: int  # 0 none, 1 supervisor (breached), 2 manager
    resolution: str | None  # what was done (done) or why there was nothing to do (cancelled)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE_STATUSES

    def overdue(self, now: datetime) -> bool:
        return self.active and self.due_at < now


@dataclass(frozen=True)
class TaskFilter:
    statuses: tuple[str, ...] = tuple(s.value for s in ACTIVE_STATUSES)
    department: str | None = None
    severity: str | None = None
    overdue: bool = False
    breached: bool = False  # escalation level 1 or 2
    escalation_level: int | None = None
    customer_id: str | None = None
    limit: int = 50


@dataclass(frozen=True)
class TaskPage:
    tasks: list[Task]
    more: bool  # more tasks match than the limit let through


@dataclass(frozen=True)
class HistoryEntry:
    """One row of a task's history: who (`hub` for the hub itself) did what, when."""

    at: datetime
    actor: str
    action: str
    detail: dict[str, Any]


@dataclass(frozen=True)
class Changed:
    """A task after an action, with the history row the action appended (None: nothing changed)."""

    task: Task
    event: HistoryEntry | None


@dataclass(frozen=True)
class TaskView:
    task: Task
    recent: list[HistoryEntry]  # the last RECENT_HISTORY entries, oldest first
    history_size: int


@dataclass(frozen=True)
class OverdueCount:
    department: str
    tasks: int
    oldest_due_at: datetime


def task_from_row(row: asyncpg.Record | dict[str, Any]) -> Task:
    values = dict(row)
    values["task_id"] = str(values["task_id"])
    values["alert_id"] = str(values["alert_id"]) if values["alert_id"] is not None else None
    return Task(**values)


def _split(row: asyncpg.Record) -> tuple[Task, dict[str, Any]]:
    """A lifecycle UPDATE's row: the task now, and what it was (`was_*`, unprefixed)."""
    values = dict(row)
    was = {name.removeprefix("was_"): values.pop(name) for name in list(values) if name.startswith("was_")}
    return task_from_row(values), was


def _task_uuid(task_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(task_id)
    except ValueError:
        raise NotFound(f"{task_id!r} is not a task id (task ids are UUIDs); find it with `hub tasks list`") from None


def _at(moment: datetime | None) -> str:
    return "-" if moment is None else f"{moment:%Y-%m-%d %H:%M %Z}"


def person(name: str, option: str = "--by") -> str:
    """A person's name as the history records it; `hub` is the hub's own name there."""
    name = name.strip()
    if not name:
        raise OpsError(f"{option} needs a person's name, e.g. {option} alice")
    if name.lower() == HUB_ACTOR:
        raise OpsError(f"{option} {name!r}: '{HUB_ACTOR}' is how the history names the hub itself; give your own name")
    return name


def _text(text: str | None, option: str, example: str) -> str:
    text = (text or "").strip()
    if not text:
        raise OpsError(f"{option} needs text that says {example}")
    return text


# ----------------------------------------------------------------------------------------------- reading


def tasks_query(wanted: TaskFilter, now: datetime) -> tuple[str, list[Any]]:
    """The statement and arguments that list the tasks `wanted` selects (most urgent first)."""
    known = {s.value for s in TaskStatus}
    unknown = [s for s in wanted.statuses if s not in known]
    if unknown or not wanted.statuses:
        raise OpsError(f"unknown task status(es) {unknown}: use {', '.join(sorted(known))}")
    statuses = ", ".join(f"'{s}'" for s in sorted(set(wanted.statuses)))  # from the vocabulary only
    conditions, args = [f"status IN ({statuses})"], []
    for column, operator, value in (
        ("department", "=", wanted.department),
        ("severity", "=", wanted.severity),
        ("due_at", "<", now if wanted.overdue else None),
        ("escalation_level", "=", wanted.escalation_level),
        ("customer_id", "=", wanted.customer_id),
    ):
        if value is not None:
            args.append(value)
            conditions.append(f"{column} {operator} ${len(args)}")
    if wanted.breached:
        conditions.append("escalation_level >= 1")
    args.append(wanted.limit + 1)
    sql = f"{SELECT_TASKS_FROM} WHERE {' AND '.join(conditions)} {TASKS_ORDER} LIMIT ${len(args)}"
    return sql, args


async def list_tasks(conn: asyncpg.Connection, wanted: TaskFilter, now: datetime) -> TaskPage:
    sql, args = tasks_query(wanted, now)
    rows = await conn.fetch(sql, *args)
    return TaskPage([task_from_row(r) for r in rows[: wanted.limit]], more=len(rows) > wanted.limit)


async def get_task(conn: asyncpg.Connection, task_id: str) -> Task:
    row = await conn.fetchrow(SELECT_TASK, _task_uuid(task_id))
    if row is None:
        raise NotFound(f"no task {task_id}; find the id with `hub tasks list` (add --status done for closed ones)")
    return task_from_row(row)


async def task_view(conn: asyncpg.Connection, task_id: str) -> TaskView:
    """The task and the last few rows of its history (`hub tasks show`)."""
    task = await get_task(conn, task_id)
    rows = await conn.fetch(SELECT_RECENT_HISTORY, _task_uuid(task_id), RECENT_HISTORY)
    recent = [HistoryEntry(r["at"], r["actor"], r["action"], r["detail"]) for r in reversed(rows)]
    return TaskView(task, recent, rows[0]["total"] if rows else 0)


async def history(conn: asyncpg.Connection, task_id: str) -> list[HistoryEntry]:
    """Every change of the task, oldest first."""
    await get_task(conn, task_id)  # an unknown task is an error, not an empty history
    return [HistoryEntry(**dict(r)) for r in await conn.fetch(SELECT_HISTORY, _task_uuid(task_id))]


async def overdue_by_department(conn: asyncpg.Connection, now: datetime) -> list[OverdueCount]:
    return [
        OverdueCount(r["department"], r["tasks"], r["oldest_due_at"])
        for r in await conn.fetch(OVERDUE_BY_DEPARTMENT, now)
    ]


# ------------------------------------------------------------------------------------------- the lifecycle


async def _record(conn: asyncpg.Connection, task: Task, actor: str, action: str, detail: dict[str, Any]) -> Changed:
    row = await conn.fetchrow(INSERT_TASK_EVENT, uuid.UUID(task.task_id), actor, action, detail)
    await conn.execute(NOTIFY_TASKS)  # the console's live pages (delivered on commit)
    return Changed(task, HistoryEntry(**dict(row)))


def _gone(task: Task) -> NoReturn:
    """The task was there when the caller looked, but not when it changed it: only a deleted row does that."""
    raise NotFound(f"task {task.task_id} was deleted while it was being changed; find it again with `hub tasks list`")


def _closed(task: Task, verb: str) -> NoReturn:
    """Refuse to change a done or cancelled task, saying what can be done instead."""
    who = f" by {task.resolved_by}" if task.resolved_by else ""
    if task.status == TaskStatus.DONE:
        instead = f"if the problem came back, reopen it first: `hub tasks reopen {task.task_id} --by NAME`"
    else:
        instead = "a cancelled task stays closed; if the problem is real after all, it comes back with a new event"
    raise OpsError(
        f"task {task.task_id} is already {task.status}{who} at {_at(task.resolved_at)} and cannot be {verb}; {instead}"
    )


async def claim(conn: asyncpg.Connection, task_id: str, by: str, *, take_over: bool = False) -> Changed:
    """Take an open task: in_progress, held by `by`. A task someone else holds is refused, naming
    them, unless `take_over` (the detail then names whom it was taken from). Claiming a task you
    already hold changes nothing (`event` is None)."""
    by = person(by)
    async with conn.transaction():
        row = await conn.fetchrow(CLAIM_TASK, _task_uuid(task_id), by, take_over)
        if row is None:
            task = await get_task(conn, task_id)
            if task.status == TaskStatus.IN_PROGRESS and task.claimed_by == by:
                return Changed(task, None)
            if task.status == TaskStatus.IN_PROGRESS:
                raise OpsError(
                    f"task {task_id} is held by {task.claimed_by} since {_at(task.claimed_at)}; ask them, "
                    f"or take it over with `hub tasks claim {task_id} --by {by} --take-over`"
                )
            _closed(task, "claimed")
        task, was = _split(row)
        taken_from = was["claimed_by"] if was["claimed_by"] not in (None, by) else None
        return await _record(conn, task, by, "claimed", {"taken_over_from": taken_from} if taken_from else {})


async def release(conn: asyncpg.Connection, task_id: str, by: str) -> Changed:
    """Give back a task you hold: open again, held by nobody."""
    by = person(by)
    async with conn.transaction():
        row = await conn.fetchrow(RELEASE_TASK, _task_uuid(task_id), by)
        if row is None:
            task = await get_task(conn, task_id)
            if task.status == TaskStatus.OPEN:
                raise OpsError(f"task {task_id} is open: nobody holds it, so there is nothing to release")
            if task.status == TaskStatus.IN_PROGRESS:
                raise OpsError(
                    f"task {task_id} is held by {task.claimed_by} since {_at(task.claimed_at)}, not by {by}; "
                    f"only its holder releases it: ask them, or take it over with "
                    f"`hub tasks claim {task_id} --by {by} --take-over`"
                )
            _closed(task, "released")
        task, was = _split(row)
        held_since = was["claimed_at"].isoformat() if was["claimed_at"] else None
        return await _record(conn, task, by, "released", {"held_since": held_since})


async def comment(conn: asyncpg.Connection, task_id: str, by: str, text: str) -> Changed:
    """A note in the task's history; any task, closed ones included."""
    by, text = person(by), _text(text, "--text", "what happened or what you learned")
    async with conn.transaction():
        row = await conn.fetchrow(COMMENT_TASK, _task_uuid(task_id))
        if row is None:
            _gone(await get_task(conn, task_id))
        task, _ = _split(row)
        return await _record(conn, task, by, "commented", {"text": text})


async def reassign(
    conn: asyncpg.Connection, task_id: str, by: str, *, department: str | None = None, to: str | None = None
) -> Changed:
    """Hand an open or in-progress task to another department and/or person. A person (`to`) holds
    it from now on (in_progress); a new department without a person gets it back open in its queue.
    The detail records both: from_department/to_department, from_person/to_person."""
    by = person(by)
    to = person(to, "--to") if to is not None else None
    if department is not None and department not in {d.value for d in Department}:
        raise OpsError(f"--department {department!r} is not a department: one of {', '.join(d for d in Department)}")
    if department is None and to is None:
        raise OpsError("say where the task goes: --department D, --to NAME, or both")
    async with conn.transaction():
        row = await conn.fetchrow(REASSIGN_TASK, _task_uuid(task_id), department, to)
        if row is None:
            task = await get_task(conn, task_id)
            if not task.active:
                _closed(task, "reassigned")
            holder = f" and held by {task.claimed_by}" if task.status == TaskStatus.IN_PROGRESS else ""
            raise OpsError(f"task {task_id} is already in {task.department}{holder}; nothing to reassign")
        task, was = _split(row)
        detail = {
            "from_department": was["department"],
            "to_department": task.department,
            "from_person": was["claimed_by"],
            "to_person": task.claimed_by,
        }
        return await _record(conn, task, by, "reassigned", detail)


async def resolve(conn: asyncpg.Connection, task_id: str, by: str, resolution: str) -> Changed:
    """Close an open or in-progress task as done, saying what was done."""
    return await _close(conn, task_id, by, resolution, TaskStatus.DONE)


async def cancel(conn: asyncpg.Connection, task_id: str, by: str, resolution: str) -> Changed:
    """Close an open or in-progress task as cancelled, saying why there is nothing to do."""
    return await _close(conn, task_id, by, resolution, TaskStatus.CANCELLED)


async def _close(conn: asyncpg.Connection, task_id: str, by: str, resolution: str, status: TaskStatus) -> Changed:
    by = person(by)
    example = "what was done, e.g. --resolution 'refund issued'"
    if status == TaskStatus.CANCELLED:
        example = "why there is nothing to do, e.g. --resolution 'duplicate of another task'"
    resolution = _text(resolution, "--resolution", example)
    async with conn.transaction():
        row = await conn.fetchrow(CLOSE_TASK, _task_uuid(task_id), by, status.value, resolution)
        if row is None:
            _closed(await get_task(conn, task_id), "resolved" if status == TaskStatus.DONE else "cancelled")
        task, _ = _split(row)
        action = "resolved" if status == TaskStatus.DONE else "cancelled"
        return await _record(conn, task, by, action, {"resolution": resolution})


async def reopen(conn: asyncpg.Connection, task_id: str, by: str, reason: str | None = None) -> Changed:
    """A done task back to open, held by nobody, its resolution cleared (the detail and the history
    keep it). Only done tasks: a cancelled one stays closed."""
    by = person(by)
    reason = (reason or "").strip() or None
    async with conn.transaction():
        row = await conn.fetchrow(REOPEN_TASK, _task_uuid(task_id))
        if row is None:
            task = await get_task(conn, task_id)
            if task.status == TaskStatus.CANCELLED:
                raise OpsError(
                    f"task {task_id} was cancelled by {task.resolved_by} at {_at(task.resolved_at)}; only a done "
                    "task can be reopened: if the problem is real after all, it comes back with a new event"
                )
            raise OpsError(f"task {task_id} is {task.status}, not done: there is nothing to reopen")
        task, was = _split(row)
        detail = {
            "reason": reason,
            "resolved_by": was["resolved_by"],
            "resolved_at": was["resolved_at"].isoformat() if was["resolved_at"] else None,
            "resolution": was["resolution"],
        }
        return await _record(conn, task, by, "reopened", detail)
