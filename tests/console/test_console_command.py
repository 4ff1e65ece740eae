"""`hub users` and `hub console` as an operator runs them: real processes, real Postgres."""

from __future__ import annotations

import asyncio
import os
import re
import signal
import subprocess
import sys
import time

import httpx
import pytest

from hub.dev.embedded import free_port
from hub.migrate import apply_migrations
from tests.console.harness import form_token
from tests.support import fetch, fetchval

PASSWORD = "a long enough password"


def hub(database_url: str, *args: str, stdin: str | None = None, **env: str) -> subprocess.CompletedProcess:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    environment.update(HUB_DATABASE_URL=database_url, COLUMNS="200", **env)
    return subprocess.run(
        [sys.executable, "-m", "hub", *args], input=stdin, capture_output=True, text=True, env=environment, timeout=120
    )


@pytest.fixture
async def dsn(database_url: str) -> str:
    await apply_migrations(database_url)
    return database_url


async def test_users_add_passwd_disable_and_list(dsn: str):
    added = hub(
        dsn,
        "users",
        "add",
        "mei",
        "--role",
        "agent",
        "-d",
        "claims",
        "-d",
        "complaints",
        "--password-stdin",
        stdin=PASSWORD,
    )
    assert added.returncode == 0, added.stderr
    assert "added mei (agent, claims, complaints)" in added.stdout
    stored = (await fetch(dsn, "SELECT role, departments, password_hash FROM console_users WHERE username = 'mei'"))[0]
    assert stored["role"] == "agent" and stored["departments"] == ["claims", "complaints"]
    assert (
        stored["password_hash"].startswith("$argon2id$v=19$m=65536,t=3,p=4$")
        and PASSWORD not in stored["password_hash"]
    )

    for args, problem in (
        (("add", "mei", "--role", "viewer"), "already exists"),
        (("add", "hub", "--role", "viewer"), "how task histories name the hub"),
        (("add", "lin", "--role", "agent"), "at least one --department"),
        (("add", "lin", "--role", "viewer", "--password-stdin"), "at least 10 characters"),
        (("passwd", "nobody", "--password-stdin"), "no console user"),
    ):
        refused = hub(dsn, "users", *args, stdin="short\n")
        assert refused.returncode == 1 and problem in refused.stderr, (args, refused.stderr)

    # a session and a lock-out, then a new password ends the one and lifts the other
    await fetchval(
        dsn,
        "INSERT INTO console_sessions (token_hash, username, csrf_token) VALUES ('\\x01', 'mei', 't') RETURNING 1",
    )
    await fetchval(dsn, "UPDATE console_users SET locked_until = now() + interval '10 minutes' RETURNING 1")
    changed = hub(dsn, "users", "passwd", "mei", "--password-stdin", stdin="another long password\n")
    assert changed.returncode == 0, changed.stderr
    row = (await fetch(dsn, "SELECT locked_until, password_hash FROM console_users WHERE username = 'mei'"))[0]
    assert row["locked_until"] is None and row["password_hash"] != stored["password_hash"]
    assert await fetchval(dsn, "SELECT ended_why FROM console_sessions") == "password changed"

    await fetchval(
        dsn,
        "INSERT INTO console_sessions (token_hash, username, csrf_token) VALUES ('\\x02', 'mei', 't') RETURNING 1",
    )
    disabled = hub(dsn, "users", "disable", "mei")
    assert disabled.returncode == 0 and "sessions have ended" in disabled.stdout
    assert await fetchval(dsn, "SELECT count(*) FROM console_sessions WHERE ended_at IS NULL") == 0

    listed = hub(dsn, "users", "list")
    assert "mei" in listed.stdout and "disabled" in listed.stdout and "$argon2" not in listed.stdout
    actions = [r["action"] for r in await fetch(dsn, "SELECT action FROM console_audit ORDER BY id")]
    assert actions == ["user_added", "password_changed", "user_disabled"]
    assert (await fetchval(dsn, "SELECT actor FROM console_audit LIMIT 1")).startswith("cli")


def test_console_refuses_an_unmigrated_database(database_url: str):
    answer = hub(database_url, "console", "--port", "0")
    assert answer.returncode == 1 and "run `hub migrate` first" in answer.stderr


async def test_console_serves_health_and_stops_on_sigterm_with_a_live_stream_open(dsn: str, tmp_path):
    added = hub(dsn, "users", "add", "ops", "--role", "viewer", "--password-stdin", stdin=PASSWORD)
    assert added.returncode == 0, added.stderr
    port = free_port()
    environment = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    environment.update(HUB_DATABASE_URL=dsn, HUB_CONSOLE_PORT=str(port), HUB_LOG_LEVEL="WARNING")
    log = open(tmp_path / "console.log", "wb")  # noqa: SIM115, ASYNC230 - the process writes it
    process = subprocess.Popen(
        [sys.executable, "-m", "hub", "console"], env=environment, stdout=log, stderr=subprocess.STDOUT
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=base, trust_env=False, timeout=10) as client:
            deadline = time.monotonic() + 60
            while True:
                try:
                    health = await client.get("/health")
                    break
                except httpx.ConnectError:
                    assert process.poll() is None and time.monotonic() < deadline, (
                        tmp_path / "console.log"
                    ).read_text()
                    await asyncio.sleep(0.2)
            assert health.status_code == 200 and health.json()["postgres"] == "ok"
            page = await client.get("/login")
            answer = await client.post(
                "/login", data={"csrf": form_token(page.text), "username": "ops", "password": PASSWORD}
            )
            assert answer.status_code == 303
            async with client.stream("GET", "/events", timeout=None) as stream:
                assert stream.status_code == 200 and stream.headers["content-type"].startswith("text/event-stream")
                began = time.monotonic()
                process.send_signal(signal.SIGTERM)
                code = await asyncio.to_thread(process.wait, 20)
                stopped_after = time.monotonic() - began
        assert code == 0, (tmp_path / "console.log").read_text()
        assert stopped_after < 8, f"stopping took {stopped_after:.1f}s with a live stream open"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.close()


def test_the_demo_serves_the_console_with_a_login_it_made(dsn: str, tmp_path, capsys: pytest.CaptureFixture[str]):
    from hub.commands.console import demo_console
    from hub.config import Settings

    settings = Settings(_env_file=None, database_url=dsn, data_dir=tmp_path, console_port=free_port())
    with demo_console(settings) as url:
        printed = capsys.readouterr().out
        assert url is not None, printed
        password = re.search(r"log in as demo / (\S+)", printed)
        assert password, printed
        with httpx.Client(base_url=url, trust_env=False) as client:
            page = client.get("/login")
            answer = client.post(
                "/login", data={"csrf": form_token(page.text), "username": "demo", "password": password[1]}
            )
            assert answer.status_code == 303
            assert "demo" in client.get("/queues").text
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}health", trust_env=False)
