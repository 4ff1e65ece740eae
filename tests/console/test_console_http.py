"""The console's security over plain HTTP, with crafted requests (not through the pages' buttons):
CSRF on every state-changing route, roles and departments enforced on the server, escaping of
untrusted text, cookie flags, the security headers, sessions that end, lock-out, proxies."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import orjson
import pytest

from hub.config import Settings
from hub.console import pages
from hub.console.app import CSP, TEMPLATES, create_app
from hub.console.auth import TASK_ACTIONS
from hub.console.i18n import ZH, negotiate
from hub.ops.users import Role, disable_user
from tests.console.harness import (
    CHEAP,
    PASSWORD,
    ThreadedServer,
    form_token,
    http_login,
    make_task,
    make_user,
    session_token,
    unique,
)
from tests.support import fetch, fetchval

XSS = '<script>window.__xss=1</script><img src=x onerror="window.__xss=2">'


@pytest.fixture
async def sam(base: str) -> AsyncIterator[httpx.AsyncClient]:
    client = await http_login(base, "sam")
    yield client
    await client.aclose()


async def _dead_letter(dsn: str, value: bytes = b"{not json") -> str:
    letter_id = str(uuid.uuid4())
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(
            """INSERT INTO dead_letters (id, source_topic, source_partition, source_offset, value_hash, reason,
                                         error_class, message, key, value)
               VALUES ($1, 'shipment.events', 0, $2, $3, 'invalid_json', 'JSONDecodeError', $4, $5, $6)""",
            uuid.UUID(letter_id),
            int(uuid.uuid4().int % 1_000_000),
            uuid.uuid4().bytes,
            f"unexpected character {XSS}",
            b"S-1",
            value,
        )
    finally:
        await conn.close()
    return letter_id


async def _silence(dsn: str) -> int:
    return await fetchval(
        dsn,
        "INSERT INTO silences (shipment_id, author, comment, ends_at) "
        "VALUES ($1, 'sam', 'test', now() + interval '1 hour') RETURNING id",
        unique("S-SIL"),
    )


async def _post_targets(dsn: str) -> list[str]:
    """Every POST route of the console with real ids in its path."""
    task_id = await make_task(dsn, department="claims")
    letter_id = await _dead_letter(dsn)
    silence_id = await _silence(dsn)
    username = await make_user(dsn, unique("victim"), Role.VIEWER)
    values = {"task_id": task_id, "letter_id": letter_id, "silence_id": str(silence_id), "username": username}
    targets = []
    for route in pages.ROUTES:
        if "POST" not in (route.methods or ()):
            continue
        if route.path.startswith("/tasks/"):
            targets += [route.path.format(task_id=task_id, action=a) for a in TASK_ACTIONS]
        elif route.path.startswith("/users/"):
            targets += [route.path.format(username=username, action=a) for a in ("disable", "unlock")]
        else:
            targets.append(re.sub(r"{(\w+)(:\w+)?}", lambda m: values[m.group(1)], route.path))
    return targets


async def _snapshot(dsn: str) -> tuple:
    """Everything a POST could change."""
    return (
        await fetchval(dsn, "SELECT count(*) FROM task_events"),
        await fetchval(dsn, "SELECT count(*) FROM silences WHERE ends_at > now()"),
        await fetchval(dsn, "SELECT count(*) FROM silences"),
        await fetchval(dsn, "SELECT count(*) FROM dead_letters WHERE replayed_at IS NOT NULL"),
        await fetchval(dsn, "SELECT count(*) FROM console_sessions WHERE ended_at IS NULL"),
        await fetchval(dsn, "SELECT count(*) FROM console_users WHERE disabled_at IS NOT NULL"),
        await fetchval(
            dsn, "SELECT string_agg(status || coalesce(claimed_by, ''), ',' ORDER BY task_id) FROM coordination_tasks"
        ),
    )


# ------------------------------------------------------------------------------------------------ CSRF


async def test_every_state_changing_route_refuses_a_missing_or_wrong_csrf_token(
    base: str, console_dsn: str, sam: httpx.AsyncClient
):
    targets = await _post_targets(console_dsn)
    assert len(targets) >= 15  # login, logout, lang, 8 task actions, replay, silence create and expire, 2 user actions
    before = await _snapshot(console_dsn)
    for path in targets:
        for data in ({}, {"csrf": "forged"}, {"csrf": ""}):
            answer = await sam.post(path, data={**data, "text": "x", "resolution": "x", "comment": "x", "hours": "1"})
            assert answer.status_code == 403, (path, data, answer.status_code)
        answer = await sam.post(path, headers={"X-CSRF-Token": "forged"})
        assert answer.status_code == 403, path
    assert await _snapshot(console_dsn) == before, "a refused request changed something"
    # the same client with its token does get through (the refusals above were the token's doing)
    token = await session_token(sam)
    task_id = targets[3].split("/")[2]
    answer = await sam.post(f"/tasks/{task_id}/comment", data={"csrf": token, "text": "with a token"})
    assert answer.status_code == 303


async def test_a_session_token_does_not_work_for_another_session(base: str, console_dsn: str):
    task_id = await make_task(console_dsn, department="claims")
    first, second = await http_login(base, "cleo"), await http_login(base, "cleo")
    try:
        stolen = await session_token(first)
        answer = await second.post(f"/tasks/{task_id}/claim", data={"csrf": stolen})
        assert answer.status_code == 403
        assert (
            await fetchval(console_dsn, "SELECT status FROM coordination_tasks WHERE task_id = $1", uuid.UUID(task_id))
            == "open"
        )
    finally:
        await first.aclose()
        await second.aclose()


# ----------------------------------------------------------------------------------- roles, departments


async def test_an_agent_of_claims_cannot_resolve_a_complaints_task_with_a_crafted_request(base: str, console_dsn: str):
    complaint = await make_task(console_dsn, department="complaints", kind="complaint", rule="complaint")
    claim = await make_task(console_dsn, department="claims")
    cleo = await http_login(base, "cleo")  # agent of claims
    try:
        token = await session_token(cleo)
        for action in ("resolve", "claim", "comment", "cancel"):
            answer = await cleo.post(
                f"/tasks/{complaint}/{action}", data={"csrf": token, "resolution": "done", "text": "x"}
            )
            assert answer.status_code == 403, action
            assert "complaints" in answer.text
        row = await fetch(
            console_dsn, "SELECT status, resolved_by FROM coordination_tasks WHERE task_id = $1", uuid.UUID(complaint)
        )
        assert (row[0]["status"], row[0]["resolved_by"]) == ("open", None)
        actors = await fetch(console_dsn, "SELECT actor FROM task_events WHERE task_id = $1", uuid.UUID(complaint))
        assert [r["actor"] for r in actors] == ["hub"]
        # her own department's task she may resolve
        answer = await cleo.post(f"/tasks/{claim}/resolve", data={"csrf": token, "resolution": "refund issued"})
        assert answer.status_code == 303
        row = await fetch(
            console_dsn, "SELECT status, resolved_by FROM coordination_tasks WHERE task_id = $1", uuid.UUID(claim)
        )
        assert (row[0]["status"], row[0]["resolved_by"]) == ("done", "cleo")
        # a claims task another agent holds: hers to comment on, not to close; a supervisor may
        held = await make_task(console_dsn, department="claims")
        rival = await http_login(base, await make_user(console_dsn, unique("carl"), Role.AGENT, ["claims"]))
        assert (await rival.post(f"/tasks/{held}/claim", data={"csrf": await session_token(rival)})).status_code == 303
        await rival.aclose()
        for action in ("resolve", "cancel"):
            answer = await cleo.post(f"/tasks/{held}/{action}", data={"csrf": token, "resolution": "mine now"})
            assert answer.status_code == 403, action
        assert (await cleo.post(f"/tasks/{held}/comment", data={"csrf": token, "text": "noted"})).status_code == 303
        sam = await http_login(base, "sam")
        answer = await sam.post(f"/tasks/{held}/resolve", data={"csrf": await session_token(sam), "resolution": "done"})
        assert answer.status_code == 303
        await sam.aclose()
        # what only a supervisor may do
        other = await make_task(console_dsn, department="claims")
        for path, data in (
            (f"/tasks/{other}/reassign", {"department": "dispatch"}),
            (f"/tasks/{other}/takeover", {}),
            ("/silences", {"shipment_id": "S-1", "comment": "x", "hours": "1"}),
            (f"/dead-letters/{await _dead_letter(console_dsn)}/replay", {}),
        ):
            answer = await cleo.post(path, data={"csrf": token, **data})
            assert answer.status_code == 403, path
    finally:
        await cleo.aclose()


async def test_a_viewer_cannot_change_anything(base: str, console_dsn: str):
    targets = [t for t in await _post_targets(console_dsn) if t not in ("/login", "/logout", "/lang")]
    vera = await http_login(base, "vera")
    try:
        token = await session_token(vera)
        before = await _snapshot(console_dsn)
        for path in targets:
            data = {"csrf": token, "text": "x", "resolution": "x", "comment": "x", "hours": "1", "shipment_id": "S"}
            answer = await vera.post(path, data=data)
            assert answer.status_code == 403, path
        assert await _snapshot(console_dsn) == before
    finally:
        await vera.aclose()


# ------------------------------------------------------------------------------------------- escaping


async def test_untrusted_text_renders_escaped_in_notes_customer_names_and_dead_letters(
    base: str, console_dsn: str, sam: httpx.AsyncClient
):
    customer, shipment = unique("C-XSS"), unique("S-XSS")
    conn = await asyncpg.connect(console_dsn)
    try:
        await conn.execute("INSERT INTO customers (customer_id, name) VALUES ($1, $2)", customer, XSS)
        await conn.execute(
            "INSERT INTO shipments (shipment_id, customer_id, status) VALUES ($1, $2, 'in_transit')", shipment, customer
        )
        await conn.execute(
            """INSERT INTO call_logs (event_id, call_id, customer_id, shipment_id, direction, channel, category,
                                      occurred_at, payload)
               VALUES ($1, 'K1', $2, $3, 'inbound', 'phone', 'complaint', now(), $4::jsonb)""",
            unique("E"),
            customer,
            shipment,
            orjson.dumps({"notes": XSS}).decode(),
        )
    finally:
        await conn.close()
    letter = await _dead_letter(console_dsn, XSS.encode())
    await make_task(console_dsn, department="complaints", title=XSS, shipment_id=shipment, customer_id=customer)
    escaped = "&lt;script&gt;window.__xss=1&lt;/script&gt;"
    for path in (
        f"/shipments/{shipment}",
        f"/customers/{customer}",
        "/customers",
        f"/dead-letters/{letter}",
        "/dead-letters",
        "/tasks",
    ):
        html = (await sam.get(path)).text
        assert XSS not in html and "<script>window" not in html and 'onerror="' not in html, path
        assert escaped in html, path


# ------------------------------------------------------------------------------- cookies and headers


async def test_session_cookie_is_httponly_samesite_strict_and_secure_only_behind_tls(base: str):
    for headers, secure in (({}, False), ({"X-Forwarded-Proto": "https"}, True)):
        client = httpx.AsyncClient(base_url=base, trust_env=False, headers=headers)
        try:
            page = await client.get("/login")
            # httpx talks plain http to the test server, so it would keep a Secure cookie to itself;
            # the browser behind the TLS proxy sends it back
            client.cookies.clear()
            answer = await client.post(
                "/login",
                data={"csrf": form_token(page.text), "username": "vera", "password": PASSWORD},
                headers={"Cookie": f"hub_pre={page.cookies['hub_pre']}"},
            )
            assert answer.status_code == 303
            cookie = next(
                v for k, v in answer.headers.multi_items() if k == "set-cookie" and v.startswith("hub_console=")
            )
            flags = {part.strip().split("=")[0].lower(): part.strip() for part in cookie.split(";")[1:]}
            assert "httponly" in flags and flags["samesite"].lower() == "samesite=strict" and flags["path"] == "Path=/"
            assert ("secure" in flags) is secure, cookie
            assert "max-age" not in flags and "expires" not in flags  # ends with the browser, or 12 h idle
            assert ("strict-transport-security" in answer.headers) is secure
            token = cookie.split(";")[0].split("=", 1)[1]
            assert len(token) >= 40
        finally:
            await client.aclose()


async def test_forwarded_headers_from_an_untrusted_address_are_ignored(console_settings: Settings):
    untrusted = console_settings.model_copy(update={"console_trusted_proxies": "10.9.9.9"})
    server = ThreadedServer(create_app(untrusted, hasher=CHEAP)).start()
    try:
        client = httpx.AsyncClient(base_url=server.url, trust_env=False, headers={"X-Forwarded-Proto": "https"})
        page = await client.get("/login")
        answer = await client.post(
            "/login", data={"csrf": form_token(page.text), "username": "vera", "password": PASSWORD}
        )
        assert answer.status_code == 303
        assert "secure" not in answer.headers["set-cookie"].lower()
        await client.aclose()
    finally:
        server.stop()


async def test_every_page_sends_the_csp_and_no_store(base: str, console_dsn: str, sam: httpx.AsyncClient):
    task_id = await make_task(console_dsn)
    for path in (
        "/login",
        "/queues",
        "/tasks",
        f"/tasks/{task_id}",
        "/shipments",
        "/dead-letters",
        "/customers",
        "/silences",
        "/reports",
        "/health",
        "/no-such-page",
    ):
        answer = await sam.get(path)
        assert answer.headers["content-security-policy"] == CSP, path
        assert "frame-ancestors 'none'" in CSP and "script-src 'self'" in CSP and "unsafe" not in CSP
        assert answer.headers["cache-control"] == "no-store", path
        assert answer.headers["x-frame-options"] == "DENY" and answer.headers["x-content-type-options"] == "nosniff"
    static = await sam.get("/static/vendor/htmx-2.0.11.min.js")
    assert static.status_code == 200 and "max-age" in static.headers["cache-control"]
    assert static.headers["content-security-policy"] == CSP


def test_templates_have_no_inline_script_style_or_event_handler():
    for path in Path(TEMPLATES).glob("*.html"):
        text = path.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)", text), path
        assert "<style" not in text and " style=" not in text, path
        assert not re.search(r"\son[a-z]+=", text) and "hx-on" not in text, path
        assert "|safe" not in text and "Markup(" not in text, path


# ------------------------------------------------------------------------------------------- sessions


async def test_a_session_ends_after_12_hours_idle(base: str, console_dsn: str):
    client = await http_login(base, "vera")
    try:
        assert (await client.get("/queues")).status_code == 200
        await fetchval(
            console_dsn,
            "UPDATE console_sessions SET last_seen_at = now() - interval '12 hours 1 minute' "
            "WHERE username = 'vera' AND ended_at IS NULL RETURNING 1",
        )
        answer = await client.get("/queues")
        assert answer.status_code == 303 and answer.headers["location"].startswith("/login")
    finally:
        await client.aclose()


async def test_disabling_a_user_ends_their_sessions(base: str, console_dsn: str):
    name = await make_user(console_dsn, unique("dora"), Role.VIEWER)
    client = await http_login(base, name)
    try:
        assert (await client.get("/tasks")).status_code == 200
        conn = await asyncpg.connect(console_dsn)
        try:
            await disable_user(conn, name)
        finally:
            await conn.close()
        assert (await client.get("/tasks")).status_code == 303
        ended = await fetch(console_dsn, "SELECT ended_why FROM console_sessions WHERE username = $1", name)
        assert [r["ended_why"] for r in ended] == ["user disabled"]
        page = await client.get("/login")
        answer = await client.post(
            "/login", data={"csrf": form_token(page.text), "username": name, "password": PASSWORD}
        )
        assert answer.status_code == 401
    finally:
        await client.aclose()


async def test_five_failed_logins_lock_the_account_for_15_minutes(base: str, console_dsn: str):
    name = await make_user(console_dsn, unique("lena"), Role.VIEWER)
    client = httpx.AsyncClient(base_url=base, trust_env=False)
    try:
        for attempt in range(6):
            page = await client.get("/login")
            password = PASSWORD if attempt == 5 else "wrong password"
            answer = await client.post(
                "/login", data={"csrf": form_token(page.text), "username": name, "password": password}
            )
            assert answer.status_code == 401, attempt
        assert "锁定" in answer.text  # locked: even the right password is refused now
        locked_until = await fetchval(
            console_dsn, "SELECT locked_until - now() FROM console_users WHERE username = $1", name
        )
        assert timedelta(minutes=14) < locked_until <= timedelta(minutes=15)
        actions = [
            r["action"]
            for r in await fetch(console_dsn, "SELECT action FROM console_audit WHERE actor = $1 ORDER BY id", name)
        ]
        assert actions == ["login_failed"] * 4 + ["locked", "login_refused_locked"]
        # after the lock expires, the right password works again
        await fetchval(
            console_dsn, "UPDATE console_users SET locked_until = now() WHERE username = $1 RETURNING 1", name
        )
        page = await client.get("/login")
        answer = await client.post(
            "/login", data={"csrf": form_token(page.text), "username": name, "password": PASSWORD}
        )
        assert answer.status_code == 303
    finally:
        await client.aclose()


async def test_login_goes_back_only_to_a_local_page(base: str):
    for target, expected in (
        ("/tasks?severity=P1", "/tasks?severity=P1"),
        ("//evil.example/x", "/queues"),
        ("https://evil.example/", "/queues"),
        ("/\\evil.example", "/queues"),
    ):
        client = httpx.AsyncClient(base_url=base, trust_env=False)
        try:
            page = await client.get("/login", params={"next": target})
            answer = await client.post(
                "/login",
                data={"csrf": form_token(page.text), "username": "vera", "password": PASSWORD, "next": target},
            )
            assert answer.headers["location"] == expected
        finally:
            await client.aclose()


async def test_every_action_is_recorded_with_its_user(base: str, console_dsn: str, sam: httpx.AsyncClient):
    task_id = await make_task(console_dsn, department="claims")
    token = await session_token(sam)
    for action, data in (
        ("claim", {}),
        ("comment", {"text": "called the carrier"}),
        ("resolve", {"resolution": "paid"}),
    ):
        assert (await sam.post(f"/tasks/{task_id}/{action}", data={"csrf": token, **data})).status_code == 303
    history = await fetch(
        console_dsn, "SELECT actor, action FROM task_events WHERE task_id = $1 ORDER BY id", uuid.UUID(task_id)
    )
    assert [(r["actor"], r["action"]) for r in history] == [
        ("hub", "created"),
        ("sam", "claimed"),
        ("sam", "commented"),
        ("sam", "resolved"),
    ]
    audit = await fetch(console_dsn, "SELECT actor, action FROM console_audit WHERE subject = $1 ORDER BY id", task_id)
    assert [(r["actor"], r["action"]) for r in audit] == [
        ("sam", "task_claim"),
        ("sam", "task_comment"),
        ("sam", "task_resolve"),
    ]


# --------------------------------------------------------------------------------------- and the rest


async def test_health(base: str):
    async with httpx.AsyncClient(base_url=base, trust_env=False) as client:
        answer = await client.get("/health")
        assert answer.status_code == 200 and answer.json()["postgres"] == "ok"


async def test_the_event_stream_needs_a_session(base: str):
    async with httpx.AsyncClient(base_url=base, trust_env=False) as client:
        assert (await client.get("/events")).status_code == 401


def test_language_from_accept_language():
    assert negotiate(None) == "zh"
    assert negotiate("en-US,en;q=0.9") == "en"
    assert negotiate("fr-FR, en;q=0.5, zh;q=0.8") == "zh"
    assert negotiate("zh-TW;q=0, en;q=0.1") == "en"
    assert negotiate("de") == "zh"


def test_every_string_of_the_pages_has_a_chinese_translation():
    sources = [p.read_text(encoding="utf-8") for p in Path(TEMPLATES).glob("*.html")]
    sources.append(Path(pages.__file__).read_text(encoding="utf-8"))
    used = set()
    for text in sources:
        used |= set(re.findall(r'_\(\s*"((?:[^"\\]|\\.)+)"\s*\)', text))
    missing = sorted(s for s in used if s not in ZH)
    assert not missing, missing
    assert len(used) > 100


async def test_only_an_admin_manages_users(base: str, console_dsn: str, sam: httpx.AsyncClient):
    target = await make_user(console_dsn, unique("uma"), Role.AGENT, ["claims"])
    assert (await sam.get("/users")).status_code == 403
    answer = await sam.post(f"/users/{target}/disable", data={"csrf": await session_token(sam)})
    assert answer.status_code == 403
    assert await fetchval(console_dsn, "SELECT disabled_at FROM console_users WHERE username = $1", target) is None
    ada = await http_login(base, "ada")
    try:
        assert (await ada.get("/users")).status_code == 200
        answer = await ada.post("/users/ada/disable", data={"csrf": await session_token(ada)})
        assert answer.status_code == 409  # not herself
    finally:
        await ada.aclose()
