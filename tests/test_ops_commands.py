"""The ops team's commands (`hub tasks`, `hub shipment`, `hub dlq`, `hub alerts watch`) against a running hub.

One hub runs for the whole module (a consumer-group join costs seconds); its inputs are a damaged
shipment with a carrier ETA past the promise, a complaint call about it, and a record on call.logs
that is not JSON. Tests run in file order: the later ones change tasks and add events.
"""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import orjson
import pytest
import pytest_asyncio
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from hub.cli import app
from hub.config import Settings
from hub.migrate import apply_migrations
from hub.ops.alert_stream import AlertBoard, SeenAlert
from hub.ops.dead_letters import ReadableBytes, readable
from hub.runtime import HubRuntime
from producers.feeds import CallCentreFeed, CarrierFeed, WarehouseFeed
from schemas.outbound import Alert, AlertSource

ROWS_TIMEOUT_S = 60
NOW = datetime.now(UTC).replace(microsecond=0)
THREE_DAYS_AGO = NOW - timedelta(days=3)  # tasks raised then are long overdue
BROKEN_VALUE = b'{"event_id": "broken-call", "call_id": "K-1", '  # cut off mid-object


@dataclass(frozen=True)
class Desk:
    settings: Settings
    dsn: str
    env: dict[str, str]
    shipment_id: str
    customer_id: str
    broken_key: bytes
    event_ids: dict[str, str]  # created, damaged, carrier, complaint


# ------------------------------------------------------------------------------------------ fixtures


def _settings(kafka_bootstrap: str, kafka_is_embedded: bool, dsn: str, tag: str, data_dir: Path) -> Settings:
    """Like conftest's hub_settings, for a module-scoped hub (hub_settings is per test)."""
    topics = {
        name: f"{info.default}.o{tag}"
        for name, info in Settings.model_fields.items()
        if name.startswith("topic_") and isinstance(info.default, str)
    }
    return Settings(
        _env_file=None,
        kafka_bootstrap=kafka_bootstrap,
        database_url=SecretStr(dsn),
        migrate_database_url=None,
        data_dir=data_dir,
        consumer_group=f"hub-ops-{tag}",
        client_id=f"hub-ops-{tag}",
        kafka_idempotence=not kafka_is_embedded,
        topic_partitions=3,
        http_port=0,
        batch_timeout_ms=20,
        # The module checks what the ops commands show of its inputs; a clock or a purge running under
        # it would add escalations and tasks at moments of its own (the clock has its own tests).
        scheduler_interval_s=0,
        purge_interval_s=0,
        **topics,
    )


def _cli_env(s: Settings, dsn: str) -> dict[str, str]:
    topics = {f"HUB_{name.upper()}": getattr(s, name) for name in Settings.model_fields if name.startswith("topic_")}
    return {
        "HUB_KAFKA_BOOTSTRAP": s.kafka_bootstrap,
        "HUB_DATABASE_URL": dsn,
        "HUB_MIGRATE_DATABASE_URL": "",
        "HUB_KAFKA_IDEMPOTENCE": str(s.kafka_idempotence).lower(),
        "HUB_CLIENT_ID": s.client_id,
        "COLUMNS": "220",  # wide enough that no table cell is cut
        **{k: str(v) for k, v in topics.items()},
    }


