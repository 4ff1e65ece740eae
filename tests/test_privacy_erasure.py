"""`hub customers erase` (issue 22, point 6): after a privacy request nothing the hub stored still holds
the customer's name, e-mail or phone number, wherever it came from; the erasure is recorded without
the data; another customer is untouched; running it again changes nothing.

The customer's traffic goes through a real hub (real broker, real Postgres): shipment events with
free text, a signature and extra fields, a call with the caller's number and notes, a record too
broken to parse that names them (a dead letter, relayed to the dead-letter topic). What dispatch
would add (a call-back script, an SMTP refusal quoting the address, a statement) is written with SQL.
"""

from __future__ import annotations

import asyncio
import uuid

import asyncpg
import orjson
from typer.testing import CliRunner, Result

from hub.cli import app
from hub.core.privacy import ERASED
from hub.ops.customers import import_customers
from hub.ops.db import database
from schemas.customers import Customer
from tests.support import call_log, carrier_update, fetch, fetchval, publish, publish_raw, running_hub, shipment_event
from tests.support import wait_until as wait_for

runner = CliRunner()
ERASE = Customer(customer_id="C-ERASE", name="Wang Xiaoming", email="wang.xm@example.com", phone="+86 139 1234 5678")
KEEP = Customer(customer_id="C-KEEP", name="Li Na", email="li.na@example.com", phone="+86 138 7654 3210")
PERSONAL = ("Wang Xiaoming", "wang.xm@example.com", "+86 139 1234 5678", "139 1234 5678")


def traffic(c: Customer, shipment: str) -> tuple[list[dict], list[dict], list[dict]]:
    assert c.name and c.email and c.phone
    shipments = [
        shipment_event(
            shipment,
            "created",
            0,
            customer_id=c.customer_id,
            attributes={"recipient": c.name, "door_code": "4411"},
            location={"code": "SHA-WH-03", "city": "Shanghai", "lat": 31.2304, "lon": 121.4737},
        ),
        shipment_event(
            shipment,
            "exception",
            30,
            customer_id=c.customer_id,
            exception={"code": "damaged", "description": f"{c.name} reports a crushed carton, call {c.phone}"},
            delivery_contact=c.phone,  # a field the contract does not define: kept as received
        ),
    ]
    carriers = [
        carrier_update(
            shipment,
            "delivered",
            90,
            raw_description=f"已签收，签收人：{c.name}",
            proof_of_delivery={"signed_by": c.name, "photo_url": "https://pod.example.com/1.jpg"},
        )
    ]
    calls = [
        call_log(
            c.customer_id,
            "complaint",
            60,
            shipment_id=shipment,
            caller_phone=c.phone,
            notes=f"{c.name} ({c.email}) is angry about the carton",
        )
    ]
    return shipments, carriers, calls


def invoke(dsn: str, *args: str) -> Result:
    return runner.invoke(app, list(args), env={"HUB_DATABASE_URL": dsn, "COLUMNS": "200"})


async def personal_data_left(dsn: str, needles: tuple[str, ...]) -> list[str]:
    """Every text, JSON and byte column of every table, searched for each needle."""
    conn = await asyncpg.connect(dsn)
    try:
        columns = await conn.fetch(
            "SELECT table_name, column_name, data_type FROM information_schema.columns "
            "WHERE table_schema = 'public' AND data_type IN ('text', 'jsonb', 'json', 'bytea', 'character varying', "
            "'ARRAY')"
        )
        found = []
        for c in columns:
            column = f'"{c["column_name"]}"'
            if c["data_type"] == "bytea":
                test = f"position(convert_to($1, 'UTF8') IN {column}) > 0"
            else:  # jsonb as text escapes nothing in these needles but non-ASCII: compare decoded text too
                test = f"{column}::text LIKE '%' || $1 || '%'"
            for needle in needles:
                n = await conn.fetchval(f'SELECT count(*) FROM "{c["table_name"]}" WHERE {test}', needle)
                if n:
                    found.append(f"{c['table_name']}.{c['column_name']}: {n} rows hold {needle!r}")
        return found
    finally:
        await conn.close()


async def dispatch_traces(dsn: str, c: Customer) -> None:
    """What dispatch leaves about a customer: a call-back task's script, an SMTP refusal, a statement."""
    conn = await asyncpg.connect(dsn)
    try:
        note = await conn.fetchval(
            "SELECT notification_id FROM customer_notifications WHERE customer_id = $1 LIMIT 1", c.customer_id
        )
        assert note is not None, "the complaint should have raised a notice"
        error = f"550 5.1.1 <{c.email}>: mailbox unavailable"
        await conn.execute("UPDATE customer_notifications SET last_error = $2 WHERE notification_id = $1", note, error)
        await conn.execute(
            "INSERT INTO notification_attempts (notification_id, attempt, at, outcome, status_code, error, "
            "duration_ms) VALUES ($1, 1, now(), 'retry', 550, $2, 120)",
            note,
            error,
        )
        details = orjson.dumps({"script": f"Call {c.name} back and tell them: ...", "notification_id": str(note)})
        await conn.execute(
            "INSERT INTO coordination_tasks (task_id, department, kind, severity, customer_id, title, details, due_at, "
            "source_event_id, rule, opened_at, warn_at, escalate_at) "
            "VALUES ($1, 'call_centre', 'call_back', 'P3', $2, $3, $4::jsonb, now(), $5, 'call_back', now(), now(), "
            "now())",
            uuid.uuid4(),
            c.customer_id,
            f"Call back customer {c.customer_id}: complaint received",
            details.decode(),
            f"callback:{note}",
        )
        await conn.execute(
            "INSERT INTO reports (kind, period, customer_id, format, content, as_of) "
            "VALUES ('statement', '2026-11', $1, 'html', convert_to($2, 'UTF8'), now())",
            c.customer_id,
            f"<h1>Statement for {c.name}</h1>",
        )
    finally:
        await conn.close()


