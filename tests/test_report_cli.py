"""`hub report` end to end: the real command in a process of its own against a database holding the
hand-computed November of tests/report_data.py, each format read back by an independent reader
(csv, jsonschema, pdftotext)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import asyncpg
import jsonschema
import pytest

from hub.migrate import apply_migrations
from tests.report_data import november

pytestmark = pytest.mark.postgres
SCHEMAS = Path(__file__).parent.parent / "schemas" / "json" / "reports"


@pytest.fixture
async def database(database_url: str) -> str:
    await apply_migrations(database_url)
    conn = await asyncpg.connect(database_url)
    await november(conn)
    await conn.close()
    return database_url


def report(database: str, *args: str) -> subprocess.CompletedProcess[bytes]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env = {**environ, "HUB_DATABASE_URL": database, "HUB_TIMEZONE": "Asia/Shanghai"}
    return subprocess.run(
        [sys.executable, "-m", "hub", "report", *args], env=env, capture_output=True, timeout=120, check=False
    )


STORED_STATEMENTS = "SELECT content FROM reports WHERE kind = 'statement' AND customer_id = 'A' AND period = '2026-11'"


async def fetch(database: str, query: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database)
    try:
        return await conn.fetch(query)
    finally:
        await conn.close()


def ok(result: subprocess.CompletedProcess[bytes]) -> bytes:
    assert result.returncode == 0, result.stderr.decode()
    return result.stdout


def validated(kind: str, content: bytes) -> dict:
    document = json.loads(content)
    jsonschema.validate(document, json.loads((SCHEMAS / f"{kind}.schema.json").read_text(encoding="utf-8")))
    return document


def test_json_reports_carry_the_hand_computed_figures_and_match_their_schemas(database):
    complaints = validated("complaints", ok(report(database, "complaints", "--month", "2026-11")))
    assert (complaints["complaints"], complaints["repeat_contacts"], complaints["shipments"]) == (4, 1, 4)
    kpi = validated("kpi", ok(report(database, "kpi", "--month", "2026-11", "--format", "json")))
    assert (kpi["shipments"], kpi["exceptions"], kpi["stale_shipments"]) == (4, 2, 1)
    by_days = validated("kpi", ok(report(database, "kpi", "--from", "2026-11-01", "--to", "2026-11-30")))
    assert (by_days["shipments"], by_days["exceptions"], by_days["period"]["start"]) == (
        4,
        2,
        kpi["period"]["start"],
    )
    of_a = validated("kpi", ok(report(database, "kpi", "--month", "2026-11", "--customer", "A")))
    assert of_a["shipments"] == 3


def test_csv_has_a_bom_and_the_figures_as_plain_numbers(database, tmp_path: Path):
    out = tmp_path / "kpi.csv"
    result = report(database, "kpi", "--month", "2026-11", "--format", "csv", "--language", "en", "--out", str(out))
    ok(result)
    assert str(out) in result.stdout.decode() + result.stderr.decode()
    content = out.read_bytes()
    assert content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(content.decode("utf-8-sig"))))
    values = {row[0]: row[1] for row in rows if len(row) >= 2}
    assert values["Shipments"] == "4", rows
    assert values["Exceptions"] == "2", rows


def test_a_statement_pdf_is_in_its_customers_language_and_is_stored(database, tmp_path: Path):
    out = tmp_path / "a.pdf"
    ok(report(database, "statement", "--customer", "A", "--month", "2026-11", "--format", "pdf", "--out", str(out)))
    assert out.read_bytes().startswith(b"%PDF")
    text = subprocess.run(["pdftotext", str(out), "-"], capture_output=True, text=True, check=True).stdout
    assert "上海华东物流有限公司" in text and "2026-11" in text
    again = validated("statement", ok(report(database, "statement", "--customer", "A", "--month", "2026-11")))
    stored = asyncio.run(fetch(database, STORED_STATEMENTS))
    figures = [{k: v for k, v in json.loads(bytes(row["content"])).items() if k != "as_of"} for row in stored]
    assert figures and all(f == {k: v for k, v in again.items() if k != "as_of"} for f in figures)
    assert (again["shipments"], again["delivered"], again["complaints"]) == (3, 3, 3)


def test_mistakes_are_one_line_errors(database):
    for args, needle in (
        (("statement", "--customer", "NOBODY", "--month", "2026-11"), "hub customers"),
        (("kpi", "--month", "2026-13"), "2026-13"),
        (("kpi", "--from", "2026-11-01"), "--from and --to"),
    ):
        result = report(database, *args)
        stderr = result.stderr.decode()
        assert result.returncode == 1 and "Traceback" not in stderr, stderr
        assert needle in stderr, stderr
