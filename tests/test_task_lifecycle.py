"""A task's lifecycle through `hub tasks ...` (contract 1.1): claim, release, comment, reassign, resolve,
cancel, reopen, each refused with a sentence when it does not apply; two people racing for a task;
the append-only history; the list's escalation filters; a reopened overdue task back on the clock.

Only Postgres: tasks are written as the hub writes them (hub/store/writes.py), commands run through
typer's CliRunner as the ops team runs them.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import orjson
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from hub.cli import app
from hub.clock.engine import NOTHING_EXCLUDED
from hub.clock.queries import DUE
from hub.config import Settings
from hub.core.outputs import new_task
from hub.core.rules import load_rules
from hub.ops import tasks as ops
from hub.ops.db import OpsError, database
from hub.store.writes import created, write_tasks
from schemas.enums import Severity
from tests.support import fetch, fetchval, migrated

pytestmark = pytest.mark.postgres

RULES = load_rules()
FOLLOW_UP_HOURS = RULES.surveys.complaint_follow_up_hours  # the DUE query's third parameter


@pytest.fixture
def desk_settings(database_url: str, tmp_path: Path) -> Settings:
    """What the ops commands need: the database (no Kafka)."""
    return Settings(
        _env_file=None,
        database_url=SecretStr(database_url),
        migrate_database_url=None,
        data_dir=tmp_path / "hub-data",
        scheduler_interval_s=0,
    )


@pytest.fixture
async def dsn(desk_settings: Settings) -> str:
    return await migrated(desk_settings)


@pytest.fixture
def hub(desk_settings: Settings):
    env = {**desk_settings.child_environment(), "COLUMNS": "220"}  # wide enough that no cell is cut

    async def invoke(*args: str) -> Result:
        # in a thread: each command runs its own event loop
        return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env, catch_exceptions=False)

    return invoke


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def refused(result: Result, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    for needle in needles:
        assert needle in result.stderr, result.stderr
    return result.stderr


async def add_task(
    dsn: str,
    *,
    department: str = "claims",
    severity: Severity = Severity.P2,
    opened_ago: timedelta = timedelta(hours=1),
    due_in: timedelta = timedelta(hours=2),
    title: str = "Insurance claim for S-1",
) -> str:
    """A task as the hub opens one: the row and its `created` history entry (actor hub)."""
    now = datetime.now(UTC)
    task_id = str(uuid.uuid4())
    task = new_task(
        RULES,
        task_id=task_id,
        department=department,
        kind="damage",
        severity=severity,
        shipment_id="S-1",
        customer_id="C-1",
        title=title,
        details={},
        opened_at=now - opened_ago,
        due_at=now + due_in,
        source_event_id=f"event-{task_id}",
        rule="damage",
        alert_id=None,
    )
    conn = await asyncpg.connect(dsn)
    try:
        async with conn.transaction():
            await write_tasks(conn, [task], created([task], now - opened_ago))
    finally:
        await conn.close()
    return task_id


async def row(dsn: str, task_id: str) -> asyncpg.Record:
    [found] = await fetch(dsn, "SELECT * FROM coordination_tasks WHERE task_id = $1", uuid.UUID(task_id))
    return found


async def events(dsn: str, task_id: str) -> list[tuple[str, str, dict]]:
    rows = await fetch(
        dsn, "SELECT actor, action, detail FROM task_events WHERE task_id = $1 ORDER BY at, id", uuid.UUID(task_id)
    )
    return [(r["actor"], r["action"], orjson.loads(r["detail"])) for r in rows]


# ------------------------------------------------------------------------------------- claim, release


async def test_claim_names_the_holder_and_take_over_is_explicit(dsn, hub):
    task_id = await add_task(dsn)
    out = ok(await hub("tasks", "claim", task_id, "--by", "alice"))
    assert "in_progress" in out and "claimed by alice" in out
    first = await row(dsn, task_id)
    assert (first["status"], first["claimed_by"]) == ("in_progress", "alice")

    assert "you already hold" in ok(await hub("tasks", "claim", task_id, "--by", "alice"))  # nothing changes
    assert (await row(dsn, task_id))["claimed_at"] == first["claimed_at"]

    refused(
        await hub("tasks", "claim", task_id, "--by", "bob"),
        f"task {task_id} is held by alice since",
        "ask them, or take it over with",
        "--take-over",
    )
    assert (await row(dsn, task_id))["claimed_by"] == "alice"

    out = ok(await hub("tasks", "claim", task_id, "--by", "bob", "--take-over"))
    assert "claimed by bob" in out and "took it over from alice" in out
    assert (await row(dsn, task_id))["claimed_by"] == "bob"
    assert await events(dsn, task_id) == [
        ("hub", "created", {"rule": "damage", "severity": "P2"}),
        ("alice", "claimed", {}),
        ("bob", "claimed", {"taken_over_from": "alice"}),
    ]


async def test_release_only_by_the_holder(dsn, hub):
    task_id = await add_task(dsn)
    refused(await hub("tasks", "release", task_id, "--by", "alice"), "nobody holds it")
    ok(await hub("tasks", "claim", task_id, "--by", "alice"))
    refused(
        await hub("tasks", "release", task_id, "--by", "bob"),
        "held by alice since",
        "not by bob",
        "only its holder releases it",
    )
    assert "open" in ok(await hub("tasks", "release", task_id, "--by", "alice"))
    released = await row(dsn, task_id)
    assert (released["status"], released["claimed_by"], released["claimed_at"]) == ("open", None, None)
    actor, action, detail = (await events(dsn, task_id))[-1]
    assert (actor, action) == ("alice", "released") and detail["held_since"]
    ok(await hub("tasks", "claim", task_id, "--by", "bob"))  # anyone can claim it again


async def test_names_are_people(dsn, hub):
    task_id = await add_task(dsn)
    refused(await hub("tasks", "claim", task_id, "--by", "  "), "--by needs a person's name")
    refused(await hub("tasks", "claim", task_id, "--by", "hub"), "how the history names the hub itself")
    refused(await hub("tasks", "claim", "nonsense", "--by", "alice"), "not a task id")
    refused(await hub("tasks", "claim", str(uuid.uuid4()), "--by", "alice"), "no task", "hub tasks list")
    assert (await row(dsn, task_id))["status"] == "open"


async def test_two_claims_at_once_one_wins_and_the_other_is_told_who(dsn):
    task_id = await add_task(dsn)
    people = ["ann", "ben", "cat", "dan", "eve"]

    async def claim_as(name: str) -> ops.Changed | OpsError:
        async with database(dsn) as conn:
            try:
                return await ops.claim(conn, task_id, name)
            except OpsError as exc:
                return exc

    outcomes = await asyncio.gather(*(claim_as(name) for name in people))
    won = [o for o in outcomes if isinstance(o, ops.Changed)]
    assert len(won) == 1, outcomes
    winner = won[0].task.claimed_by
    assert (await row(dsn, task_id))["claimed_by"] == winner
    for loser in (o for o in outcomes if isinstance(o, OpsError)):
        assert f"is held by {winner} since" in str(loser)
    assert [a for _, a, _ in await events(dsn, task_id)] == ["created", "claimed"]


async def test_a_claim_waiting_behind_another_is_refused_once_that_one_commits(dsn):
    """The interleaving forced: ben's claim waits on ann's uncommitted one, then reads her claim."""
    task_id = await add_task(dsn)
    async with database(dsn) as first, database(dsn) as second:
        ann = first.transaction()
        await ann.start()
        await ops.claim(first, task_id, "ann")
        ben = asyncio.create_task(ops.claim(second, task_id, "ben"))
        waiting = "SELECT count(*) FROM pg_stat_activity WHERE pid = $1 AND wait_event_type = 'Lock'"
        for _ in range(100):
            if await fetchval(dsn, waiting, second.get_server_pid()):
                break
            await asyncio.sleep(0.05)
        else:
            raise AssertionError("ben's claim never waited for ann's")
        assert not ben.done()
        await ann.commit()
        with pytest.raises(OpsError, match=f"task {task_id} is held by ann since"):
            await ben
    assert [(a, x) for a, x, _ in await events(dsn, task_id)] == [("hub", "created"), ("ann", "claimed")]


# -------------------------------------------------------------------------------- comment, reassign


async def test_comments_need_text_and_any_task_takes_them(dsn, hub):
    task_id = await add_task(dsn)
    refused(await hub("tasks", "comment", task_id, "--by", "alice", "--text", "   "), "--text needs text")
    ok(await hub("tasks", "comment", task_id, "--by", "alice", "--text", "carrier says the box was wet"))
    ok(await hub("tasks", "resolve", task_id, "--by", "bob", "--resolution", "claim paid"))
    ok(await hub("tasks", "comment", task_id, "--by", "carol", "-m", "customer thanked us"))  # closed: still fine
    assert [(a, x, d) for a, x, d in await events(dsn, task_id) if x == "commented"] == [
        ("alice", "commented", {"text": "carrier says the box was wet"}),
        ("carol", "commented", {"text": "customer thanked us"}),
    ]
    assert (await row(dsn, task_id))["status"] == "done"


async def test_reassign_to_a_department_and_or_a_person(dsn, hub):
    task_id = await add_task(dsn, department="claims")
    ok(await hub("tasks", "claim", task_id, "--by", "alice"))

    out = ok(await hub("tasks", "reassign", task_id, "--by", "sam", "--department", "call_centre"))
    assert "claims -> call_centre" in out and "alice -> nobody" in out
    moved = await row(dsn, task_id)  # the new department's queue gets it, open
    assert (moved["department"], moved["status"], moved["claimed_by"]) == ("call_centre", "open", None)

    ok(await hub("tasks", "reassign", task_id, "--by", "sam", "--to", "carol"))
    held = await row(dsn, task_id)
    assert (held["department"], held["status"], held["claimed_by"]) == ("call_centre", "in_progress", "carol")

    ok(await hub("tasks", "reassign", task_id, "--by", "sam", "--department", "complaints", "--to", "dave"))
    both = await row(dsn, task_id)
    assert (both["department"], both["status"], both["claimed_by"]) == ("complaints", "in_progress", "dave")

    assert [(a, d) for a, x, d in await events(dsn, task_id) if x == "reassigned"] == [
        (
            "sam",
            {"from_department": "claims", "to_department": "call_centre", "from_person": "alice", "to_person": None},
        ),
        (
            "sam",
            {
                "from_department": "call_centre",
                "to_department": "call_centre",
                "from_person": None,
                "to_person": "carol",
            },
        ),
        (
            "sam",
            {
                "from_department": "call_centre",
                "to_department": "complaints",
                "from_person": "carol",
                "to_person": "dave",
            },
        ),
    ]

    refused(await hub("tasks", "reassign", task_id, "--by", "sam"), "--department D, --to NAME, or both")
    refused(
        await hub("tasks", "reassign", task_id, "--by", "sam", "--department", "complaints", "--to", "dave"),
        "already in complaints and held by dave; nothing to reassign",
    )
    assert (await hub("tasks", "reassign", task_id, "--by", "sam", "--department", "nowhere")).exit_code == 2
    ok(await hub("tasks", "resolve", task_id, "--by", "dave", "--resolution", "done"))
    refused(await hub("tasks", "reassign", task_id, "--by", "sam", "--to", "erin"), "already done", "reopen it first")
    assert len([x for _, x, _ in await events(dsn, task_id) if x == "reassigned"]) == 3


# ---------------------------------------------------------------------------- resolve, cancel, reopen


async def test_resolve_needs_a_resolution_and_closes_once(dsn, hub):
    task_id = await add_task(dsn)
    ok(await hub("tasks", "claim", task_id, "--by", "alice"))
    assert (await hub("tasks", "resolve", task_id, "--by", "bob")).exit_code == 2  # --resolution is required
    refused(await hub("tasks", "resolve", task_id, "--by", "bob", "--resolution", " "), "--resolution needs text")
    assert (await row(dsn, task_id))["status"] == "in_progress"

    out = ok(await hub("tasks", "resolve", task_id, "--by", "bob", "--resolution", "refund issued"))
    assert "done" in out and "refund issued" in out
    done = await row(dsn, task_id)
    assert (done["status"], done["claimed_by"], done["resolved_by"], done["resolution"]) == (
        "done",
        "alice",
        "bob",
        "refund issued",
    )
    assert done["resolved_at"] >= done["claimed_at"]
    assert (await events(dsn, task_id))[-1] == ("bob", "resolved", {"resolution": "refund issued"})

    for again in (
        ("resolve", "--resolution", "again"),
        ("cancel", "--resolution", "again"),
        ("claim",),
        ("release",),
    ):
        refused(await hub("tasks", again[0], task_id, "--by", "bob", *again[1:]), "already done by bob", "reopen")
    assert (await row(dsn, task_id))["resolution"] == "refund issued"


async def test_cancel_and_its_old_spelling(dsn, hub):
    first, second = await add_task(dsn), await add_task(dsn)
    refused(await hub("tasks", "cancel", first, "--by", "dave", "--resolution", ""), "--resolution needs text")
    ok(await hub("tasks", "cancel", first, "--by", "dave", "--resolution", "duplicate of another task"))
    ok(await hub("tasks", "resolve", second, "--by", "dave", "--cancel", "--resolution", "customer withdrew"))
    for task_id, resolution in ((first, "duplicate of another task"), (second, "customer withdrew")):
        closed = await row(dsn, task_id)
        assert (closed["status"], closed["resolved_by"], closed["resolution"]) == ("cancelled", "dave", resolution)
        assert (await events(dsn, task_id))[-1] == ("dave", "cancelled", {"resolution": resolution})
    refused(
        await hub("tasks", "resolve", first, "--by", "dave", "--resolution", "x"),
        "already cancelled by dave",
        "a cancelled task stays closed",
    )


async def test_only_a_done_task_is_reopened(dsn, hub):
    task_id, cancelled = await add_task(dsn), await add_task(dsn)
    refused(await hub("tasks", "reopen", task_id, "--by", "erin"), "is open, not done")
    ok(await hub("tasks", "cancel", cancelled, "--by", "dave", "--resolution", "not ours"))
    refused(await hub("tasks", "reopen", cancelled, "--by", "erin"), "was cancelled by dave", "only a done task")
    assert (await row(dsn, cancelled))["status"] == "cancelled"

    ok(await hub("tasks", "claim", task_id, "--by", "alice"))
    ok(await hub("tasks", "resolve", task_id, "--by", "alice", "--resolution", "resent the parcel"))
    resolved_at = (await row(dsn, task_id))["resolved_at"]
    out = ok(await hub("tasks", "reopen", task_id, "--by", "erin", "--reason", "the customer called again"))
    assert "open again" in out and "reopened by erin" in out
    reopened = await row(dsn, task_id)
    assert [reopened[c] for c in ("status", "claimed_by", "resolved_by", "resolved_at", "resolution")] == [
        "open",
        None,
        None,
        None,
        None,
    ]
    assert (await events(dsn, task_id))[-1] == (
        "erin",
        "reopened",
        {
            "reason": "the customer called again",
            "resolved_by": "alice",
            "resolved_at": resolved_at.isoformat(),
            "resolution": "resent the parcel",
        },
    )
    ok(await hub("tasks", "claim", task_id, "--by", "bob"))  # a live task again


async def test_a_reopened_overdue_task_is_due_on_the_clock_again(dsn, hub):
    task_id = await add_task(dsn, opened_ago=timedelta(hours=3), due_in=-timedelta(hours=1))
    ok(await hub("tasks", "resolve", task_id, "--by", "alice", "--resolution", "fixed"))
    now = datetime.now(UTC)
    assert task_id not in {
        r["subject"] for r in await fetch(dsn, DUE, now, 100, FOLLOW_UP_HOURS, *NOTHING_EXCLUDED)
    }  # closed: no timer

    ok(await hub("tasks", "reopen", task_id, "--by", "erin"))
    due = {(r["kind"], r["subject"]) for r in await fetch(dsn, DUE, now, 100, FOLLOW_UP_HOURS, *NOTHING_EXCLUDED)}
    assert ("sla_breach", task_id) in due

    tick = orjson.loads(ok(await hub("tick", "--json")))
    assert [(f["timer"], f["subject"], f["key"]) for f in tick["fired"]] == [("sla_breach", task_id, "1")]
    escalated = await row(dsn, task_id)
    assert (escalated["escalation_level"], escalated["status"]) == (1, "open")
    assert [(a, x) for a, x, _ in await events(dsn, task_id)][-2:] == [("erin", "reopened"), ("hub", "escalated")]


# ------------------------------------------------------------------------------------------- history


async def test_history_in_order_with_actors_as_table_and_json(dsn, hub):
    task_id = await add_task(dsn)
    steps = [
        ("claim", "--by", "alice"),
        ("comment", "--by", "alice", "--text", "asked the warehouse for photos [3 attached]"),
        ("reassign", "--by", "sam", "--to", "bob"),
        ("resolve", "--by", "bob", "--resolution", "claim paid"),
        ("reopen", "--by", "erin"),
    ]
    for step in steps:
        ok(await hub("tasks", step[0], task_id, *step[1:]))

    entries = orjson.loads(ok(await hub("tasks", "history", task_id, "--json")))
    assert [(e["actor"], e["action"]) for e in entries] == [
        ("hub", "created"),
        ("alice", "claimed"),
        ("alice", "commented"),
        ("sam", "reassigned"),
        ("bob", "resolved"),
        ("erin", "reopened"),
    ]
    moments = [datetime.fromisoformat(e["at"]) for e in entries]
    assert moments == sorted(moments)
    assert entries[4]["detail"] == {"resolution": "claim paid"}

    table = ok(await hub("tasks", "history", task_id))
    for needle in ("created", "hub", "photos [3 attached]", "person alice -> bob", "claim paid", "was done by bob"):
        assert needle in table
    refused(await hub("tasks", "history", str(uuid.uuid4())), "no task")

    shown = ok(await hub("tasks", "show", task_id))
    for needle in ("escalation", "opened", "resolution", "history: last 5 of 6", f"hub tasks history {task_id}"):
        assert needle in shown
    assert "claimed" in shown and "reopened" in shown and "created" not in shown.split("history: last")[1]
    task = orjson.loads(ok(await hub("tasks", "show", task_id, "--json")))
    assert (task["status"], task["escalation_level"], task["resolution"]) == ("open", 0, None)
    assert datetime.fromisoformat(task["opened_at"]) < datetime.fromisoformat(task["due_at"])


async def test_task_events_are_append_only(dsn, hub):
    task_id = await add_task(dsn)
    ok(await hub("tasks", "comment", task_id, "--by", "alice", "--text", "first"))
    conn = await asyncpg.connect(dsn)
    try:
        for statement in (
            "UPDATE task_events SET actor = 'mallory' WHERE task_id = $1",
            "DELETE FROM task_events WHERE task_id = $1",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
                await conn.execute(statement, uuid.UUID(task_id))
        with pytest.raises(asyncpg.InsufficientPrivilegeError, match="append-only"):
            await conn.execute("TRUNCATE task_events")
    finally:
        await conn.close()
    assert [(a, x) for a, x, _ in await events(dsn, task_id)] == [("hub", "created"), ("alice", "commented")]


# ---------------------------------------------------------------------------------------------- list


async def test_list_shows_escalation_and_time_left_and_filters_by_level(dsn, hub):
    calm = await add_task(dsn, title="calm task", due_in=timedelta(hours=2, minutes=10))
    late = await add_task(dsn, title="late task", opened_ago=timedelta(hours=6), due_in=-timedelta(hours=3))
    worst = await add_task(dsn, title="worst task", opened_ago=timedelta(hours=9), due_in=-timedelta(hours=4))
    conn = await asyncpg.connect(dsn)
    try:  # as the clock leaves them (hub/clock/queries.py UPDATE_TASKS)
        await conn.execute(
            "UPDATE coordination_tasks SET escalation_level = 1, breached_at = due_at WHERE task_id = $1",
            uuid.UUID(late),
        )
        await conn.execute(
            "UPDATE coordination_tasks SET escalation_level = 2, breached_at = due_at WHERE task_id = $1",
            uuid.UUID(worst),
        )
    finally:
        await conn.close()

    def ids(result: Result) -> set[str]:
        return {t["task_id"] for t in orjson.loads(ok(result))}

    assert ids(await hub("tasks", "list", "--json")) == {calm, late, worst}
    assert ids(await hub("tasks", "list", "--breached", "--json")) == {late, worst}
    assert ids(await hub("tasks", "list", "--escalation-level", "0", "--json")) == {calm}
    assert ids(await hub("tasks", "list", "--escalation-level", "2", "--json")) == {worst}
    assert ids(await hub("tasks", "list", "--breached", "--escalation-level", "1", "--json")) == {late}
    assert ids(await hub("tasks", "list", "--breached", "--escalation-level", "0", "--json")) == set()
    assert (await hub("tasks", "list", "--escalation-level", "3")).exit_code == 2
    levels = {t["task_id"]: t["escalation_level"] for t in orjson.loads(ok(await hub("tasks", "list", "--json")))}
    assert levels == {calm: 0, late: 1, worst: 2}

    table = ok(await hub("tasks", "list"))
    for needle in ("(in 2h", "(3h 0m overdue)", "(4h 0m overdue)", "L1", "L2", "escalation level"):
        assert needle in table, table
    ok(await hub("tasks", "resolve", worst, "--by", "bob", "--resolution", "manager sorted it"))
    assert ids(await hub("tasks", "list", "--breached", "--json")) == {late}  # closed tasks leave the default list