async def test_erasure_leaves_nothing_personal_and_records_what_it_did(hub_settings):
    dsn = hub_settings.database_url.get_secret_value()
    async with running_hub(hub_settings) as _runtime:
        async with database(dsn) as conn:
            await import_customers(conn, [ERASE, KEEP])
        for customer, shipment in ((ERASE, "S-ERASE-1"), (KEEP, "S-KEEP-1")):
            shipments, carriers, calls = traffic(customer, shipment)
            await publish(hub_settings, shipments=shipments, carriers=carriers, calls=calls)
        broken = b'{"event_id": "x1", "customer_id": "C-ERASE", "caller_phone": "+86 139 1234 5678", '
        await publish_raw(hub_settings, hub_settings.topic_call_logs, [(b"C-ERASE", broken)])

        async def settled() -> bool:
            stored = await fetchval(dsn, "SELECT count(*) FROM inbox")
            letters = await fetchval(dsn, "SELECT count(*) FROM dead_letters")
            unsent = await fetchval(dsn, "SELECT count(*) FROM outbox WHERE sent_at IS NULL")
            return stored == 8 and letters == 1 and unsent == 0

        await wait_for(settled, what="8 events stored, 1 dead letter, every alert relayed")
    await dispatch_traces(dsn, ERASE)
    await dispatch_traces(dsn, KEEP)
    assert await personal_data_left(dsn, PERSONAL), "the test data should hold the customer's data before"

    result = await asyncio.to_thread(invoke, dsn, "customers", "erase", "C-ERASE", "--by", "dpo@logistics.example")
    assert result.exit_code == 0, result.output
    assert "customer C-ERASE: erased for dpo@logistics.example" in result.output

    assert await personal_data_left(dsn, PERSONAL) == []
    # the other customer keeps everything
    assert len(await personal_data_left(dsn, ("Li Na", "li.na@example.com", "+86 138 7654 3210"))) >= 8
    # the facts stay: ids, statuses, codes, the city, the history's shape
    history = await fetch(dsn, "SELECT payload FROM shipment_events WHERE shipment_id = 'S-ERASE-1' ORDER BY 1")
    payloads = [orjson.loads(r["payload"]) for r in history]
    assert {p.get("type") or p.get("status") for p in payloads} == {"created", "exception", "delivered"}
    assert {"code": "damaged"} in [p.get("exception") for p in payloads]
    assert {"code": "SHA-WH-03", "city": "Shanghai"} in [p.get("location") for p in payloads]
    call = orjson.loads(await fetchval(dsn, "SELECT payload FROM call_logs WHERE customer_id = 'C-ERASE'"))
    assert call["category"] == "complaint" and "caller_phone" not in call and "notes" not in call
    customer = await fetch(dsn, "SELECT name, email, phone, erased_at FROM customers WHERE customer_id = 'C-ERASE'")
    assert customer[0]["name"] is None and customer[0]["erased_at"] is not None
    assert await fetchval(dsn, "SELECT count(*) FROM customer_notifications WHERE body = $1", ERASED) >= 1

    recorded = await fetch(dsn, "SELECT customer_id, erased_by, touched FROM erasures")
    assert len(recorded) == 1 and recorded[0]["erased_by"] == "dpo@logistics.example"
    touched = orjson.loads(recorded[0]["touched"])
    assert touched["customers"] == 1 and touched["call_logs.payload"] == 1
    assert touched["shipment_events.payload"] == 3 and touched["dead_letters.value"] == 1
    assert touched["outbox.value"] >= 1 and touched["reports.content"] == 1
    assert touched["coordination_tasks.details"] == 1 and touched["notification_attempts.error"] == 1

    again = await asyncio.to_thread(invoke, dsn, "customers", "erase", "C-ERASE", "--by", "dpo@logistics.example")
    assert again.exit_code == 0 and "nothing personal left to erase" in again.output, again.output
    assert await fetchval(dsn, "SELECT count(*) FROM erasures WHERE customer_id = 'C-ERASE'") == 2
    shown = await asyncio.to_thread(invoke, dsn, "customers", "show", "C-ERASE")
    assert "personal data removed for a privacy request" in shown.output
    assert (await asyncio.to_thread(invoke, dsn, "customers", "erase", "C-NOBODY", "--by", "x")).exit_code == 1
