"""`hub publish` sends what `hub simulate --dry-run` wrote, byte for byte, to each line's topic with
its key, malformed lines included (they are meant for the dead-letter path); the real broker."""

from __future__ import annotations

import asyncio

import orjson
from typer.testing import CliRunner

from hub.cli import app
from tests.support import read_topics

runner = CliRunner()
START = "2026-03-02T08:00:00+08:00"


def invoke(settings, *args: str):
    return runner.invoke(app, list(args), env=settings.child_environment())


async def test_publish_sends_a_simulated_file_to_its_topics_with_its_keys(hub_settings, tmp_path):
    out = tmp_path / "traffic.jsonl"
    simulated = await asyncio.to_thread(
        invoke, hub_settings, "simulate", "--rate", "100", "--duration", "3", "--seed", "4", "--start", START,
        "--dry-run", str(out),
    )  # fmt: skip
    assert simulated.exit_code == 0, simulated.output
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert any(line.get("expect") == "dead_letter" for line in lines)

    published = await asyncio.to_thread(invoke, hub_settings, "publish", str(out))
    assert published.exit_code == 0, published.output
    assert f"published {len(lines)} event(s)" in published.output

    topics = sorted({line["topic"] for line in lines})
    assert topics == sorted(hub_settings.inbound_topics)
    records = await read_topics(hub_settings, topics, expected=len(lines))
    assert sorted((r.topic, r.key, r.value) for r in records) == sorted(
        (line["topic"], line["key"].encode(), line["value"].encode()) for line in lines
    )
