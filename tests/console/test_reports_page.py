"""The reports page over the `reports` table of the reports feature: listed, viewed in a sandbox,
downloaded; and 'no reports yet' while the table does not exist."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from hub.console.app import create_app
from hub.migrate import apply_migrations
from hub.ops.stored_reports import get_report, list_reports
from hub.ops.users import Role
from tests.console.harness import CHEAP, ThreadedServer, http_login, make_user
from tests.support import isolated_settings

# As the reports feature's migration creates it (IF NOT EXISTS: once both are merged, it is there already).
REPORTS_TABLE = """
CREATE TABLE IF NOT EXISTS reports (
    id           bigserial PRIMARY KEY,
    kind         text NOT NULL,
    period       text NOT NULL,
    customer_id  text,
    format       text NOT NULL,
    content      bytea NOT NULL,
    as_of        timestamptz NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now()
)
"""
HOSTILE_HTML = b"<html><body><h1>KPI 2026-11</h1><script>document.title='pwned'</script></body></html>"


@pytest.fixture
async def dsn(database_url: str) -> str:
    await apply_migrations(database_url)
    return database_url


async def test_reports_are_listed_viewed_in_a_sandbox_and_downloaded(dsn: str, kafka_bootstrap: str):
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("DROP TABLE IF EXISTS reports")
        assert await list_reports(conn) is None  # no table: the page says there are none
        await conn.execute(REPORTS_TABLE)
        assert await list_reports(conn) == []
        await conn.execute(
            "INSERT INTO reports (kind, period, customer_id, format, content, as_of) VALUES "
            "('kpi', '2026-11', NULL, 'html', $1, now()), ('statement', '2026-11', 'C-1', 'csv', $2, now())",
            HOSTILE_HTML,
            "\ufeffday,shipments\n2026-11-01,3\n".encode(),
        )
        listed = await list_reports(conn)
        assert {(r.kind, r.period, r.customer, r.format) for r in listed or []} == {
            ("kpi", "2026-11", None, "html"),
            ("statement", "2026-11", "C-1", "csv"),
        }
        report, data = await get_report(conn, next(r.id for r in listed or [] if r.kind == "kpi"))
        assert data == HOSTILE_HTML and report.filename == "kpi-2026-11.html"
    finally:
        await conn.close()
    await make_user(dsn, "rhea", Role.VIEWER)
    server = ThreadedServer(create_app(isolated_settings(kafka_bootstrap, False, dsn), hasher=CHEAP)).start()
    try:
        client = await http_login(server.url, "rhea")
        page = await client.get("/reports")
        assert "kpi" in page.text and "statement" in page.text and "C-1" in page.text
        ids = {r.kind: r.id for r in listed or []}
        view = await client.get(f"/reports/{ids['kpi']}/view")
        assert view.content == HOSTILE_HTML
        policy = view.headers["content-security-policy"]
        assert policy.startswith("sandbox;") and "script-src" not in policy and "frame-ancestors 'none'" in policy
        assert view.headers["content-disposition"].startswith("inline")
        download = await client.get(f"/reports/{ids['statement']}/download")
        assert download.headers["content-disposition"] == 'attachment; filename="statement-2026-11-C-1.csv"'
        assert download.content.startswith("\ufeff".encode())
        assert (await client.get("/reports/999999/download")).status_code == 404
        await client.aclose()
        anonymous = httpx.AsyncClient(base_url=server.url, trust_env=False)
        assert (await anonymous.get(f"/reports/{ids['kpi']}/download")).status_code == 303  # to the login page
        await anonymous.aclose()
    finally:
        server.stop()
