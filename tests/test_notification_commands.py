"""`hub notifications list|show|retry|resend` (contract 1.1, "Notification dispatch", ops commands) and
the customer CSV's optional columns.

Only Postgres: notices are written as the hub writes them (hub/store/writes.py) and moved through
their lifecycle by a real Dispatcher round against local receivers (hub/dev/receivers.py), or put
in a precise state with SQL where a test needs one; commands run through typer's CliRunner.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import orjson
import pytest
from pydantic import SecretStr
from typer.testing import CliRunner, Result

from hub.cli import app
from hub.config import Settings
from hub.core.ids import stable_id
from hub.core.outputs import NotificationDecision
from hub.core.rules import load_rules
from hub.dev.receivers import HttpReceiver, SmtpSink
from hub.dispatch import dispatcher as dispatch_module
from hub.dispatch import queries as dispatch_queries
from hub.dispatch.dispatcher import Dispatcher
from hub.ops import notifications as ops
from hub.ops.customers import create_webhook_secret
from hub.store.writes import write_notifications
from schemas.enums import NotificationKind
from tests.support import migrated

pytestmark = pytest.mark.postgres

CSV_HEADER = (
    "customer_id,name,tier,language,preferred_channel,email,phone,"
    "webhook_url,timezone,quiet_hours,credit_rating,account_manager"
)
BODY = {"zh": "您的包裹 S1 可能会延迟送达。", "en": "Your shipment S1 may arrive late."}


@pytest.fixture
def desk_settings(database_url: str, tmp_path: Path) -> Settings:
    """What the ops commands and the dispatcher need: the database (no Kafka)."""
    return Settings(
        _env_file=None,
        database_url=SecretStr(database_url),
        migrate_database_url=None,
        data_dir=tmp_path / "hub-data",
        scheduler_interval_s=0,
    )


@pytest.fixture
async def conn(desk_settings: Settings) -> AsyncIterator[asyncpg.Connection]:
    connection = await asyncpg.connect(await migrated(desk_settings))
    yield connection
    await connection.close()


@pytest.fixture
def hub(desk_settings: Settings):
    env = {**desk_settings.child_environment(), "COLUMNS": "250"}  # wide enough that no cell is cut

    async def invoke(*args: str) -> Result:
        # in a thread: each command runs its own event loop
        return await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env, catch_exceptions=False)

    return invoke


@pytest.fixture
async def smtp() -> AsyncIterator[SmtpSink]:
    sink = SmtpSink()
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture
async def http() -> AsyncIterator[HttpReceiver]:
    receiver = HttpReceiver()
    await receiver.start()
    yield receiver
    await receiver.stop()


@pytest.fixture
async def dispatcher(desk_settings: Settings, smtp: SmtpSink) -> AsyncIterator[Dispatcher]:
    """The real dispatcher on the real clock (retried and resent notices are due `now`)."""
    settings = desk_settings.model_copy(
        update={
            "dispatch_enabled": True,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_starttls": False,
            "smtp_from": "service@hub.example",
            "webhook_insecure_hosts": "127.0.0.1",
        }
    )
    hub_dispatcher = Dispatcher(settings, load_rules(), settings.destinations, jitter=lambda: 0.0)
    yield hub_dispatcher
    await hub_dispatcher.client.aclose()


def ok(result: Result) -> str:
    assert result.exit_code == 0, result.output
    return result.stdout


def refused(result: Result, *needles: str) -> str:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    text = " ".join(result.stderr.split())  # rich wraps long messages
    for needle in needles:
        assert needle in text, text
    return text


def listed(result: Result) -> list[dict[str, Any]]:
    return orjson.loads(ok(result))


async def customer(conn: asyncpg.Connection, customer_id: str, channel: str, **fields: Any) -> None:
    await conn.execute(
        "INSERT INTO customers (customer_id, preferred_channel, email, phone, webhook_url) VALUES ($1, $2, $3, $4, $5)",
        customer_id,
        channel,
        fields.get("email"),
        fields.get("phone"),
        fields.get("webhook_url"),
    )


async def notice(
    conn: asyncpg.Connection,
    customer_id: str,
    channel: str,
    kind: str = "delay",
    shipment_id: str | None = "S1",
    created_ago: timedelta = timedelta(0),
    language: str = "zh",
) -> str:
    """A notice as the hub writes one: pending, due now (or when it was created)."""
    source = f"evt-{customer_id}-{kind}-{shipment_id}-{channel}"
    nid = stable_id("notification", source, kind)
    await write_notifications(
        conn,
        [
            NotificationDecision(
                nid, customer_id, shipment_id, NotificationKind(kind), channel, language, BODY[language], source
            )
        ],
    )
    created = datetime.now(UTC) - created_ago
    await conn.execute(
        "UPDATE customer_notifications SET created_at = $2, next_attempt_at = $2 WHERE notification_id = $1",
        uuid.UUID(nid),
        created,
    )
    return nid


async def set_state(conn: asyncpg.Connection, nid: str, **columns: Any) -> None:
    names = list(columns)
    assignments = ", ".join(f"{name} = ${i}" for i, name in enumerate(names, start=2))
    await conn.execute(
        f"UPDATE customer_notifications SET {assignments} WHERE notification_id = $1",
        uuid.UUID(nid),
        *columns.values(),
    )


async def state(conn: asyncpg.Connection, nid: str) -> asyncpg.Record:
    return await conn.fetchrow("SELECT * FROM customer_notifications WHERE notification_id = $1", uuid.UUID(nid))


async def tries(conn: asyncpg.Connection, nid: str) -> list[tuple[int, str, int | None]]:
    rows = await conn.fetch(
        "SELECT attempt, outcome, status_code FROM notification_attempts WHERE notification_id = $1 ORDER BY attempt",
        uuid.UUID(nid),
    )
    return [(r["attempt"], r["outcome"], r["status_code"]) for r in rows]


async def claim(conn: asyncpg.Connection) -> list[str]:
    """What the dispatcher's own CLAIM query takes now."""
    async with conn.transaction():
        rows = await conn.fetch(dispatch_queries.CLAIM, datetime.now(UTC) + timedelta(seconds=1), 100, 60)
    return sorted(r["notification_id"] for r in rows)


