"""The console in a real browser: Debian's Chromium driven by Playwright, loopback only. One test
per page and per action; every test also fails on a CSP violation or a script error (conftest).

Screenshots land in a temporary folder, or with HUB_CONSOLE_SCREENSHOTS=docs/console in the
README's folder (`HUB_CONSOLE_SCREENSHOTS=docs/console pytest -n 0 tests/console`).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from playwright.async_api import expect

from hub.config import Settings
from hub.ops.customers import import_customers
from hub.ops.users import Role
from schemas.customers import Customer
from tests.console.conftest import log_in
from tests.console.harness import PASSWORD, http_login, make_task, make_user, session_token, unique
from tests.support import (
    alerts_of,
    call_log,
    carrier_update,
    fetch,
    fetchval,
    publish,
    publish_raw,
    read_topics,
    shipment_event,
    wait_until,
)

XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'
NO_XSS = "() => window.__xss === undefined"

pytestmark = pytest.mark.usefixtures("users")


@dataclass(frozen=True)
class Scenario:
    customer_id: str
    shipment_id: str
    dead_letter_id: str
    complaint_task_id: str


@pytest.fixture(scope="session")
async def scenario(console_settings: Settings, console_dsn: str, hub: Any) -> Scenario:
    """One customer and one shipment's life through the hub itself: both streams, a complaint
    call whose notes are a script, tasks, notifications (one tried twice), survey answers, and a
    malformed message that becomes a dead letter."""
    tag = uuid.uuid4().hex[:6]
    customer, shipment = f"C-XSS-{tag}", f"S-TL-{tag}"
    conn = await asyncpg.connect(console_dsn)
    try:
        await import_customers(
            conn,
            [
                Customer(
                    customer_id=customer,
                    name=f"{XSS}华东精密",
                    tier="key",
                    language="zh",
                    preferred_channel="email",
                    email="ops@huadong.example",
                    phone="+86 21 5555 0199",
                    credit_rating="A",
                    account_manager="王经理",
                )
            ],
        )
    finally:
        await conn.close()
    await publish(
        console_settings,
        shipments=[
            shipment_event(
                shipment, "created", 0, customer_id=customer, promised_delivery_at="2026-11-28T18:00:00+08:00"
            ),
            shipment_event(
                shipment,
                "exception",
                90,
                customer_id=customer,
                exception={"code": "damaged", "description": "carton crushed"},
            ),
        ],
        carriers=[carrier_update(shipment, "accepted", 30), carrier_update(shipment, "in_transit", 60)],
        calls=[
            call_log(customer, "complaint", 120, shipment_id=shipment, notes=f"客户很生气 {XSS}"),
            call_log(customer, "survey", 130, shipment_id=shipment, satisfaction_score=5),
            call_log(customer, "survey", 140, shipment_id=shipment, satisfaction_score=2),
        ],
    )
    malformed = f'{{"event_id": "{XSS}", "shipment_id": '.encode()
    await publish_raw(console_settings, console_settings.topic_shipment_events, [(shipment.encode(), malformed)])

    async def settled() -> bool:
        tasks = await fetchval(console_dsn, "SELECT count(*) FROM coordination_tasks WHERE shipment_id = $1", shipment)
        letters = await fetchval(console_dsn, "SELECT count(*) FROM dead_letters WHERE key = $1", shipment.encode())
        calls = await fetchval(console_dsn, "SELECT count(*) FROM call_logs WHERE shipment_id = $1", shipment)
        return tasks >= 3 and letters == 1 and calls == 3

    await wait_until(settled, 90, "the scenario's tasks, calls and dead letter")
    # dispatch is off in tests: record two tries of one notice as the dispatcher would
    note = await fetchval(
        console_dsn, "SELECT notification_id FROM customer_notifications WHERE shipment_id = $1 LIMIT 1", shipment
    )
    conn = await asyncpg.connect(console_dsn)
    try:
        await conn.execute(
            """INSERT INTO notification_attempts
                   (notification_id, attempt, at, outcome, status_code, error, duration_ms)
               SELECT $1, 1, created_at + interval '2 seconds', 'retry', 451, 'mailbox busy', 120
               FROM customer_notifications WHERE notification_id = $1
               UNION ALL
               SELECT $1, 2, created_at + interval '7 seconds', 'sent', 250, NULL, 95
               FROM customer_notifications WHERE notification_id = $1""",
            note,
        )
        await conn.execute(
            "UPDATE customer_notifications SET status = 'sent', sent_at = created_at + interval '7 seconds' "
            "WHERE notification_id = $1",
            note,
        )
    finally:
        await conn.close()
    letter = await fetchval(console_dsn, "SELECT id::text FROM dead_letters WHERE key = $1", shipment.encode())
    complaint = await fetchval(
        console_dsn,
        "SELECT task_id::text FROM coordination_tasks WHERE shipment_id = $1 AND department = 'complaints'",
        shipment,
    )
    return Scenario(customer, shipment, letter, complaint)


async def task_row(dsn: str, task_id: str) -> asyncpg.Record:
    return (await fetch(dsn, "SELECT * FROM coordination_tasks WHERE task_id = $1", uuid.UUID(task_id)))[0]


async def history(dsn: str, task_id: str) -> list[tuple[str, str]]:
    rows = await fetch(
        dsn, "SELECT actor, action FROM task_events WHERE task_id = $1 ORDER BY at, id", uuid.UUID(task_id)
    )
    return [(r["actor"], r["action"]) for r in rows]


# ------------------------------------------------------------------------------------------ logging in


async def test_login_logout_and_lock_out(page: Any, base: str, console_dsn: str, shots: Any):
    await page.goto(f"{base}/tasks")
    await expect(page).to_have_url(f"{base}/login?next=%2Ftasks")
    await expect(page.locator("h1")).to_have_text("登录")
    await shots(page, "login")
    await page.fill("#username", "vera")
    await page.fill("#password", "not her password")
    await page.click("#login")
    await expect(page.locator("#login-error")).to_have_text("用户名或密码错误。")
    await page.fill("#username", "vera")
    await page.fill("#password", PASSWORD)
    await page.click("#login")
    await expect(page).to_have_url(f"{base}/tasks")
    await expect(page.locator("#who")).to_contain_text("vera")
    await page.click("#logout")
    await expect(page).to_have_url(f"{base}/login")
    await page.goto(f"{base}/queues")
    await expect(page.locator("#login-form")).to_be_visible()

    name = await make_user(console_dsn, unique("lock"), Role.AGENT, ["claims"])
    for _ in range(5):
        await page.fill("#username", name)
        await page.fill("#password", "guessing again")
        await page.click("#login")
    await expect(page.locator("#login-error")).to_contain_text("登录失败次数过多")
    await page.fill("#username", name)
    await page.fill("#password", PASSWORD)
    await page.click("#login")
    await expect(page.locator("#login-error")).to_contain_text("已锁定")
    await shots(page, "login-locked")
    assert await fetchval(console_dsn, "SELECT locked_until > now() FROM console_users WHERE username = $1", name)


# --------------------------------------------------------------------------------------------- queues


async def test_queues_show_a_new_alert_within_2_s_without_a_reload(
    page: Any, base: str, console_settings: Settings, console_dsn: str, hub: Any, shots: Any
):
    await log_in(page, base, "vera")
    await expect(page.locator("#live-state")).to_have_attribute("data-state", "open")
    await page.evaluate("() => { window.__marker = 'no reload'; }")
    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url) if frame == page.main_frame else None)
    p1_cell = page.locator("#counts tr[data-queue=exceptions] td[data-severity=P1]")
    before = int(await p1_cell.inner_text())

    shipment = unique("S-LIVE")
    await publish(
        console_settings,
        shipments=[shipment_event(shipment, "exception", exception={"code": "damaged", "description": "water"})],
    )

    async def written() -> bool:
        return bool(await fetchval(console_dsn, "SELECT count(*) FROM outbox WHERE key = $1", shipment.encode()))

    await wait_until(written, 60, "the hub to write the alert")
    in_outbox = time.monotonic()
    await expect(page.locator("#alerts li", has_text=shipment)).to_be_visible(timeout=5000)
    shown_after = time.monotonic() - in_outbox
    assert shown_after < 2.0, f"the alert took {shown_after:.2f}s to appear"
    await expect(p1_cell).not_to_have_text(str(before))

    # a task change: a manager-level task at the top of the list, claimed in another session
    urgent = await make_task(console_dsn, department="claims", title="Escalated to the manager")
    await fetchval(  # as the clock escalates one (its history row NOTIFYs hub_tasks)
        console_dsn,
        "WITH up AS (UPDATE coordination_tasks SET escalation_level = 2 WHERE task_id = $1 RETURNING 1) "
        "SELECT pg_notify('hub_tasks', '') FROM up",
        uuid.UUID(urgent),
    )
    row = page.locator(f"#urgent tr[data-task-id='{urgent}']")
    await expect(row).to_be_visible(timeout=5000)
    sam = await http_login(base, "sam")
    try:
        claimed = await sam.post(f"/tasks/{urgent}/claim", data={"csrf": await session_token(sam)})
        assert claimed.status_code == 303
        changed = time.monotonic()
        await expect(row).to_contain_text("sam", timeout=5000)
        assert time.monotonic() - changed < 2.0
    finally:
        await sam.aclose()
    assert await page.evaluate("() => window.__marker") == "no reload"
    assert navigations == []
    await shots(page, "queues-live")


# ---------------------------------------------------------------------------------------------- tasks


async def test_tasks_page_filters_by_department_severity_status_overdue_and_escalation(
    page: Any, base: str, console_dsn: str, shots: Any
):
    tag = uuid.uuid4().hex[:6]
    overdue = await make_task(
        console_dsn, department="warehouse", severity="P1", title=f"Overdue {tag}", due_in=timedelta(hours=-1)
    )
    later = await make_task(console_dsn, department="warehouse", severity="P3", title=f"Later {tag}")
    other = await make_task(console_dsn, department="dispatch", severity="P1", title=f"Dispatch {tag}")
    escalated = await make_task(console_dsn, department="warehouse", severity="P2", title=f"Escalated {tag}")
    await fetchval(
        console_dsn,
        "UPDATE coordination_tasks SET escalation_level = 1, breached_at = now() WHERE task_id = $1 RETURNING 1",
        uuid.UUID(escalated),
    )
    await log_in(page, base, "vera")
    await page.goto(f"{base}/tasks")
    await page.select_option("#f-department", "warehouse")
    await page.click("#f-apply")
    listed = page.locator("#task-list")
    for title in (f"Overdue {tag}", f"Later {tag}", f"Escalated {tag}"):
        await expect(listed).to_contain_text(title)
    await expect(listed).not_to_contain_text(f"Dispatch {tag}")
    await page.select_option("#f-severity", "P1")
    await page.click("#f-apply")
    await expect(listed).to_contain_text(f"Overdue {tag}")
    await expect(listed).not_to_contain_text(f"Later {tag}")
    await page.select_option("#f-severity", "")
    await page.check("#f-overdue")
    await page.click("#f-apply")
    await expect(listed).to_contain_text(f"Overdue {tag}")
    await expect(listed).not_to_contain_text(f"Escalated {tag}")
    await page.uncheck("#f-overdue")
    await page.select_option("#f-escalation", "1")
    await page.click("#f-apply")
    await expect(listed).to_contain_text(f"Escalated {tag}")
    await expect(listed).not_to_contain_text(f"Later {tag}")
    await page.goto(f"{base}/tasks?department=warehouse")
    await shots(page, "tasks")
    await page.select_option("#f-status", "done")
    await page.click("#f-apply")
    await expect(page.locator("#no-tasks, #task-list").first).not_to_contain_text(f"Later {tag}")
    assert {overdue, later, other, escalated}


async def test_claim_race_between_two_browser_sessions_names_the_winner(
    browser_page: Any, base: str, console_dsn: str, shots: Any
):
    rival = await make_user(console_dsn, unique("carla"), Role.AGENT, ["claims"])
    task_id = await make_task(console_dsn, department="claims", title="Claim race: damaged parcel")
    cleo, carla = await browser_page("cleo"), await browser_page(rival)
    for p in (cleo, carla):
        await p.goto(f"{base}/tasks/{task_id}")
        await expect(p.locator("#do-claim")).to_be_visible()
    await asyncio.gather(cleo.click("#do-claim"), carla.click("#do-claim"))
    winner = (await task_row(console_dsn, task_id))["claimed_by"]
    won, lost = (cleo, carla) if winner == "cleo" else (carla, cleo)
    await expect(won.locator("#action-done")).to_be_visible()
    await expect(lost.locator("#action-error")).to_contain_text(f"已由 {winner} 于")
    await expect(lost.locator("#task-holder")).to_contain_text(winner)
    assert [a for a in await history(console_dsn, task_id) if a[1] == "claimed"] == [(winner, "claimed")]
    await shots(lost, "claim-race")


async def test_comment_on_a_task(page: Any, base: str, console_dsn: str):
    task_id = await make_task(console_dsn, department="claims")
    await log_in(page, base, "cleo")
    await page.goto(f"{base}/tasks/{task_id}")
    await page.fill("#comment-text", "打电话给承运商：<b>明天</b>上门取件")
    await page.click("#do-comment")
    await expect(page.locator("#task-history tr[data-action=commented]")).to_contain_text("<b>明天</b>")
    assert await history(console_dsn, task_id) == [("hub", "created"), ("cleo", "commented")]


async def test_supervisor_reassigns_to_another_department_and_person(page: Any, base: str, console_dsn: str):
    task_id = await make_task(console_dsn, department="claims")
    await log_in(page, base, "sam")
    await page.goto(f"{base}/tasks/{task_id}")
    await page.select_option("#reassign-department", "carrier_liaison")
    await page.fill("#reassign-to", "lin")
    await page.click("#do-reassign")
    await expect(page.locator("#task-department")).to_have_text("承运商联络")
    await expect(page.locator("#task-holder")).to_contain_text("lin")
    row = await task_row(console_dsn, task_id)
    assert (row["department"], row["claimed_by"], row["status"]) == ("carrier_liaison", "lin", "in_progress")
    assert (await history(console_dsn, task_id))[-1] == ("sam", "reassigned")


async def test_resolve_with_a_resolution_and_the_whole_history(page: Any, base: str, console_dsn: str, shots: Any):
    task_id = await make_task(console_dsn, department="claims", title="Insurance claim: damaged shipment S-88231")
    await log_in(page, base, "cleo")
    await page.goto(f"{base}/tasks/{task_id}")
    await page.click("#do-claim")
    await expect(page.locator("#task-status")).to_have_attribute("data-status", "in_progress")
    await page.fill("#comment-text", "已联系保险公司")
    await page.click("#do-comment")
    await page.fill("#resolve-resolution", "已赔付 ¥1,200")
    await page.click("#do-resolve")
    await expect(page.locator("#task-status")).to_have_attribute("data-status", "done")
    await expect(page.locator("#task-resolution")).to_have_text("已赔付 ¥1,200")
    rows = page.locator("#task-history tbody tr")
    await expect(rows).to_have_count(4)
    await expect(rows.nth(0)).to_contain_text("系统")
    await expect(rows.nth(3)).to_contain_text("cleo")
    await expect(rows.nth(3)).to_contain_text("已赔付 ¥1,200")
    await shots(page, "task")
    assert await history(console_dsn, task_id) == [
        ("hub", "created"),
        ("cleo", "claimed"),
        ("cleo", "commented"),
        ("cleo", "resolved"),
    ]
    row = await task_row(console_dsn, task_id)
    assert (row["resolved_by"], row["resolution"]) == ("cleo", "已赔付 ¥1,200")


async def test_cancel_a_task(page: Any, base: str, console_dsn: str):
    task_id = await make_task(console_dsn, department="claims")
    await log_in(page, base, "cleo")
    await page.goto(f"{base}/tasks/{task_id}")
    await page.fill("#cancel-resolution", "duplicate of another task")
    await page.click("#do-cancel")
    await expect(page.locator("#task-status")).to_have_attribute("data-status", "cancelled")
    await expect(page.locator("#do-reopen")).to_have_count(0)  # a cancelled task stays closed
    assert (await history(console_dsn, task_id))[-1] == ("cleo", "cancelled")


async def test_reopen_a_done_task(page: Any, base: str, console_dsn: str):
    task_id = await make_task(console_dsn, department="claims")
    await log_in(page, base, "cleo")
    await page.goto(f"{base}/tasks/{task_id}")
    await page.fill("#resolve-resolution", "refunded")
    await page.click("#do-resolve")
    await page.fill("#reopen-reason", "customer called again")
    await page.click("#do-reopen")
    await expect(page.locator("#task-status")).to_have_attribute("data-status", "open")
    await expect(page.locator("#task-history tr[data-action=reopened]")).to_contain_text("refunded")
    assert (await history(console_dsn, task_id))[-2:] == [("cleo", "resolved"), ("cleo", "reopened")]


async def test_release_a_claimed_task(page: Any, base: str, console_dsn: str):
    task_id = await make_task(console_dsn, department="claims")
    await log_in(page, base, "cleo")
    await page.goto(f"{base}/tasks/{task_id}")
    await page.click("#do-claim")
    await page.click("#do-release")
    await expect(page.locator("#task-status")).to_have_attribute("data-status", "open")
    assert (await history(console_dsn, task_id))[-1] == ("cleo", "released")


async def test_supervisor_takes_over_a_held_task(browser_page: Any, base: str, console_dsn: str):
    task_id = await make_task(console_dsn, department="claims")
    cleo = await browser_page("cleo")
    await cleo.goto(f"{base}/tasks/{task_id}")
    await cleo.click("#do-claim")
    sam = await browser_page("sam")
    await sam.goto(f"{base}/tasks/{task_id}")
    await expect(sam.locator("#do-claim")).to_have_count(0)
    await sam.click("#do-takeover")
    await expect(sam.locator("#task-holder")).to_contain_text("sam")
    events = await fetch(
        console_dsn, "SELECT detail FROM task_events WHERE task_id = $1 AND actor = 'sam'", uuid.UUID(task_id)
    )
    assert '"taken_over_from": "cleo"' in events[0]["detail"]


async def test_a_viewer_sees_no_actions(page: Any, base: str, console_dsn: str):
    task_id = await make_task(console_dsn, department="claims")
    await log_in(page, base, "vera")
    await page.goto(f"{base}/tasks/{task_id}")
    await expect(page.locator("#task-actions form")).to_have_count(0)
    await page.goto(f"{base}/silences")
    await expect(page.locator("#silence-form")).to_have_count(0)


# ------------------------------------------------------------------------------------------- shipment


async def test_shipment_page_has_the_sheet_and_one_timeline_in_time_order(
    page: Any, base: str, scenario: Scenario, shots: Any
):
    await log_in(page, base, "vera")
    await page.goto(f"{base}/shipments")
    await page.fill("#shipment-id", scenario.shipment_id)
    await page.click("#shipment-go")
    await expect(page.locator("#shipment-title")).to_have_text(scenario.shipment_id)
    await expect(page.locator("#sheet-status")).to_have_text("exception")
    await expect(page.locator("#sheet-customer-name")).to_contain_text("<script>window.__xss=1</script>")
    timeline = page.locator("#timeline tbody tr")
    kinds = await timeline.evaluate_all("rows => rows.map(r => r.dataset.kind)")
    assert {"event", "call", "task", "notification", "attempt"} <= set(kinds), kinds
    times = await page.locator("#timeline td.time").all_inner_texts()
    assert times == sorted(times)
    await expect(page.locator("#timeline tr[data-kind=call]").first).to_contain_text("客户很生气 <script>")
    await expect(page.locator("#timeline tr[data-kind=attempt]")).to_have_count(2)
    assert await page.evaluate(NO_XSS)
    await shots(page, "shipment")


# ---------------------------------------------------------------------------------------- dead letters


async def test_dead_letter_shown_safely_and_replayed_by_a_supervisor(
    page: Any, base: str, console_settings: Settings, console_dsn: str, scenario: Scenario, shots: Any
):
    await log_in(page, base, "sam")
    await page.goto(f"{base}/dead-letters")
    await page.click(f"#letters tr[data-letter-id='{scenario.dead_letter_id}'] a")
    await expect(page.locator("#letter-value")).to_contain_text('{"event_id": "<script>window.__xss=1</script>')
    assert await page.evaluate(NO_XSS)
    await shots(page, "dead-letter")
    await page.click("#do-replay")
    await expect(page.locator("#replay-done")).to_contain_text(console_settings.topic_shipment_events)
    await expect(page.locator("#letter-replayed")).not_to_have_text("尚未")
    assert await fetchval(
        console_dsn,
        "SELECT replayed_at IS NOT NULL FROM dead_letters WHERE id = $1",
        uuid.UUID(scenario.dead_letter_id),
    )
    audit = await fetchval(
        console_dsn,
        "SELECT actor FROM console_audit WHERE action = 'dead_letter_replayed' AND subject = $1",
        scenario.dead_letter_id,
    )
    assert audit == "sam"


# ------------------------------------------------------------------------------------------- customers


async def test_customer_register_and_a_customers_page(page: Any, base: str, scenario: Scenario, shots: Any):
    await log_in(page, base, "vera")
    await page.goto(f"{base}/customers")
    await page.fill("#customer-search", scenario.customer_id)
    await page.click("#customer-go")
    row = page.locator(f"#customers tr[data-customer-id='{scenario.customer_id}']")
    await expect(row).to_contain_text("大客户")
    await expect(row).to_contain_text("ops@huadong.example")
    await expect(row.locator("td.name")).to_contain_text("<img src=x onerror=")
    await shots(page, "customers")
    await row.locator("a").first.click()
    await expect(page.locator("#customer-name")).to_contain_text("华东精密")
    await expect(page.locator("#customer-facts")).to_contain_text("王经理")
    await expect(page.locator("#csat")).to_contain_text("50.0%")
    await expect(page.locator("#customer-tasks")).to_contain_text(scenario.shipment_id)
    await expect(page.locator("#customer-shipments")).to_contain_text(scenario.shipment_id)
    await expect(page.locator("#customer-notifications")).to_contain_text(scenario.shipment_id)
    assert await page.evaluate(NO_XSS)
    await shots(page, "customer")


# -------------------------------------------------------------------------------------------- silences


async def test_a_silence_stops_matching_alerts_from_reaching_their_queue(
    page: Any, base: str, console_settings: Settings, console_dsn: str, hub: Any, shots: Any
):
    held, passed = unique("S-HELD"), unique("S-PASS")
    await log_in(page, base, "sam")
    await page.goto(f"{base}/silences")
    await page.select_option("#s-queue", "exceptions")
    await page.fill("#s-shipment", held)
    await page.fill("#s-hours", "2")
    await page.fill("#s-comment", "carrier SF outage, ticket 4711")
    await page.click("#do-silence")
    row = page.locator("#silences tr.active", has_text=held)
    await expect(row).to_contain_text("carrier SF outage")
    silence_id = int(await row.get_attribute("data-silence-id") or 0)

    damage = {"code": "damaged", "description": "crushed"}
    await publish(
        console_settings,
        shipments=[shipment_event(s, "exception", exception=damage) for s in (held, passed)],
    )

    async def relayed() -> bool:
        rows = await fetch(
            console_dsn,
            "SELECT key, sent_at, silenced_by FROM outbox WHERE key = ANY($1::bytea[])",
            [held.encode(), passed.encode()],
        )
        return len(rows) == 2 and all(r["sent_at"] is not None for r in rows)

    await wait_until(relayed, 60, "both alerts written, one relayed")
    rows = {
        bytes(r["key"]).decode(): r["silenced_by"]
        for r in await fetch(
            console_dsn,
            "SELECT key, silenced_by FROM outbox WHERE key = ANY($1::bytea[])",
            [held.encode(), passed.encode()],
        )
    }
    assert rows == {held: silence_id, passed: None}
    # the task and the notification of the held alert are there all the same
    assert await fetchval(console_dsn, "SELECT count(*) FROM coordination_tasks WHERE shipment_id = $1", held) == 1
    on_queue = alerts_of(
        await read_topics(console_settings, [console_settings.topic_alerts_exceptions], idle=3, timeout=30)
    )
    shipments_on_queue = {a["shipment_id"] for a in on_queue}
    assert passed in shipments_on_queue and held not in shipments_on_queue

    await page.goto(f"{base}/queues")
    await expect(page.locator("#alerts li.silenced", has_text=held)).to_contain_text(f"被静默 #{silence_id} 拦截")
    await shots(page, "queues")
    await page.goto(f"{base}/silences")
    await expect(page.locator(f"#silences tr[data-silence-id='{silence_id}'] td.held")).to_have_text("1")
    await shots(page, "silences")
    await page.locator(f"#silences tr[data-silence-id='{silence_id}'] button.do-expire").click()
    await expect(page.locator(f"#silences tr[data-silence-id='{silence_id}']")).to_have_class("ended")
    assert await fetchval(console_dsn, "SELECT expired_by FROM silences WHERE id = $1", silence_id) == "sam"


# ---------------------------------------------------------------------------------------------- users


async def test_an_admin_disables_a_user_and_lifts_a_lock_out(browser_page: Any, base: str, console_dsn: str):
    agent, locked = (
        await make_user(console_dsn, unique("ines"), Role.AGENT, ["claims"]),
        await make_user(console_dsn, unique("otto"), Role.VIEWER),
    )
    await fetchval(
        console_dsn,
        "UPDATE console_users SET locked_until = now() + interval '10 minutes' WHERE username = $1 RETURNING 1",
        locked,
    )
    their_page = await browser_page(agent)
    admin = await browser_page("ada")
    await admin.click("header nav a[href='/users']")
    await admin.locator(f"#users tr[data-user='{locked}'] button.do-unlock").click()
    await expect(admin.locator(f"#users tr[data-user='{locked}'] td.state")).to_have_text("生效中")
    await admin.locator(f"#users tr[data-user='{agent}'] button.do-disable").click()
    await expect(admin.locator(f"#users tr[data-user='{agent}'] td.state")).to_have_text("已停用")
    await their_page.goto(f"{base}/tasks")
    await expect(their_page.locator("#login-form")).to_be_visible()  # the session ended with the user
    audit = await fetch(
        console_dsn,
        "SELECT actor, action FROM console_audit WHERE subject = ANY($1::text[]) AND actor = 'ada'",
        [agent, locked],
    )
    assert {(r["actor"], r["action"]) for r in audit} == {("ada", "user_disabled"), ("ada", "user_unlocked")}


# -------------------------------------------------------------------------------------------- reports


async def test_reports_page_says_when_there_are_none(page: Any, base: str):
    await log_in(page, base, "vera")
    await page.goto(f"{base}/reports")
    await expect(page.locator("#no-reports")).to_have_text("暂无报表。")


# ------------------------------------------------------------------------------------------- language


async def test_language_switch_and_the_browsers_language(browser_page: Any, base: str, shots: Any):
    page = await browser_page("vera")
    await expect(page.locator("header nav")).to_contain_text("队列")
    await page.click("#lang-en")
    await expect(page.locator("header nav")).to_contain_text("Queues")
    await expect(page.locator("h1")).to_contain_text("Handler queues")
    await page.reload()
    await expect(page.locator("h1")).to_contain_text("Handler queues")  # remembered
    await shots(page, "queues-en")
    await page.click("#lang-zh")
    await expect(page.locator("h1")).to_contain_text("处理队列")

    english = await browser_page(locale="en-US")
    await english.goto(f"{base}/login")
    await expect(english.locator("h1")).to_have_text("Log in")
    await english.click("#lang-zh")  # before logging in, too
    await expect(english.locator("h1")).to_have_text("登录")
