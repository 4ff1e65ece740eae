"""Every command ends a failure with one line that says what to do, never a traceback; and the
customer register loads the files people really have (Excel in a Chinese locale writes GBK)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from hub.cli import app
from tests.support import fetch, migrated

runner = CliRunner()
HEADER = "customer_id,name,tier,language,preferred_channel,email,phone\n"
ROWS = "C1,上海华东物流有限公司,key,zh,sms,ops@huadong.test,+86 21 5555 0199\nC2,Northwind Imports,,en,email,,\n"


def hub(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The real `hub` in a process of its own, with only these HUB_* settings."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    return subprocess.run(
        [sys.executable, "-m", "hub", *args], env={**environ, **env}, capture_output=True, text=True, timeout=60
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr + result.stdout, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def test_a_dsn_that_is_no_dsn_is_an_error_not_a_traceback():
    assert_one_line_error(
        hub("tasks", "list", HUB_DATABASE_URL="not-a-dsn"),
        "HUB_DATABASE_URL is not a usable Postgres address",
        "postgresql://",
    )


def test_customers_import_with_postgres_unreachable_is_an_error_not_a_traceback(tmp_path: Path):
    csv = tmp_path / "customers.csv"
    csv.write_text(HEADER + ROWS, encoding="utf-8")
    result = hub("customers", "import", str(csv), HUB_DATABASE_URL="postgresql://hub@127.0.0.1:1/hub")
    assert_one_line_error(result, "cannot reach Postgres", "check HUB_DATABASE_URL")


def test_a_csv_in_another_encoding_than_named_is_reported_with_its_line(tmp_path: Path):
    csv = tmp_path / "customers.csv"
    csv.write_bytes((HEADER + ROWS).encode("gbk"))
    result = hub(
        "customers", "import", str(csv), "--encoding", "utf-8", HUB_DATABASE_URL="postgresql://hub@127.0.0.1:1/hub"
    )
    assert_one_line_error(result, "nothing was imported")
    assert f"{csv}:2: the file is not utf-8" in result.stderr and "--encoding" in result.stderr


def invoke(dsn: str, *args: str):
    return runner.invoke(app, list(args), env={"HUB_DATABASE_URL": dsn})


@pytest.mark.postgres
@pytest.mark.parametrize(
    ("encoding", "delimiter"),
    [("utf-8", ","), ("utf-8-sig", ","), ("gbk", ","), ("gb18030", ";")],
    ids=["utf-8", "bom", "gbk", "gb18030;"],
)
async def test_customers_import_reads_utf8_gbk_and_semicolons(
    hub_settings, tmp_path: Path, encoding: str, delimiter: str
):
    dsn = await migrated(hub_settings)
    csv = tmp_path / "customers.csv"
    csv.write_bytes((HEADER + ROWS).replace(",", delimiter).encode(encoding))
    result = await asyncio.to_thread(invoke, dsn, "customers", "import", str(csv))
    assert result.exit_code == 0, result.output
    assert "2 added, 0 updated, 0 unchanged" in result.output
    rows = await fetch(dsn, "SELECT customer_id, name, tier, language FROM customers ORDER BY 1")
    assert [tuple(r) for r in rows] == [
        ("C1", "上海华东物流有限公司", "key", "zh"),
        ("C2", "Northwind Imports", "standard", "en"),
    ]


@pytest.mark.postgres
async def test_customers_import_says_what_it_added_updated_and_left_unchanged(hub_settings, tmp_path: Path):
    dsn = await migrated(hub_settings)
    csv = tmp_path / "customers.csv"
    csv.write_text(HEADER + ROWS, encoding="utf-8")
    assert (await asyncio.to_thread(invoke, dsn, "customers", "import", str(csv))).exit_code == 0
    csv.write_text(HEADER + ROWS.replace("Northwind Imports", "Northwind Trading") + "C3,,,,,,\n", encoding="utf-8")
    result = await asyncio.to_thread(invoke, dsn, "customers", "import", str(csv))
    assert result.exit_code == 0, result.output
    assert "1 added, 1 updated, 1 unchanged" in result.output