def test_the_ops_module_names_the_dispatchers_channel_and_failure_timer():
    # hub.ops may not import hub.dispatch (sibling layers): the names are repeated there, checked here
    assert ops.DISPATCH_WAKE == dispatch_queries.DISPATCH_WAKE
    assert ops.FAILED_TIMER == dispatch_module.FAILED_TIMER


# ------------------------------------------------------------------------------------------------ list


async def test_list_is_newest_first_filters_and_says_what_each_status_means(conn, hub, dispatcher, smtp):
    await customer(conn, "C-MAIL", "email", email="ops@huadong.example")
    await customer(conn, "C-PHONE", "phone", phone="+86 21 5555 0199")
    sent = await notice(conn, "C-MAIL", "email", kind="delay", created_ago=timedelta(minutes=50))
    assert (await dispatcher.round(conn)).sent == {"email": 1}
    failed = await notice(
        conn, "C-MAIL", "email", kind="exception", shipment_id="S2", created_ago=timedelta(minutes=40)
    )
    smtp.replies = ["550 5.1.1 no such mailbox"]
    assert (await dispatcher.round(conn)).failed == {"email": 1}
    calling = await notice(conn, "C-PHONE", "phone", kind="complaint_received", created_ago=timedelta(minutes=30))
    assert (await dispatcher.round(conn)).calling == {"phone": 1}
    later = await notice(conn, "C-MAIL", "email", kind="delivered", created_ago=timedelta(minutes=20))
    await set_state(
        conn, later, next_attempt_at=datetime.now(UTC) + timedelta(minutes=4, seconds=30), attempts=1, last_error="x"
    )
    call_task = str((await state(conn, calling))["call_task_id"])

    everything = listed(await hub("notifications", "list", "--json"))
    assert [n["notification_id"] for n in everything] == [later, calling, failed, sent]
    assert {n["status"] for n in everything} == {"pending", "sent", "failed"}
    by_id = {n["notification_id"]: n for n in everything}
    assert by_id[calling]["call_task_id"] == call_task and by_id[calling]["call_task_status"] == "open"
    assert by_id[failed]["last_error"].startswith("SMTP 550") and by_id[failed]["tries"] == 1

    async def only(*options: str) -> list[str]:
        return [n["notification_id"] for n in listed(await hub("notifications", "list", "--json", *options))]

    assert await only("--status", "failed") == [failed]
    assert await only("--status", "pending") == [later, calling]
    assert await only("--channel", "phone") == [calling]
    assert await only("--customer", "C-MAIL") == [later, failed, sent]
    assert await only("--shipment", "S2") == [failed]
    assert await only("--kind", "delay") == [sent]
    assert await only("--customer", "C-MAIL", "--status", "sent") == [sent]
    assert await only("--customer", "C-NOBODY") == []
    assert await only("--limit", "2") == [later, calling]

    table = ok(await hub("notifications", "list"))
    assert "next try in 4m" in table
    assert f"waits for call-back task {call_task} (open)" in table
    assert "SMTP 550" in table and "no such mailbox" in table
    assert "last error: x" in table
    assert all(nid in table for nid in (sent, failed, calling, later))
    assert "more match" in ok(await hub("notifications", "list", "--limit", "1"))
    assert ok(await hub("notifications", "list", "--customer", "C-NOBODY")).strip() == "no notifications match"


