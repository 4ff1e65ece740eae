"""The committed JSON Schemas and AsyncAPI document are what `hub schema export` writes now."""

from __future__ import annotations

from typer.testing import CliRunner

from consumers.spec import render_all
from hub.cli import app
from schemas.export import COMMITTED_DIR


def test_committed_schemas_are_up_to_date():
    stale = [
        name
        for name, text in render_all().items()
        if not (COMMITTED_DIR / name).exists() or (COMMITTED_DIR / name).read_text(encoding="utf-8") != text
    ]
    assert not stale, f"out of date: {stale}; run `hub schema export schemas/json` and commit the result"


def test_schema_export_writes_one_schema_per_topic_and_asyncapi(tmp_path):
    result = CliRunner().invoke(app, ["schema", "export", str(tmp_path)])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == sorted(render_all())
    assert "shipment.events.schema.json" in names and "asyncapi.json" in names
    assert "hub.dead-letter.headers.schema.json" in names
    text = (tmp_path / "asyncapi.json").read_text()
    for topic in (
        "shipment.events",
        "call.logs",
        "carrier.updates",
        "alerts.exceptions",
        "alerts.urgent-orders",
        "alerts.complaints",
        "alerts.escalations",
        "hub.dead-letter",
    ):
        assert f'"{topic}"' in text
