"""Notification dispatch against real peers: an SMTP server (aiosmtpd), an HTTP webhook receiver
that checks every signature with the independent `standardwebhooks` library, and an HTTP gateway.
One test per rule of the contract's "Notification dispatch"; time is the dispatcher's `now`.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import orjson
import pytest
import pytest_asyncio
from pydantic import SecretStr
from standardwebhooks import Webhook, WebhookVerificationError

from hub.clock.engine import store_report
from hub.core.clock import decide_monthly_statement
from hub.core.ids import stable_id
from hub.core.outputs import NotificationDecision
from hub.core.rules import load_rules
from hub.dev.receivers import HttpReceiver, Request, SmtpSink
from hub.dispatch.dispatcher import Dispatcher
from hub.migrate import apply_migrations
from hub.ops.customers import create_webhook_secret
from hub.reports import figures
from hub.store.queries import SELECT_CUSTOMERS
from hub.store.rows import customer_from_row
from hub.store.writes import write_notifications
from schemas.enums import NotificationKind
from tests.report_data import AS_OF, NOV, november

pytestmark = pytest.mark.postgres
T0 = datetime(2026, 12, 3, 2, 0, tzinfo=UTC)  # 10:00 in Shanghai: no quiet hours
TOKEN = "gateway-token-1"


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


@pytest_asyncio.fixture
async def peers() -> AsyncIterator[tuple[SmtpSink, HttpReceiver, dict[str, list[str]]]]:
    secrets: dict[str, list[str]] = {}  # path -> the secrets its receiver accepts

    def verify(request: Request) -> bool:
        for secret in secrets.get(request.path, []):
            try:
                Webhook(secret).verify(request.body, request.headers)
                return True
            except WebhookVerificationError:
                continue
        return False

    smtp, http = SmtpSink(), HttpReceiver(verify=verify)
    smtp.start()
    await http.start()
    yield smtp, http, secrets
    smtp.stop()
    await http.stop()


@pytest.fixture
async def conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    await apply_migrations(database_url)
    connection = await asyncpg.connect(database_url)
    yield connection
    await connection.close()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def dispatcher(hub_settings, peers, clock) -> Dispatcher:
    smtp, http, _ = peers
    settings = hub_settings.model_copy(
        update={
            "dispatch_enabled": True,
            "smtp_host": "127.0.0.1",
            "smtp_port": smtp.port,
            "smtp_starttls": False,
            "smtp_from": "service@hub.example",
            "sms_gateway_url": http.url("/sms"),
            "sms_gateway_token": SecretStr(TOKEN),
            "wechat_gateway_url": http.url("/wechat"),
            "webhook_insecure_hosts": "127.0.0.1",
            "breaker_failures": 3,
            "dispatch_endpoint_concurrency": 1,
            "breaker_open_s": 60,
        }
    )
    return Dispatcher(settings, load_rules(), settings.destinations, now=clock, jitter=lambda: 0.0)


async def customer(conn: asyncpg.Connection, customer_id: str, channel: str, **fields: Any) -> None:
    values = {
        "language": "zh",
        "email": None,
        "phone": None,
        "webhook_url": None,
        "quiet_hours": None,
        "timezone": None,
        "name": None,
        "tier": "standard",
        **fields,
    }
    await conn.execute(
        "INSERT INTO customers (customer_id, preferred_channel, language, email, phone, webhook_url, quiet_hours, "
        "timezone, name, tier) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        customer_id,
        channel,
        values["language"],
        values["email"],
        values["phone"],
        values["webhook_url"],
        values["quiet_hours"],
        values["timezone"],
        values["name"],
        values["tier"],
    )


async def notice(
    conn: asyncpg.Connection,
    customer_id: str,
    channel: str,
    kind: str = "delay",
    shipment_id: str | None = "S1",
    language: str = "zh",
    at: datetime = T0,
) -> str:
    source = f"evt-{customer_id}-{kind}-{shipment_id}"
    nid = stable_id("notification", source, kind)
    body = {"zh": "您的包裹 S1 可能会延迟送达。", "en": "Your shipment S1 may arrive late."}[language]
    await write_notifications(
        conn,
        [NotificationDecision(nid, customer_id, shipment_id, NotificationKind(kind), channel, language, body, source)],
    )
    await conn.execute(
        "UPDATE customer_notifications SET created_at = $2, next_attempt_at = $2 WHERE notification_id = $1", nid, at
    )
    return nid


async def state(conn: asyncpg.Connection, nid: str) -> asyncpg.Record:
    return await conn.fetchrow("SELECT * FROM customer_notifications WHERE notification_id = $1", nid)


async def attempts(conn: asyncpg.Connection, nid: str) -> list[tuple[str, int | None]]:
    rows = await conn.fetch(
        "SELECT outcome, status_code FROM notification_attempts WHERE notification_id = $1 ORDER BY attempt", nid
    )
    return [(r["outcome"], r["status_code"]) for r in rows]


async def webhook_customer(conn, peers, customer_id: str, path: str) -> str:
    _, http, secrets = peers
    await customer(conn, customer_id, "webhook", webhook_url=http.url(path))
    secret = await create_webhook_secret(conn, customer_id, rotate=False)
    secrets.setdefault(path, []).append(secret)
    return secret


# --- waking -------------------------------------------------------------------------------------------


async def test_notices_the_store_writes_wake_the_dispatcher_on_commit(conn, database_url):
    # Else a running dispatcher finds them only at its next poll: `python -m bench dispatch` measured
    # p99 pending -> sent of 856 ms at 80/s that way, 419 ms with the wake-up.
    note = NotificationDecision(stable_id("n", "wake"), "C-W", "S1", NotificationKind.DELAY, "sms", "en", "x", "w")
    woken: list[str] = []
    listener = await asyncpg.connect(database_url)
    await listener.add_listener("hub_dispatch", lambda *args: woken.append(args[2]))
    try:
        async with conn.transaction():
            await write_notifications(conn, [])
            await write_notifications(conn, [note])
            await asyncio.sleep(0.2)
            assert woken == [], "NOTIFY is delivered on commit, not before"
        for _ in range(50):
            if woken:
                break
            await asyncio.sleep(0.05)
        assert woken == ["hub_dispatch"]
    finally:
        await listener.close()


async def test_running_a_notice_is_sent_while_another_send_hangs_and_stopping_records_both(conn, peers, dispatcher):
    # run() claims while sends are in flight: a dispatcher that went round by round held every notice
    # written meanwhile until the slowest send of the round had ended (`python -m bench dispatch`:
    # p99 1,511 ms at 200/s that way). Stopping lets the hanging send end and records it.
    release, arrived = asyncio.Event(), asyncio.Event()

    async def hang(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readuntil(b"\r\n\r\n")
        arrived.set()
        await release.wait()
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    slow = await asyncio.start_server(hang, "127.0.0.1", 0)
    port = slow.sockets[0].getsockname()[1]
    await customer(conn, "C-SLOW", "webhook", webhook_url=f"http://127.0.0.1:{port}/slow")
    await create_webhook_secret(conn, "C-SLOW", rotate=False)
    await webhook_customer(conn, peers, "C-FAST", "/fast")
    slow_id = await notice(conn, "C-SLOW", "webhook", shipment_id="S-SLOW")
    running = asyncio.create_task(dispatcher.run())
    try:
        await asyncio.wait_for(arrived.wait(), 10)
        fast_id = await notice(conn, "C-FAST", "webhook", shipment_id="S-FAST")
        for _ in range(100):
            if (await state(conn, fast_id))["status"] == "sent":
                break
            await asyncio.sleep(0.05)
        assert (await state(conn, fast_id))["status"] == "sent", "sent and recorded while the other send hangs"
        assert (await state(conn, slow_id))["status"] == "pending"
        dispatcher.stop()
        await asyncio.sleep(0.2)
        assert not running.done(), "stopping waits for the send in flight"
        release.set()
        await asyncio.wait_for(running, 10)
    finally:
        release.set()
        dispatcher.stop()
        await asyncio.wait_for(running, 10)
        slow.close()
    assert (await state(conn, slow_id))["status"] == "sent"
    assert await attempts(conn, slow_id) == [("sent", 200)]


# --- 2xx, retries, Retry-After, 410 -------------------------------------------------------------------


async def test_a_webhook_is_sent_signed_and_recorded(conn, peers, dispatcher):
    _, http, _ = peers
    await webhook_customer(conn, peers, "C-HOOK", "/ok")
    nid = await notice(conn, "C-HOOK", "webhook")
    report = await dispatcher.round(conn)
    assert report.sent == {"webhook": 1}
    [request] = http.to("/ok")
    assert request.verified is True, "standardwebhooks must accept the signature"
    assert request.headers["webhook-id"] == nid
    body = orjson.loads(request.body)
    assert set(body) == {"notification_id", "kind", "customer_id", "shipment_id", "language", "body", "created_at"}
    assert (body["notification_id"], body["kind"], body["language"]) == (nid, "delay", "zh")
    row = await state(conn, nid)
    assert (row["status"], row["sent_at"], row["next_attempt_at"]) == ("sent", T0, None)
    assert await attempts(conn, nid) == [("sent", 200)]


async def test_500_then_200_is_tried_again_after_5_s_with_the_same_webhook_id(conn, peers, dispatcher, clock):
    _, http, _ = peers
    await webhook_customer(conn, peers, "C-FLAKY", "/flaky")
    http.script["/flaky"] = [(500, {})]
    nid = await notice(conn, "C-FLAKY", "webhook")
    assert (await dispatcher.round(conn)).retried == {"webhook": 1}
    assert (await state(conn, nid))["next_attempt_at"] == T0 + timedelta(seconds=5)
    clock.now = T0 + timedelta(seconds=4)
    assert (await dispatcher.round(conn)).handled == 0  # not due yet
    clock.now = T0 + timedelta(seconds=5)
    assert (await dispatcher.round(conn)).sent == {"webhook": 1}
    assert [r.headers["webhook-id"] for r in http.to("/flaky")] == [nid, nid]
    assert await attempts(conn, nid) == [("retry", 500), ("sent", 200)]


async def test_429_with_retry_after_waits_as_long_as_the_receiver_asks(conn, peers, dispatcher):
    _, http, _ = peers
    await webhook_customer(conn, peers, "C-BUSY", "/busy")
    http.script["/busy"] = [(429, {"Retry-After": "120"})]
    nid = await notice(conn, "C-BUSY", "webhook")
    await dispatcher.round(conn)
    assert (await state(conn, nid))["next_attempt_at"] == T0 + timedelta(seconds=120)


async def test_410_fails_at_once_disables_the_webhook_and_raises_an_alert_and_a_task(conn, peers, dispatcher):
    _, http, _ = peers
    await webhook_customer(conn, peers, "C-GONE", "/gone")
    http.script["/gone"] = [(410, {})]
    nid = await notice(conn, "C-GONE", "webhook")
    assert (await dispatcher.round(conn)).failed == {"webhook": 1}
    row = await state(conn, nid)
    assert (row["status"], row["failed_at"]) == ("failed", T0)
    assert await conn.fetchval("SELECT webhook_disabled_at FROM customers WHERE customer_id = 'C-GONE'") == T0
    task = await conn.fetchrow(
        "SELECT department, kind, severity, customer_id FROM coordination_tasks WHERE kind = 'notification_failed'"
    )
    assert tuple(task) == ("call_centre", "notification_failed", "P3", "C-GONE")
    alert = orjson.loads(
        await conn.fetchval("SELECT value FROM outbox WHERE topic = $1", dispatcher.destinations.queues["escalations"])
    )
    assert (alert["kind"], alert["customer_id"]) == ("notification_failed", "C-GONE")
    # the next notice for that customer is refused without calling the endpoint again
    second = await notice(conn, "C-GONE", "webhook", kind="delivered")
    await dispatcher.round(conn)
    assert (await state(conn, second))["status"] == "failed" and len(http.to("/gone")) == 1


async def test_a_refused_request_fails_at_once_but_408_is_tried_again(conn, peers, dispatcher):
    _, http, _ = peers
    await webhook_customer(conn, peers, "C-400", "/bad")
    await webhook_customer(conn, peers, "C-408", "/timeout")
    http.script["/bad"], http.script["/timeout"] = [(400, {})], [(408, {})]
    bad, slow = await notice(conn, "C-400", "webhook"), await notice(conn, "C-408", "webhook")
    await dispatcher.round(conn)
    assert (await state(conn, bad))["status"] == "failed"
    assert (await state(conn, slow))["status"] == "pending" and await attempts(conn, slow) == [("retry", 408)]


async def test_the_schedule_runs_out_after_six_retries_then_the_notice_fails(conn, peers, dispatcher, clock):
    _, http, _ = peers
    await webhook_customer(conn, peers, "C-DOWN", "/down")
    http.script["/down"] = [(503, {})] * 10
    nid = await notice(conn, "C-DOWN", "webhook")
    waits = [5, 300, 1800, 7200, 18000, 36000]
    for wait in waits:
        await dispatcher.round(conn)
        assert (await state(conn, nid))["next_attempt_at"] == clock.now + timedelta(seconds=wait)
        clock.now += timedelta(seconds=wait)
        dispatcher.breakers.clear()  # the breaker is its own test
    await dispatcher.round(conn)
    assert (await state(conn, nid))["status"] == "failed"
    assert [o for o, _ in await attempts(conn, nid)] == ["retry"] * 6 + ["failed"]


# --- e-mail and gateways ---------------------------------------------------------------------------


async def test_smtp_451_then_250_with_a_stable_message_id_in_the_customers_language(conn, peers, dispatcher, clock):
    smtp, _, _ = peers
    await customer(conn, "C-MAIL", "email", email="ops@huadong.example", name="上海华东物流有限公司")
    smtp.replies = ["451 4.3.0 try again later"]
    nid = await notice(conn, "C-MAIL", "email")
    assert (await dispatcher.round(conn)).retried == {"email": 1}
    clock.now = T0 + timedelta(seconds=5)
    assert (await dispatcher.round(conn)).sent == {"email": 1}
    [mail] = smtp.received
    assert mail.to == ["ops@huadong.example"] and mail.message_id == f"<{nid}@hub.example>"
    text = mail.message.get_payload(decode=True).decode()
    assert "上海华东物流有限公司" in text and "延迟" in text
    assert await attempts(conn, nid) == [("retry", 451), ("sent", 250)]


async def test_smtp_550_fails_at_once(conn, peers, dispatcher):
    smtp, _, _ = peers
    await customer(conn, "C-NOBOX", "email", email="nobody@huadong.example")
    smtp.replies = ["550 5.1.1 no such mailbox"]
    nid = await notice(conn, "C-NOBOX", "email")
    await dispatcher.round(conn)
    assert (await state(conn, nid))["status"] == "failed" and await attempts(conn, nid) == [("failed", 550)]


async def test_sms_goes_to_the_gateway_with_the_bearer_token_and_an_idempotency_key(conn, peers, dispatcher):
    _, http, _ = peers
    await customer(conn, "C-SMS", "sms", phone="+86 138 0013 8000")
    nid = await notice(conn, "C-SMS", "sms")
    await dispatcher.round(conn)
    [request] = http.to("/sms")
    assert request.headers["authorization"] == f"Bearer {TOKEN}"
    assert orjson.loads(request.body) == {
        "to": "+86 138 0013 8000",
        "text": "您的包裹 S1 可能会延迟送达。",
        "idempotency_key": nid,
    }


async def test_a_phone_notice_becomes_a_call_back_and_is_sent_when_that_task_is_done(conn, peers, dispatcher):
    await customer(conn, "C-PHONE", "phone", phone="+86 21 5555 0199", name="王先生")
    nid = await notice(conn, "C-PHONE", "phone", kind="complaint_received", shipment_id=None)
    assert (await dispatcher.round(conn)).calling == {"phone": 1}
    row = await state(conn, nid)
    assert row["status"] == "pending" and row["next_attempt_at"] is None
    task = await conn.fetchrow(
        "SELECT task_id, department, kind, severity FROM coordination_tasks WHERE task_id = $1", row["call_task_id"]
    )
    assert (task["department"], task["kind"], task["severity"]) == ("call_centre", "call_back", "P3")
    await dispatcher.round(conn)
    assert (await state(conn, nid))["status"] == "pending"  # nobody has called yet
    await conn.execute(
        "UPDATE coordination_tasks SET status = 'done', resolved_by = 'lin', resolved_at = $2 WHERE task_id = $1",
        task["task_id"],
        T0 + timedelta(hours=1),
    )
    await dispatcher.round(conn)
    row = await state(conn, nid)
    assert (row["status"], row["sent_at"]) == ("sent", T0 + timedelta(hours=1))


# --- quiet hours, supersession, rotation ----------------------------------------------------------------


async def test_a_milestone_sms_waits_for_the_morning_and_a_complaint_notice_does_not(conn, peers, dispatcher, clock):
    _, http, _ = peers
    await customer(conn, "C-NIGHT", "sms", phone="+86 138 0000 0001")
    night = datetime(2026, 12, 3, 15, 0, tzinfo=UTC)  # 23:00 in Shanghai
    clock.now = night
    milestone = await notice(conn, "C-NIGHT", "sms", kind="out_for_delivery", at=night)
    complaint = await notice(conn, "C-NIGHT", "sms", kind="complaint_received", shipment_id=None, at=night)
    report = await dispatcher.round(conn)
    assert report.waiting == {"sms": 1} and report.sent == {"sms": 1}
    assert (await state(conn, complaint))["status"] == "sent"
    morning = datetime(2026, 12, 4, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
    assert (await state(conn, milestone))["next_attempt_at"] == morning
    clock.now = morning
    await dispatcher.round(conn)
    assert (await state(conn, milestone))["status"] == "sent" and len(http.to("/sms")) == 2


async def test_the_customers_own_quiet_hours_and_zone_apply(conn, peers, dispatcher, clock):
    await customer(
        conn,
        "C-LDN",
        "wechat",
        phone="+44 20 7946 0000",
        timezone="Europe/London",
        quiet_hours="21:00-07:00",
        language="en",
    )
    clock.now = datetime(2026, 12, 3, 22, 0, tzinfo=UTC)  # 22:00 in London
    nid = await notice(conn, "C-LDN", "wechat", kind="delivered", language="en", at=clock.now)
    await dispatcher.round(conn)
    assert (await state(conn, nid))["next_attempt_at"] == datetime(2026, 12, 4, 7, 0, tzinfo=UTC)


async def test_a_pending_milestone_with_a_later_one_is_suppressed_never_sent(conn, peers, dispatcher):
    _, http, _ = peers
    await customer(conn, "C-MS", "sms", phone="+86 138 0000 0002")
    dispatched = await notice(conn, "C-MS", "sms", kind="dispatched")
    delivered = await notice(conn, "C-MS", "sms", kind="delivered")
    report = await dispatcher.round(conn)
    assert report.suppressed == {"sms": 1} and report.sent == {"sms": 1}
    assert (await state(conn, dispatched))["status"] == "suppressed"
    assert (await state(conn, delivered))["status"] == "sent"
    assert len(http.to("/sms")) == 1 and await attempts(conn, dispatched) == []


async def test_during_a_rotation_both_secrets_sign_and_either_verifies(conn, peers, dispatcher):
    _, http, secrets = peers
    old = await webhook_customer(conn, peers, "C-ROT", "/rot")
    new = await create_webhook_secret(conn, "C-ROT", rotate=True)
    await notice(conn, "C-ROT", "webhook")
    await dispatcher.round(conn)
    [request] = http.to("/rot")
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (old, new):
        Webhook(secret).verify(request.body, request.headers)  # raises if it does not verify
    assert old != new and secrets["/rot"] == [old]


# --- safety, breaker, secrets --------------------------------------------------------------------------


async def test_a_private_address_or_plain_http_is_refused(conn, peers, dispatcher):
    await customer(conn, "C-SSRF", "webhook", webhook_url="https://10.0.0.8/hook")
    await create_webhook_secret(conn, "C-SSRF", rotate=False)
    await customer(conn, "C-HTTP", "webhook", webhook_url="http://receiver.example/hook")
    await create_webhook_secret(conn, "C-HTTP", rotate=False)
    ssrf, plain = await notice(conn, "C-SSRF", "webhook"), await notice(conn, "C-HTTP", "webhook")
    await dispatcher.round(conn)
    assert "private" in (await state(conn, ssrf))["last_error"]
    assert "https" in (await state(conn, plain))["last_error"]
    assert (await state(conn, ssrf))["status"] == (await state(conn, plain))["status"] == "failed"


async def test_an_open_circuit_holds_its_endpoints_notices_without_spending_tries(conn, peers, dispatcher, clock):
    _, http, _ = peers
    await webhook_customer(conn, peers, "C-DEAD", "/dead")
    await webhook_customer(conn, peers, "C-FINE", "/fine")
    http.script["/dead"] = [(503, {})] * 20
    dead = [
        await notice(conn, "C-DEAD", "webhook", kind=kind)
        for kind in ("delay", "exception", "delivery_problem", "claim_received", "urgent_order_confirmed")
    ]
    fine = await notice(conn, "C-FINE", "webhook")
    report = await dispatcher.round(conn)  # 3 failures in a row open the circuit
    assert report.retried == {"webhook": 3} and report.waiting == {"webhook": 2} and report.sent == {"webhook": 1}
    assert (await state(conn, fine))["status"] == "sent"
    held = []
    for n in dead:
        if not await attempts(conn, n):
            held.append(n)
    assert len(held) == 2
    for n in held:
        assert (await state(conn, n))["next_attempt_at"] == T0 + timedelta(seconds=60)
    assert len(http.to("/dead")) == 3 and report.open_circuits == 1


async def test_secrets_never_reach_logs_or_reprs(conn, peers, dispatcher, caplog):
    secret = await webhook_customer(conn, peers, "C-SEC", "/sec")
    _, http, _ = peers
    http.script["/sec"] = [(500, {})]
    caplog.set_level(logging.DEBUG)
    await notice(conn, "C-SEC", "webhook")
    await dispatcher.round(conn)
    key = secret.removeprefix("whsec_")
    rows = await conn.fetch(
        "SELECT last_error FROM customer_notifications UNION ALL SELECT error FROM notification_attempts"
    )
    assert key not in caplog.text and all(key not in (r[0] or "") for r in rows)
    assert key not in repr(dispatcher.settings)


# --- through hub run --------------------------------------------------------------------------------


@pytest.mark.usefixtures("database_url")
async def test_an_event_through_hub_run_reaches_the_customers_webhook(hub_settings, peers):
    from tests.support import publish, running_hub, shipment_event, wait_until

    _, http, secrets = peers
    settings = hub_settings.model_copy(update={"dispatch_enabled": True, "webhook_insecure_hosts": "127.0.0.1"})
    async with running_hub(settings):
        conn = await asyncpg.connect(settings.dsn)
        try:
            await customer(conn, "C-LIVE", "webhook", webhook_url=http.url("/live"), language="en")
            secrets["/live"] = [await create_webhook_secret(conn, "C-LIVE", rotate=False)]
            event = shipment_event("S-LIVE", "exception", 0, customer_id="C-LIVE", exception={"code": "damaged"})
            await publish(settings, shipments=[event])

            async def delivered() -> bool:
                return bool(http.to("/live"))

            await wait_until(delivered, what="the damage notice at the customer's webhook")
            [request] = http.to("/live")
            assert request.verified is True
            body = orjson.loads(request.body)
            assert (body["kind"], body["shipment_id"], body["language"]) == ("exception", "S-LIVE", "en")

            async def recorded() -> bool:
                return (
                    await conn.fetchval("SELECT status FROM customer_notifications WHERE shipment_id = 'S-LIVE'")
                    == "sent"
                )

            await wait_until(recorded, what="the notice recorded as sent")
        finally:
            await conn.close()


# --- monthly statements: the PDF goes with the e-mail ---------------------------------------------


async def test_a_monthly_statement_is_e_mailed_with_the_stored_statement_as_pdf(conn, peers, dispatcher, tmp_path):
    smtp, _, _ = peers
    await november(conn)
    await conn.execute(
        "UPDATE customers SET preferred_channel = 'email', email = lower(customer_id) || '@example.test'"
    )
    rules, customers = load_rules(), await conn.fetch(SELECT_CUSTOMERS, ["A", "B"])
    notes = {}
    for row in customers:
        decision = decide_monthly_statement(customer_from_row(row), NOV.label, T0, rules)
        [notes[row["customer_id"]]] = decision.notifications
        await write_notifications(conn, decision.notifications)
    # A's statement is stored (the clock does it in the same transaction); B's was lost: its notice
    # fails, visibly, saying how to rebuild it.
    await store_report(conn, await figures.statement(conn, NOV, AS_OF, "A"), NOV.label, "A", AS_OF)
    await conn.execute("UPDATE customer_notifications SET next_attempt_at = $1", T0)
    try:
        report = await dispatcher.round(conn)
    finally:
        dispatcher.renderer.close()
    assert (report.sent, report.failed) == ({"email": 1}, {"email": 1})
    [mail] = smtp.received
    assert mail.to == ["a@example.test"]
    [pdf] = [part for part in mail.message.walk() if part.get_content_type() == "application/pdf"]
    assert pdf.get_filename() == "statement-A-2026-11.pdf"
    (tmp_path / "a.pdf").write_bytes(pdf.get_payload(decode=True))
    text = await asyncio.to_thread(
        subprocess.run, ["pdftotext", str(tmp_path / "a.pdf"), "-"], capture_output=True, text=True, check=True
    )
    assert "上海华东物流有限公司" in text.stdout and "2026-11" in text.stdout
    b = await state(conn, notes["B"].notification_id)
    assert b["status"] == "failed" and "hub report statement --customer B --month 2026-11" in b["last_error"]