# ------------------------------------------------------------------------------------------------ show


async def test_show_has_every_column_the_attempts_and_a_phone_notices_call_back_task(conn, hub, dispatcher, smtp):
    await customer(conn, "C-MAIL", "email", email="ops@huadong.example")
    await customer(conn, "C-PHONE", "phone", phone="+86 21 5555 0199")
    nid = await notice(conn, "C-MAIL", "email")
    smtp.replies = ["451 4.3.0 try again later"]
    assert (await dispatcher.round(conn)).retried == {"email": 1}
    await set_state(conn, nid, next_attempt_at=datetime.now(UTC))  # due again now, not in 5 s
    assert (await dispatcher.round(conn)).sent == {"email": 1}

    view = orjson.loads(ok(await hub("notifications", "show", nid, "--json")))
    note = view["notification"]
    assert (note["status"], note["attempts"], note["tries"], note["channel"]) == ("sent", 2, 2, "email")
    assert note["body"] == BODY["zh"] and note["last_error"] is None and note["sent_at"] is not None
    assert [(a["attempt"], a["outcome"], a["status_code"]) for a in view["attempts"]] == [
        (1, "retry", 451),
        (2, "sent", 250),
    ]
    assert view["attempts"][0]["error"].startswith("SMTP 451") and view["resends"] == []

    screen = ok(await hub("notifications", "show", nid))
    for needle in ("notification", nid, "source event", "evt-C-MAIL-delay-S1-email", BODY["zh"], "attempts"):
        assert needle in screen
    assert "2 in the current schedule, 2 in all" in screen
    assert "451" in screen and "retry" in screen and "250" in screen and " ms" in screen
    assert "whsec_" not in screen

    calling = await notice(conn, "C-PHONE", "phone", kind="complaint_received", shipment_id=None)
    await dispatcher.round(conn)
    call_task = str((await state(conn, calling))["call_task_id"])
    ok(await hub("tasks", "claim", call_task, "--by", "lin"))
    phone = " ".join(ok(await hub("notifications", "show", calling)).split())
    assert f"call-back task {call_task} (in_progress, held by lin)" in phone
    assert "no tries yet" in phone
    assert orjson.loads(ok(await hub("notifications", "show", calling, "--json")))["call_task"]["status"] == (
        "in_progress"
    )

    refused(await hub("notifications", "show", str(uuid.uuid4())), "no notification", "hub notifications list")
    refused(await hub("notifications", "show", "nope"), "'nope' is not a notification id")


# ----------------------------------------------------------------------------------------------- retry


