"""`hub customers list|show|export` (issue 22, point 5): the register read back, and an export that
`hub customers import` takes back unchanged in every encoding and separator it offers. Secrets never
leave the database; e-mail and phone formats are checked on import with the line of each bad row.

Only Postgres; commands run through typer's CliRunner as an operator types them.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner, Result

from hub.cli import app
from hub.migrate import apply_migrations
from hub.ops.customers import create_webhook_secret
from hub.ops.db import database
from tests.support import fetch

pytestmark = pytest.mark.postgres
runner = CliRunner()

REGISTER = (
    "customer_id,name,tier,language,preferred_channel,email,phone,"
    "webhook_url,timezone,quiet_hours,credit_rating,account_manager\n"
    "C1,Acme Trading Co.,key,en,email,ops@acme.test,+86 138 0013 8000,,,,A,Li Na\n"
    'C2,"Wang, Wei",standard,zh,sms,,138-0013-8001,,Asia/Shanghai,22:30-07:30,,\n'
    "C3,张伟物流有限公司,key,zh,webhook,wei@例子.中国,(021) 5555-0199,https://hooks.example.com/hub,,,B,\n"
    "C4,,,,,,,,,,,\n"
)


def invoke(dsn: str, *args: str) -> Result:
    return runner.invoke(app, list(args), env={"HUB_DATABASE_URL": dsn, "COLUMNS": "200"})


async def cli(dsn: str, *args: str) -> Result:
    return await asyncio.to_thread(invoke, dsn, *args)


@pytest.fixture
async def register(database_url: str, tmp_path: Path) -> str:
    await apply_migrations(database_url)
    csv = tmp_path / "register.csv"
    csv.write_text(REGISTER, encoding="utf-8")
    result = await cli(database_url, "customers", "import", str(csv))
    assert result.exit_code == 0 and "4 added, 0 updated, 0 unchanged" in result.output, result.output
    return database_url


async def _secret(dsn: str, customer_id: str) -> str:
    async with database(dsn) as conn:
        return await create_webhook_secret(conn, customer_id, rotate=False)


@pytest.mark.parametrize(("encoding", "delimiter"), [("utf-8", ","), ("utf-8-sig", ";"), ("gb18030", ",")])
async def test_export_is_read_back_by_import_unchanged(register: str, tmp_path: Path, encoding: str, delimiter: str):
    before = await fetch(register, "SELECT * FROM customers ORDER BY customer_id")
    secret = await _secret(register, "C3")
    exported = tmp_path / f"export-{encoding}.csv"
    result = await cli(register, "customers", "export", str(exported), "--encoding", encoding, "--delimiter", delimiter)
    assert result.exit_code == 0 and "exported 4 customers" in result.output, result.output
    raw = exported.read_bytes()
    assert raw.startswith(b"\xef\xbb\xbf") == (encoding == "utf-8-sig")
    text = raw.decode(encoding)
    assert text.splitlines()[0].lstrip("\ufeff").split(delimiter)[:3] == ["customer_id", "name", "tier"]
    assert "张伟物流有限公司" in text and secret not in text and "whsec_" not in text
    # detected encoding and separator, as an operator would run it
    result = await cli(register, "customers", "import", str(exported))
    assert result.exit_code == 0, result.output
    assert "0 added, 0 updated, 4 unchanged" in result.output, result.output
    assert await fetch(register, "SELECT * FROM customers ORDER BY customer_id") == before


async def test_export_to_standard_output(register: str):
    result = await cli(register, "customers", "export", "-")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith("customer_id,name,tier,") and len(lines) == 5
    assert '"Wang, Wei"' in result.stdout  # quoted where the separator occurs in a value


async def test_list_filters_and_never_shows_secrets(register: str):
    secret = await _secret(register, "C3")
    result = await cli(register, "customers", "list")
    assert result.exit_code == 0, result.output
    for expected in ("C1", "Acme Trading Co.", "C2", "Wang, Wei", "C3", "C4", "ops@acme.test"):
        assert expected in result.output
    assert secret not in result.output
    result = await cli(register, "customers", "list", "--tier", "key", "--json")
    assert [c["customer_id"] for c in orjson.loads(result.stdout)] == ["C1", "C3"]
    result = await cli(register, "customers", "list", "--search", "acme.test", "--json")
    assert [c["customer_id"] for c in orjson.loads(result.stdout)] == ["C1"]
    result = await cli(register, "customers", "list", "--channel", "webhook", "--json")
    assert [c["customer_id"] for c in orjson.loads(result.stdout)] == ["C3"]
    result = await cli(register, "customers", "list", "--search", "nobody")
    assert result.exit_code == 0 and "no customers match" in result.output


async def test_show_lists_every_column_and_what_the_hub_holds_but_not_the_secret(register: str):
    secret = await _secret(register, "C3")
    result = await cli(register, "customers", "show", "C3")
    assert result.exit_code == 0, result.output
    for expected in ("张伟物流有限公司", "webhook", "https://hooks.example.com/hub", "1 active", "credit rating", "B"):
        assert expected in result.output, expected
    assert secret not in result.output and "whsec_" not in result.output
    shown = orjson.loads((await cli(register, "customers", "show", "C2", "--json")).stdout)
    assert shown["customer"]["quiet_hours"] == "22:30-07:30" and shown["active_webhook_secrets"] == 0
    assert shown["shipments"] == 0 and shown["notifications"] == {} and shown["erasures"] == []
    result = await cli(register, "customers", "show", "C99")
    assert result.exit_code == 1 and "no customer 'C99'" in result.output


async def test_import_names_the_line_of_each_bad_e_mail_and_phone(database_url: str, tmp_path: Path):
    await apply_migrations(database_url)
    csv = tmp_path / "bad.csv"
    csv.write_text(
        "customer_id,name,email,phone\n"
        "C1,Acme,ops@acme.test,+86 138 0013 8000\n"
        "C2,Beta,n/a,\n"
        "C3,Gamma,,call the office\n"
        "C4,Delta,a@b.com; c@d.com,12345\n",
        encoding="utf-8",
    )
    result = await cli(database_url, "customers", "import", str(csv))
    assert result.exit_code == 1
    assert "bad.csv:3: email: Value error, not an e-mail address" in result.output, result.output
    assert "bad.csv:4: phone: Value error, not a phone number" in result.output
    assert "bad.csv:5: email:" in result.output and "phone: Value error" in result.output.split("bad.csv:5:")[1]
    assert "nothing was imported" in result.output
    assert await fetch(database_url, "SELECT customer_id FROM customers") == []
