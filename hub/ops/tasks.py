"""Coordination tasks as the ops commands see them: list, show, claim, resolve, overdue counts."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, NoReturn

import asyncpg

from hub.ops.db import NotFound, OpsError
from schemas.enums import TaskStatus

ACTIVE_STATUSES = (TaskStatus.OPEN, TaskStatus.IN_PROGRESS)

TASK_COLUMNS = """
task_id, department, kind, severity, status, shipment_id, customer_id, title, details, due_at,
created_at, updated_at, source_event_id, rule, alert_id, claimed_by, claimed_at, resolved_by, resolved_at
"""

SELECT_TASKS = f"""
SELECT {TASK_COLUMNS} FROM coordination_tasks
WHERE status = ANY($1::text[])
  AND ($2::text IS NULL OR department = $2)
  AND ($3::text IS NULL OR severity = $3)
  AND (NOT $4::bool OR due_at < $5)
ORDER BY severity, due_at, task_id
LIMIT $6
"""

SELECT_TASK = f"SELECT {TASK_COLUMNS} FROM coordination_tasks WHERE task_id = $1"

SELECT_SHIPMENT_TASKS = f"""
SELECT {TASK_COLUMNS} FROM coordination_tasks WHERE shipment_id = $1 ORDER BY created_at, severity, task_id
"""

# Conditional updates: a task closed by someone else in the meantime is not reopened.
CLAIM_TASK = f"""
WITH before AS (SELECT task_id AS id, claimed_by AS previous_claimer FROM coordination_tasks
                WHERE task_id = $1 FOR UPDATE)
UPDATE coordination_tasks
SET status = 'in_progress', claimed_by = $2, claimed_at = now(), updated_at = now()
FROM before
WHERE task_id = before.id AND status IN ('open', 'in_progress')
RETURNING {TASK_COLUMNS}, before.previous_claimer
"""

RESOLVE_TASK = f"""
UPDATE coordination_tasks
SET status = $3, resolved_by = $2, resolved_at = now(), updated_at = now()
WHERE task_id = $1 AND status IN ('open', 'in_progress')
RETURNING {TASK_COLUMNS}
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
    limit: int = 50


@dataclass(frozen=True)
class TaskPage:
    tasks: list[Task]
    more: bool  # more tasks match than the limit let through


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


def _task_uuid(task_id: str) -> uuid.UUID:
    try:
        return uuid.UUID(task_id)
    except ValueError:
        raise NotFound(f"{task_id!r} is not a task id (task ids are UUIDs); find it with `hub tasks list`") from None


async def list_tasks(conn: asyncpg.Connection, wanted: TaskFilter, now: datetime) -> TaskPage:
    rows = await conn.fetch(
        SELECT_TASKS, list(wanted.statuses), wanted.department, wanted.severity, wanted.overdue, now, wanted.limit + 1
    )
    return TaskPage([task_from_row(r) for r in rows[: wanted.limit]], more=len(rows) > wanted.limit)


async def get_task(conn: asyncpg.Connection, task_id: str) -> Task:
    row = await conn.fetchrow(SELECT_TASK, _task_uuid(task_id))
    if row is None:
        raise NotFound(f"no task {task_id}; find the id with `hub tasks list` (add --status done for closed ones)")
    return task_from_row(row)


@dataclass(frozen=True)
class Claimed:
    task: Task
    previous_claimer: str | None  # someone else had it: the claim handed it over


async def claim_task(conn: asyncpg.Connection, task_id: str, by: str) -> Claimed:
    """Mark the task in progress by `by`; claiming a claimed task hands it over to `by`."""
    row = await conn.fetchrow(CLAIM_TASK, _task_uuid(task_id), by)
    if row is None:
        await _explain_not_active(conn, task_id, "claimed")
    values = dict(row)
    previous = values.pop("previous_claimer")
    return Claimed(task_from_row(values), previous if previous != by else None)


async def resolve_task(conn: asyncpg.Connection, task_id: str, by: str, cancel: bool = False) -> Task:
    status = TaskStatus.CANCELLED if cancel else TaskStatus.DONE
    row = await conn.fetchrow(RESOLVE_TASK, _task_uuid(task_id), by, status.value)
    if row is None:
        await _explain_not_active(conn, task_id, "cancelled" if cancel else "resolved")
    return task_from_row(row)


async def _explain_not_active(conn: asyncpg.Connection, task_id: str, verb: str) -> NoReturn:
    task = await get_task(conn, task_id)  # raises NotFound for an unknown id
    who = f" by {task.resolved_by}" if task.resolved_by else ""
    when = f" at {task.resolved_at:%Y-%m-%d %H:%M %Z}" if task.resolved_at else ""
    raise OpsError(
        f"task {task_id} is already {task.status}{who}{when} and cannot be {verb}; "
        "if the problem came back, it needs a new event (or ask the lead to reopen it in Postgres)"
    )


async def overdue_by_department(conn: asyncpg.Connection, now: datetime) -> list[OverdueCount]:
    return [
        OverdueCount(r["department"], r["tasks"], r["oldest_due_at"])
        for r in await conn.fetch(OVERDUE_BY_DEPARTMENT, now)
    ]