async def test_retry_puts_a_failed_notice_back_where_the_dispatchers_claim_finds_it(conn, hub):
    await customer(conn, "C-MAIL", "email", email="ops@huadong.example")
    nid = await notice(conn, "C-MAIL", "email", created_ago=timedelta(hours=1))
    failed_at = datetime.now(UTC) - timedelta(minutes=30)
    await conn.execute(
        "INSERT INTO notification_attempts (notification_id, attempt, at, outcome, status_code, error, duration_ms) "
        "VALUES ($1, 1, $2, 'failed', 550, 'SMTP 550: no such mailbox', 12)",
        uuid.UUID(nid),
        failed_at,
    )
    await set_state(
        conn,
        nid,
        status="failed",
        failed_at=failed_at,
        next_attempt_at=None,
        attempts=1,
        last_error="SMTP 550: no such mailbox",
    )
    assert await claim(conn) == []

    before = datetime.now(UTC)
    out = " ".join(ok(await hub("notifications", "retry", nid)).split())
    assert f"notification {nid} (delay to C-MAIL by email) is pending again, due now" in out
    assert "its last error, for reference: SMTP 550: no such mailbox" in out
    row = await state(conn, nid)
    assert (row["status"], row["attempts"], row["failed_at"]) == ("pending", 0, None)
    assert row["last_error"] == "SMTP 550: no such mailbox"  # kept for reference
    assert before - timedelta(seconds=1) <= row["next_attempt_at"] <= datetime.now(UTC)
    assert await tries(conn, nid) == [(1, "failed", 550)]  # the history stays
    assert await claim(conn) == [nid]

    listed_now = listed(await hub("notifications", "list", "--json", "--status", "pending"))
    assert [(n["notification_id"], n["attempts"], n["tries"]) for n in listed_now] == [(nid, 0, 1)]


async def test_retry_refuses_what_is_not_failed_or_would_fail_again_and_says_what_to_do(conn, hub, dispatcher):
    await customer(conn, "C-MAIL", "email", email="ops@huadong.example")
    await customer(conn, "C-HOOK", "webhook", webhook_url="https://hooks.example/hub")
    await customer(conn, "C-PHONE", "phone", phone="+86 21 5555 0199")
    now = datetime.now(UTC)

    pending = await notice(conn, "C-MAIL", "email", kind="delay")
    await set_state(conn, pending, next_attempt_at=now + timedelta(minutes=5), attempts=1)
    refused(await hub("notifications", "retry", pending), "is pending: the dispatcher tries it at", "nothing to retry")

    sent = await notice(conn, "C-MAIL", "email", kind="exception")
    await set_state(conn, sent, status="sent", sent_at=now, next_attempt_at=None, attempts=1)
    refused(await hub("notifications", "retry", sent), "was sent at", f"hub notifications resend {sent}")

    dispatched = await notice(conn, "C-MAIL", "email", kind="dispatched", shipment_id="S9")
    await set_state(conn, dispatched, status="suppressed", suppressed_at=now, next_attempt_at=None)
    refused(await hub("notifications", "retry", dispatched), "was suppressed at", "later milestone")

    # a failed milestone the dispatcher would suppress: the shipment has a later milestone notice
    out_for_delivery = await notice(conn, "C-MAIL", "email", kind="out_for_delivery", shipment_id="S9")
    await set_state(conn, out_for_delivery, status="failed", failed_at=now, next_attempt_at=None, last_error="e")
    delivered = await notice(conn, "C-MAIL", "email", kind="delivered", shipment_id="S9")
    refused(
        await hub("notifications", "retry", out_for_delivery),
        f"shipment S9 already has a later milestone notice (delivered, {delivered}, pending)",
        "would suppress",
    )

    # the customer's webhook answered 410 Gone: disabled until the URL is fixed and re-imported
    hook = await notice(conn, "C-HOOK", "webhook")
    await set_state(conn, hook, status="failed", failed_at=now, next_attempt_at=None, last_error="410 Gone")
    await conn.execute("UPDATE customers SET webhook_disabled_at = $1 WHERE customer_id = 'C-HOOK'", now)
    refused(
        await hub("notifications", "retry", hook),
        "answered 410 Gone and is disabled since",
        "a retry would fail again until the URL is fixed and re-imported",
        "hub customers import",
    )
    await conn.execute("UPDATE customers SET webhook_disabled_at = NULL WHERE customer_id = 'C-HOOK'")
    refused(await hub("notifications", "retry", hook), "no webhook secret", "hub customers webhook-secret C-HOOK")

    # a phone notice failed because its call-back task was cancelled: one call-back task per notice
    calling = await notice(conn, "C-PHONE", "phone", kind="complaint_received", shipment_id=None)
    await dispatcher.round(conn)
    call_task = str((await state(conn, calling))["call_task_id"])
    refused(await hub("notifications", "retry", calling), f"waits for call-back task {call_task} (open)")
    ok(await hub("tasks", "cancel", call_task, "--by", "lin", "--resolution", "number not in service"))
    await dispatcher.round(conn)
    assert (await state(conn, calling))["status"] == "failed"
    refused(
        await hub("notifications", "retry", calling),
        f"call-back task {call_task} was cancelled",
        f"hub notifications resend {calling}",
    )

    # nothing changed
    statuses = [(await state(conn, nid))["status"] for nid in (sent, dispatched, out_for_delivery, hook, calling)]
    assert statuses == ["sent", "suppressed", "failed", "failed", "failed"]
    assert (await state(conn, pending))["next_attempt_at"] == now + timedelta(minutes=5)
    refused(await hub("notifications", "retry", str(uuid.uuid4())), "no notification")