async def _admin(dsn: str, sql: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


async def _publish_inputs(s: Settings, shipment_id: str, customer_id: str, broken_key: bytes) -> dict[str, str]:
    ids = {name: f"{name}-{uuid.uuid4()}" for name in ("created", "damaged", "carrier", "complaint")}
    async with WarehouseFeed(settings=s) as warehouse:
        await warehouse.publish_many(
            [
                {
                    "event_id": ids["created"],
                    "occurred_at": THREE_DAYS_AGO - timedelta(hours=1),
                    "source": "wms-sh-01",
                    "shipment_id": shipment_id,
                    "customer_id": customer_id,
                    "type": "created",
                    "carrier_id": "SF",
                    "promised_delivery_at": THREE_DAYS_AGO + timedelta(days=1),
                },
                {
                    "event_id": ids["damaged"],
                    "occurred_at": THREE_DAYS_AGO,
                    "source": "wms-sh-01",
                    "shipment_id": shipment_id,
                    "customer_id": customer_id,
                    "type": "exception",
                    "exception": {"code": "damaged", "description": "crushed carton"},
                    "declared_value": {"amount": 1200, "currency": "CNY"},
                },
            ]
        )
    async with CarrierFeed(settings=s) as carrier:
        await carrier.publish(
            {
                "event_id": ids["carrier"],
                "occurred_at": THREE_DAYS_AGO + timedelta(minutes=30),
                "source": "carrier:SF",
                "carrier_id": "SF",
                "carrier_tracking_no": "SF123",
                "shipment_id": shipment_id,
                "status": "in_transit",
                "eta": THREE_DAYS_AGO + timedelta(days=2),
                "location": {"city": "Suzhou"},
            }
        )
    async with CallCentreFeed(settings=s) as calls:
        await calls.publish(
            {
                "event_id": ids["complaint"],
                "occurred_at": NOW - timedelta(minutes=10),
                "source": "cc-01",
                "call_id": "CALL-1",
                "customer_id": customer_id,
                "shipment_id": shipment_id,
                "direction": "inbound",
                "channel": "phone",
                "category": "complaint",
                "caller_phone": "+86 138 0013 8000",
                "notes": "box arrived crushed",
            }
        )
        await calls.publish_raw(BROKEN_VALUE, broken_key)
    return ids


async def _wait_for(check: Callable[[], Awaitable[bool]], what: str, timeout_s: float = ROWS_TIMEOUT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s}s waiting for {what}")
        await asyncio.sleep(0.2)


async def _fetchval(dsn: str, sql: str, *args):
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def _fetch(dsn: str, sql: str, *args) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetch(sql, *args)
    finally:
        await conn.close()


async def _outbox_sent(dsn: str) -> bool:
    return await _fetchval(dsn, "SELECT count(*) = 0 FROM outbox WHERE sent_at IS NULL")


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def desk(
    kafka_bootstrap: str, kafka_is_embedded: bool, pg_admin_dsn: str, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Desk]:
    tag = uuid.uuid4().hex[:6]
    name = f"hub_test_ops_{tag}"
    await _admin(pg_admin_dsn, f'CREATE DATABASE "{name}"')
    dsn = urlunsplit(urlsplit(pg_admin_dsn)._replace(path=f"/{name}"))
    try:
        await apply_migrations(dsn)
        s = _settings(kafka_bootstrap, kafka_is_embedded, dsn, tag, tmp_path_factory.mktemp("ops"))
        async with HubRuntime(s):
            shipment_id, customer_id, broken_key = f"SH-{tag}", f"C-{tag}", f"C-broken-{tag}".encode()
            ids = await _publish_inputs(s, shipment_id, customer_id, broken_key)

            async def settled() -> bool:
                tasks = await _fetchval(dsn, "SELECT count(*) FROM coordination_tasks")
                letters = await _fetchval(dsn, "SELECT count(*) FROM dead_letters")
                return tasks >= 3 and letters >= 1 and await _outbox_sent(dsn)

            await _wait_for(settled, "3 tasks, 1 dead letter and every alert published")
            yield Desk(s, dsn, _cli_env(s, dsn), shipment_id, customer_id, broken_key, ids)
    finally:
        await _admin(pg_admin_dsn, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def hub_cli(desk: Desk, *args: str) -> Result:
    """Run `hub ARGS` as the ops team would; in a thread, since the command runs its own event loop."""
    return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=desk.env, catch_exceptions=False)


def _json(result: Result):
    assert result.exit_code == 0, result.output
    return orjson.loads(result.stdout)


async def _task_id(desk: Desk, department: str) -> str:
    return str(
        await _fetchval(
            desk.dsn,
            "SELECT task_id FROM coordination_tasks WHERE department = $1 ORDER BY created_at LIMIT 1",
            department,
        )
    )


# --------------------------------------------------------------------------------------------- tasks


async def test_tasks_list_orders_by_severity_and_filters(desk: Desk):
    everything = _json(await hub_cli(desk, "tasks", "list", "--json"))
    assert [(t["severity"], t["department"]) for t in everything] == [
        ("P1", "claims"),
        ("P2", "complaints"),
        ("P3", "carrier_liaison"),
    ]
    assert {t["shipment_id"] for t in everything} == {desk.shipment_id}
    assert all(t["customer_id"] == desk.customer_id for t in everything)
    datetime.fromisoformat(everything[0]["due_at"])  # ISO timestamps

    claims = _json(await hub_cli(desk, "tasks", "list", "--department", "claims", "--json"))
    assert [t["kind"] for t in claims] == ["damage"]
    p2 = _json(await hub_cli(desk, "tasks", "list", "--severity", "P2", "--json"))
    assert [t["department"] for t in p2] == ["complaints"]
    overdue = _json(await hub_cli(desk, "tasks", "list", "--overdue", "--json"))
    assert {t["department"] for t in overdue} == {"claims", "carrier_liaison"}  # raised three days ago
    assert all(datetime.fromisoformat(t["due_at"]) < datetime.now(UTC) for t in overdue)
    assert _json(await hub_cli(desk, "tasks", "list", "--status", "done", "--json")) == []
    assert len(_json(await hub_cli(desk, "tasks", "list", "--limit", "1", "--json"))) == 1

    table = await hub_cli(desk, "tasks", "list")
    assert table.exit_code == 0, table.output
    for task in everything:
        assert task["task_id"] in table.stdout and task["title"] in table.stdout
    assert "overdue" in table.stdout


async def test_tasks_show_and_unknown_ids(desk: Desk):
    task_id = await _task_id(desk, "claims")
    task = _json(await hub_cli(desk, "tasks", "show", task_id, "--json"))
    assert task["task_id"] == task_id and task["severity"] == "P1"
    assert task["details"]["declared_value"] == {"amount": 1200.0, "currency": "CNY"}
    shown = await hub_cli(desk, "tasks", "show", task_id)
    assert shown.exit_code == 0 and "Insurance claim" in shown.stdout

    missing = await hub_cli(desk, "tasks", "show", str(uuid.uuid4()))
    assert missing.exit_code == 1 and "no task" in missing.stderr and "hub tasks list" in missing.stderr
    not_an_id = await hub_cli(desk, "tasks", "claim", "nonsense", "--by", "alice")
    assert not_an_id.exit_code == 1 and "not a task id" in not_an_id.stderr


async def test_claim_then_resolve_records_who_and_when(desk: Desk):
    task_id = await _task_id(desk, "carrier_liaison")
    select = (
        "SELECT status, claimed_by, claimed_at, resolved_by, resolved_at FROM coordination_tasks WHERE task_id = $1"
    )

    assert (await hub_cli(desk, "tasks", "claim", task_id, "--by", "zoe")).exit_code == 0
    held = await hub_cli(desk, "tasks", "claim", task_id, "--by", "alice")
    assert held.exit_code == 1 and "held by zoe" in held.stderr  # a held task is taken over only on purpose
    claimed = await hub_cli(desk, "tasks", "claim", task_id, "--by", "alice", "--take-over")
    assert claimed.exit_code == 0 and "took it over from zoe" in claimed.stdout  # a hand-over is pointed out
    [row] = await _fetch(desk.dsn, select, uuid.UUID(task_id))
    assert (row["status"], row["claimed_by"], row["resolved_by"]) == ("in_progress", "alice", None)
    assert abs(row["claimed_at"] - datetime.now(UTC)) < timedelta(minutes=1)

    resolved = await hub_cli(desk, "tasks", "resolve", task_id, "--by", "bob", "--resolution", "carrier re-routed")
    assert resolved.exit_code == 0, resolved.output
    [row] = await _fetch(desk.dsn, select, uuid.UUID(task_id))
    assert (row["status"], row["claimed_by"], row["resolved_by"]) == ("done", "alice", "bob")
    assert row["resolved_at"] >= row["claimed_at"]

    again = await hub_cli(desk, "tasks", "claim", task_id, "--by", "carol")
    assert again.exit_code == 1 and "already done by bob" in again.stderr
    [row] = await _fetch(desk.dsn, select, uuid.UUID(task_id))
    assert (row["status"], row["claimed_by"]) == ("done", "alice")  # unchanged
    assert task_id not in (await hub_cli(desk, "tasks", "list")).stdout  # closed tasks leave the default list
    done = _json(await hub_cli(desk, "tasks", "list", "--status", "done", "--json"))
    assert [(t["task_id"], t["resolved_by"]) for t in done] == [(task_id, "bob")]


async def test_resolve_cancel(desk: Desk):
    task_id = await _task_id(desk, "complaints")
    cancelled = await hub_cli(desk, "tasks", "resolve", task_id, "--by", "dave", "--cancel", "--resolution", "dup")
    assert cancelled.exit_code == 0, cancelled.output
    task = _json(await hub_cli(desk, "tasks", "show", task_id, "--json"))
    assert (task["status"], task["resolved_by"]) == ("cancelled", "dave")
    again = await hub_cli(desk, "tasks", "resolve", task_id, "--by", "dave", "--resolution", "done after all")
    assert again.exit_code == 1 and "already cancelled" in again.stderr


# ------------------------------------------------------------------------------------------ shipment


async def test_shipment_file_has_both_streams_tasks_and_notifications(desk: Desk):
    file = _json(await hub_cli(desk, "shipment", desk.shipment_id, "--json"))
    sheet = file["sheet"]
    assert sheet["customer_id"] == desk.customer_id and sheet["carrier_id"] == "SF"
    assert datetime.fromisoformat(sheet["promised_delivery_at"]) == THREE_DAYS_AGO + timedelta(days=1)
    assert datetime.fromisoformat(sheet["eta"]) == THREE_DAYS_AGO + timedelta(days=2)
    assert sheet["status"] == "in_transit"
    assert datetime.fromisoformat(sheet["last_event_at"]) == THREE_DAYS_AGO + timedelta(minutes=30)

    ids, topics = desk.event_ids, desk.settings
    assert [(h["event_id"], h["stream"], h["what"]) for h in file["history"]] == [
        (ids["created"], topics.topic_shipment_events, "created"),
        (ids["damaged"], topics.topic_shipment_events, "exception"),
        (ids["carrier"], topics.topic_carrier_updates, "in_transit"),
        (ids["complaint"], topics.topic_call_logs, "complaint"),
    ]
    assert file["history"][3]["payload"]["caller_phone"] == "(hidden)"
    assert sorted(t["kind"] for t in file["tasks"]) == ["complaint", "damage", "delay"]
    assert sorted(n["kind"] for n in file["notifications"]) == ["complaint_received", "delay", "exception"]

    screen = await hub_cli(desk, "shipment", desk.shipment_id)
    assert screen.exit_code == 0, screen.output
    for needle in (
        *ids.values(),
        topics.topic_carrier_updates,
        topics.topic_call_logs,
        "exception damaged",
        "after the promise",
        "Insurance claim",
        "complaint_received",
        "box arrived crushed",
    ):
        assert needle in screen.stdout, needle
    assert "138 0013" not in screen.stdout

    unknown = await hub_cli(desk, "shipment", "SH-does-not-exist")
    assert unknown.exit_code == 1 and "no shipment 'SH-does-not-exist'" in unknown.stderr


# --------------------------------------------------------------------------------------- dead letters


async def _broken_letter(desk: Desk) -> dict:
    """The dead letter of the module's broken record (the oldest with its key: a replay may add another)."""
    letters = _json(await hub_cli(desk, "dlq", "list", "--json"))
    return [d for d in letters if d["key"] == desk.broken_key.decode()][-1]


async def test_dlq_list_and_show_the_invalid_record(desk: Desk):
    letter = await _broken_letter(desk)
    assert letter["reason"] == "invalid_json"
    assert letter["source"]["topic"] == desk.settings.topic_call_logs
    assert letter["replayed_at"] is None and letter["value_size"] == len(BROKEN_VALUE)
    assert _json(await hub_cli(desk, "dlq", "list", "--reason", "validation_error", "--json")) == []
    assert _json(await hub_cli(desk, "dlq", "list", "--topic", desk.settings.topic_call_logs, "--json"))
    assert _json(await hub_cli(desk, "dlq", "list", "--topic", "no.such.topic", "--json")) == []

    shown = _json(await hub_cli(desk, "dlq", "show", letter["id"], "--json"))
    assert shown["value"] == {
        "encoding": "utf-8",
        "text": BROKEN_VALUE.decode(),
        "shown_bytes": len(BROKEN_VALUE),
        "total_bytes": len(BROKEN_VALUE),
        "truncated": False,
    }
    screen = await hub_cli(desk, "dlq", "show", letter["id"])
    assert screen.exit_code == 0 and "invalid_json" in screen.stdout and '"call_id": "K-1"' in screen.stdout
    table = await hub_cli(desk, "dlq", "list")
    assert letter["id"] in table.stdout and "invalid_json" in table.stdout

    unknown = await hub_cli(desk, "dlq", "show", str(uuid.uuid4()))
    assert unknown.exit_code == 1 and "hub dlq list" in unknown.stderr


async def test_dlq_replay_with_fixed_file_is_processed_and_letter_kept(desk: Desk, tmp_path: Path):
    letter = await _broken_letter(desk)
    fixed_id = f"fixed-{uuid.uuid4()}"
    fixed = tmp_path / "fixed.json"
    fixed.write_bytes(
        orjson.dumps(
            {
                "event_id": fixed_id,
                "occurred_at": NOW.isoformat(),
                "source": "cc-01",
                "call_id": "K-1",
                "customer_id": desk.broken_key.decode(),
                "order_id": "ORD-9",
                "direction": "inbound",
                "channel": "chat",
                "category": "urgent_order",
                "requested_deadline": (NOW + timedelta(hours=1)).isoformat(),
            },
            option=orjson.OPT_INDENT_2,
        )
    )

    invalid = tmp_path / "still-broken.json"
    invalid.write_text('{"event_id": "x", "occurred_at": "2025-01-01T00:00:00"}')  # naive time, no fields
    refused = await hub_cli(desk, "dlq", "replay", letter["id"], "--file", str(invalid))
    assert refused.exit_code == 1 and "nothing was published" in refused.stderr

    replayed = await hub_cli(desk, "dlq", "replay", letter["id"], "--file", str(fixed))
    assert replayed.exit_code == 0, replayed.output

    async def processed() -> bool:
        tasks = await _fetchval(
            desk.dsn,
            "SELECT count(*) FROM coordination_tasks WHERE source_event_id = $1 "
            "AND department = 'dispatch' AND severity = 'P1'",
            fixed_id,
        )
        notes = await _fetchval(
            desk.dsn,
            "SELECT count(*) FROM customer_notifications WHERE source_event_id = $1 "
            "AND kind = 'urgent_order_confirmed'",
            fixed_id,
        )
        return tasks == 1 and notes == 1

    await _wait_for(processed, "the replayed event's task and notification")
    [row] = await _fetch(desk.dsn, "SELECT topic, partition FROM inbox WHERE event_id = $1", fixed_id)
    assert row["topic"] == desk.settings.topic_call_logs
    kept = _json(await hub_cli(desk, "dlq", "show", letter["id"], "--json"))
    assert kept["value"]["text"] == BROKEN_VALUE.decode()
    assert datetime.fromisoformat(kept["replayed_at"]) > datetime.fromisoformat(kept["created_at"])
    await _wait_for(lambda: _outbox_sent(desk.dsn), "the urgent-order alert to be published")


async def test_dlq_replay_without_file_republishes_original_bytes(desk: Desk):
    letter = await _broken_letter(desk)
    replayed = await hub_cli(desk, "dlq", "replay", letter["id"])
    assert replayed.exit_code == 0, replayed.output

    async def dead_again() -> bool:
        return await _fetchval(desk.dsn, "SELECT count(*) FROM dead_letters WHERE value = $1", BROKEN_VALUE) == 2

    await _wait_for(dead_again, "the republished bytes to be dead-lettered again")
    rows = await _fetch(
        desk.dsn,
        "SELECT id, source_offset, replayed_at FROM dead_letters WHERE value = $1 ORDER BY created_at",
        BROKEN_VALUE,
    )
    assert str(rows[0]["id"]) == letter["id"] and rows[0]["replayed_at"] is not None
    assert rows[1]["replayed_at"] is None
    assert (await hub_cli(desk, "dlq", "replay", str(uuid.uuid4()))).exit_code == 1


# -------------------------------------------------------------------------------------------- alerts


async def _alerts_on_topics(desk: Desk) -> Counter:
    """(queue, severity) of every distinct alert the hub published (its outbox, all sent)."""
    await _wait_for(lambda: _outbox_sent(desk.dsn), "every alert to be published")
    queue_of = {
        desk.settings.topic_alerts_exceptions: "exceptions",
        desk.settings.topic_alerts_urgent: "urgent_orders",
        desk.settings.topic_alerts_complaints: "complaints",
    }
    rows = await _fetch(
        desk.dsn, "SELECT DISTINCT ON (message_id) topic, value FROM outbox WHERE topic = ANY($1)", list(queue_of)
    )
    return Counter((queue_of[r["topic"]], orjson.loads(r["value"])["severity"]) for r in rows)


def _table_after(text: str, title: str) -> list[list[str]]:
    """The cell texts of the rich table titled `title` in an exported screen, header row first."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if title in line)
    rows = []
    for line in lines[start + 1 :]:
        if line.lstrip().startswith("└"):
            break
        cells = [c.strip() for c in re.split("[│┃]", line)[1:-1]]  # body and header rules
        if cells:
            rows.append(cells)
    return rows


def _counts_from_screen(text: str) -> dict[str, dict[str, int]]:
    """The 'per queue and severity' table: queue -> {column: number}."""
    header, *rows = _table_after(text, "Alerts per queue and severity")
    return {cells[0]: {h: int(c) for h, c in zip(header[1:], cells[1:], strict=False)} for cells in rows}


async def test_alerts_watch_once_counts_match_the_topics(desk: Desk, tmp_path: Path):
    expected = await _alerts_on_topics(desk)
    assert expected[("exceptions", "P1")] == 1 and expected[("complaints", "P2")] == 1  # damage, complaint
    screen_file = tmp_path / "screen.txt"
    watched = await hub_cli(desk, "alerts", "watch", "--once", "--from-beginning", "--export-text", str(screen_file))
    assert watched.exit_code == 0, watched.output
    text = screen_file.read_text()
    counts = _counts_from_screen(text)
    assert set(counts) == {"exceptions", "urgent_orders", "complaints", "escalations"}
    for queue, row in counts.items():
        for severity in ("P1", "P2", "P3", "P4"):
            assert row[severity] == expected[(queue, severity)], (queue, severity, text)
        assert row["total"] == sum(n for (q, _), n in expected.items() if q == queue)
    assert f"{sum(expected.values())} distinct alert(s)" in text
    assert f"damage: shipment {desk.shipment_id}" in text and f"complaint: shipment {desk.shipment_id}" in text
    # Still open from the module's inputs: the damage claim, raised three days ago with 2 h to answer.
    overdue = {cells[0]: cells[1] for cells in _table_after(text, "Overdue tasks")[1:]}
    assert overdue == {"claims": "1"}
    assert "Alerts per queue and severity" in watched.stdout and f"saved as text to {screen_file}" in watched.stdout


async def test_alerts_watch_filters(desk: Desk, tmp_path: Path):
    expected = await _alerts_on_topics(desk)
    complaints = tmp_path / "complaints.txt"
    assert (
        await hub_cli(
            desk,
            "alerts",
            "watch",
            "--once",
            "--from-beginning",
            "--queue",
            "complaints",
            "--export-text",
            str(complaints),
        )
    ).exit_code == 0
    counts = _counts_from_screen(complaints.read_text())
    assert list(counts) == ["complaints"]
    assert counts["complaints"]["total"] == sum(n for (q, _), n in expected.items() if q == "complaints")
    assert "damage:" not in complaints.read_text()

    p1 = tmp_path / "p1.txt"
    assert (
        await hub_cli(
            desk, "alerts", "watch", "--once", "--from-beginning", "--severity", "P1", "--export-text", str(p1)
        )
    ).exit_code == 0
    text = p1.read_text()
    counts = _counts_from_screen(text)
    assert all(set(row) == {"P1", "total"} for row in counts.values())
    assert {q: row["P1"] for q, row in counts.items()} == {
        q: expected[(q, "P1")] for q in ("exceptions", "urgent_orders", "complaints", "escalations")
    }
    assert "damage:" in text and "complaint:" not in text

    latest = await hub_cli(desk, "alerts", "watch", "--once")  # without --from-beginning: only new alerts
    assert latest.exit_code == 0 and "0 distinct alert(s)" in latest.stdout and "--from-beginning" in latest.stdout


# ------------------------------------------------------------------------------- pure parts (no I/O)


def _alert(alert_id: str, severity: str, minutes: int) -> Alert:
    at = NOW + timedelta(minutes=minutes)
    return Alert(
        alert_id=alert_id,
        kind="delay",
        severity=severity,
        rule="delay",
        shipment_id="SH-1",
        customer_id="C-1",
        summary=f"alert {alert_id}",
        task_id=alert_id,
        created_at=at,
        due_at=at,
        source=AlertSource(topic="t", partition=0, offset=minutes, event_id=alert_id),
    )


def test_alert_board_counts_each_alert_once_and_keeps_the_newest():
    board = AlertBoard(keep=2)
    first = [SeenAlert("exceptions", _alert("a", "P1", 1)), SeenAlert("complaints", _alert("b", "P2", 2))]
    assert board.add(first) == 2
    assert board.add([SeenAlert("exceptions", _alert("a", "P1", 1))]) == 0  # the relay re-sent it
    assert board.add([SeenAlert("exceptions", _alert("c", "P3", 3))]) == 1
    assert board.counts == Counter({("exceptions", "P1"): 1, ("complaints", "P2"): 1, ("exceptions", "P3"): 1})
    assert [s.alert.alert_id for s in board.newest] == ["c", "b"] and board.total == 3

    filtered = AlertBoard(queue="exceptions", severity="P1")
    filtered.add([*first, SeenAlert("exceptions", _alert("c", "P3", 3))])
    assert filtered.counts == Counter({("exceptions", "P1"): 1})


def test_readable_shows_text_or_hex_and_says_when_it_is_cut():
    assert readable(None) is None
    assert readable(b'{"a": 1}') == ReadableBytes('{"a": 1}', "utf-8", 8, 8)
    binary = readable(b"\xff\x00\x01")
    assert (binary.encoding, binary.text, binary.truncated) == ("hex", "ff0001", False)
    long = readable("é".encode() * 10, limit=5)  # the limit falls inside a two-byte character
    assert long == ReadableBytes("éé", "utf-8", shown_bytes=4, total_bytes=20) and long.truncated