# ---------------------------------------------------------------------------------------------- resend


async def test_resend_makes_a_new_pending_notice_with_its_own_id_and_the_old_stays_sent(conn, hub, desk_settings):
    await customer(conn, "C-MAIL", "email", email="ops@huadong.example")
    now = datetime.now(UTC)
    old = await notice(conn, "C-MAIL", "email", kind="delay", language="en", created_ago=timedelta(days=1))
    await set_state(conn, old, status="sent", sent_at=now - timedelta(hours=20), next_attempt_at=None, attempts=1)

    woken: list[str] = []
    listener = await asyncpg.connect(desk_settings.database_url.get_secret_value())
    await listener.add_listener(dispatch_queries.DISPATCH_WAKE, lambda *args: woken.append(args[2]))
    try:
        out = " ".join(ok(await hub("notifications", "resend", old)).split())
        first = ops.resend_id(old, "delay", 1)
        assert f"resent as notification {first} (resend 1): pending, due now" in out
        for _ in range(50):
            if woken:
                break
            await asyncio.sleep(0.05)
        assert woken, "the resend wakes the dispatcher"
    finally:
        await listener.close()

    original, copy = await state(conn, old), await state(conn, first)
    assert original["status"] == "sent" and original["sent_at"] == now - timedelta(hours=20)
    assert first != old and copy["source_event_id"] == f"resend:{old}:1"
    same = ("kind", "channel", "language", "body", "customer_id", "shipment_id")
    assert (
        tuple(copy[c] for c in same)
        == tuple(original[c] for c in same)
        == (
            "delay",
            "email",
            "en",
            BODY["en"],
            "C-MAIL",
            "S1",
        )
    )
    assert (copy["status"], copy["attempts"], copy["last_error"]) == ("pending", 0, None)
    assert copy["created_at"] == copy["next_attempt_at"] and copy["created_at"] >= now
    assert await claim(conn) == [first]

    # a second resend is number 2, with an id of its own; show lists both, and the copy names its original
    await set_state(conn, first, status="sent", sent_at=datetime.now(UTC), next_attempt_at=None)
    ok(await hub("notifications", "resend", old))
    second = ops.resend_id(old, "delay", 2)
    assert (await state(conn, second))["source_event_id"] == f"resend:{old}:2" and second not in (old, first)
    view = orjson.loads(ok(await hub("notifications", "show", old, "--json")))
    assert view["resends"] == [first, second]
    assert orjson.loads(ok(await hub("notifications", "show", second, "--json")))["notification"]["resent_from"] == old
    assert f"resent from {old}" in " ".join(ok(await hub("notifications", "show", second)).split())


async def test_resend_refuses_what_was_not_sent_and_says_what_to_do(conn, hub, dispatcher):
    await customer(conn, "C-MAIL", "email", email="ops@huadong.example")
    await customer(conn, "C-PHONE", "phone", phone="+86 21 5555 0199")
    now = datetime.now(UTC)
    pending = await notice(conn, "C-MAIL", "email", kind="delay")
    refused(await hub("notifications", "resend", pending), "is pending and due now", "nothing to resend")
    failed = await notice(conn, "C-MAIL", "email", kind="exception")
    await set_state(conn, failed, status="failed", failed_at=now, next_attempt_at=None, last_error="SMTP 550")
    refused(
        await hub("notifications", "resend", failed), "never reached the customer", f"hub notifications retry {failed}"
    )
    suppressed = await notice(conn, "C-MAIL", "email", kind="dispatched")
    await set_state(conn, suppressed, status="suppressed", suppressed_at=now, next_attempt_at=None)
    refused(await hub("notifications", "resend", suppressed), "was suppressed at", "nothing to resend")
    count = await conn.fetchval("SELECT count(*) FROM customer_notifications")

    # a failed phone notice (its call-back was cancelled) is resent: the copy gets a call-back task of its own
    calling = await notice(conn, "C-PHONE", "phone", kind="complaint_received", shipment_id=None)
    await dispatcher.round(conn)
    first_task = str((await state(conn, calling))["call_task_id"])
    ok(await hub("tasks", "cancel", first_task, "--by", "lin", "--resolution", "no answer, wrong number"))
    await dispatcher.round(conn)
    assert (await state(conn, calling))["status"] == "failed"
    assert await conn.fetchval("SELECT count(*) FROM customer_notifications") == count + 1
    ok(await hub("notifications", "resend", calling))
    copy = ops.resend_id(calling, "complaint_received", 1)
    assert (await dispatcher.round(conn)).calling == {"phone": 1}
    second_task = str((await state(conn, copy))["call_task_id"])
    assert second_task != first_task
    assert (await state(conn, calling))["status"] == "failed"


# ------------------------------------------------------------------------------------------ end to end


async def test_a_410_webhook_is_retried_after_the_fixed_url_is_imported_and_the_dispatcher_sends_it(
    conn, hub, dispatcher, http, tmp_path
):
    """The customer CSV with its optional columns, a 410 that disables the webhook, a retry refused
    until the fixed URL is imported, then a Dispatcher round that sends it: the try after the failed
    one is numbered 2, and the call centre's task from the failure is pointed out."""
    register = tmp_path / "customers.csv"
    register.write_text(
        f"{CSV_HEADER}\nC-HOOK,华东物流,key,zh,webhook,,,{http.url('/old')},Asia/Shanghai,22:00-07:30,B,李娜\n",
        encoding="utf-8",
    )
    assert "1 added" in ok(await hub("customers", "import", str(register)))
    row = await conn.fetchrow(
        "SELECT webhook_url, timezone, quiet_hours, credit_rating, account_manager, preferred_channel "
        "FROM customers WHERE customer_id = 'C-HOOK'"
    )
    assert tuple(row) == (http.url("/old"), "Asia/Shanghai", "22:00-07:30", "B", "李娜", "webhook")
    await create_webhook_secret(conn, "C-HOOK", rotate=False)

    http.script["/old"] = [(410, {})]
    nid = await notice(conn, "C-HOOK", "webhook")
    assert (await dispatcher.round(conn)).failed == {"webhook": 1}
    assert (await state(conn, nid))["status"] == "failed"
    refused(await hub("notifications", "retry", nid), "would fail again until the URL is fixed and re-imported")

    register.write_text(register.read_text(encoding="utf-8").replace("/old", "/new"), encoding="utf-8")
    assert "1 updated" in ok(await hub("customers", "import", str(register)))
    out = " ".join(ok(await hub("notifications", "retry", nid)).split())
    failure_task = stable_id("task", "notification_failed", nid, "1")
    assert f"the call centre's task {failure_task} (reach the customer another way) is still open" in out

    report = await dispatcher.round(conn)
    assert report.sent == {"webhook": 1}
    [request] = http.to("/new")
    assert request.headers["webhook-id"] == nid  # a retry is the same notice: the receiver de-duplicates it
    row = await state(conn, nid)
    assert (row["status"], row["attempts"]) == ("sent", 1)
    assert await tries(conn, nid) == [(1, "failed", 410), (2, "sent", 200)]
    shown = orjson.loads(ok(await hub("notifications", "show", nid, "--json")))
    assert [a["outcome"] for a in shown["attempts"]] == ["failed", "sent"]

    # resent, the copy reaches the receiver under a new webhook-id
    ok(await hub("notifications", "resend", nid))
    assert (await dispatcher.round(conn)).sent == {"webhook": 1}
    assert [r.headers["webhook-id"] for r in http.to("/new")] == [nid, ops.resend_id(nid, "delay", 1)]
