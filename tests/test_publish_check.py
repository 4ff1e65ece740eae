"""`hub publish --check` judges a file exactly as the hub would, publishes nothing and needs no
broker; its report quotes the offending values and names the topic a line fits; it reads the
envelopes `hub simulate --dry-run` writes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import orjson
import pytest
from typer.testing import CliRunner

from hub.cli import app
from hub.commands import publish as publish_command
from hub.config import Settings
from hub.core.decoding import Rejected, check_value
from hub.core.topics import STREAMS
from schemas.inbound import CallLog, CarrierUpdate, ShipmentEvent
from tests.unit.test_decoding import BASES, HOSTILE, Hostile, changed, encode

DEFAULTS = Settings.model_construct()
TOPIC_OF = {s.model: DEFAULTS.topic(s.topic_setting) for s in STREAMS}

runner = CliRunner()
NO_HUB_ENV = {k: None for k in os.environ if k.startswith("HUB_")}  # no broker, no developer settings


def check(*args: str):
    return runner.invoke(app, ["publish", "--check", *args], env=NO_HUB_ENV)


@pytest.fixture
def nothing_is_published(monkeypatch):
    def refuse(*_args: Any, **_kwargs: Any):
        raise AssertionError("--check must publish nothing")

    monkeypatch.setattr(publish_command, "publish_all", refuse)


def write_lines(path: Path, *lines: bytes) -> Path:
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_check_of_a_clean_feed_passes_without_a_broker(tmp_path, nothing_is_published):
    feed = write_lines(tmp_path / "feed.jsonl", *(orjson.dumps(e) for e in ShipmentEvent.schema_examples))
    result = check("--topic", "shipment.events", str(feed))
    assert result.exit_code == 0, result.output
    assert "3 valid (shipment.events 3), 0 invalid; nothing was published (--check)" in result.output


def test_check_quotes_the_offending_values_and_suggests_the_topic(tmp_path, nothing_is_published):
    carrier = orjson.dumps(CarrierUpdate.schema_examples[0])
    feed = write_lines(
        tmp_path / "feed.jsonl",
        changed(ShipmentEvent, type="on_hold"),
        changed(ShipmentEvent, occurred_at="2026-11-27T09:30:00", priority="URGENT"),
        carrier,
        changed(ShipmentEvent, schema_version=2),
        changed(ShipmentEvent, shipment_id="S" * 70),
        b'{"broken": ',
        changed(ShipmentEvent),
    )
    result = check("--topic", "shipment.events", str(feed))
    assert result.exit_code == 1
    out = result.output
    assert "feed.jsonl:1: validation_error: type 'on_hold' is not one of 'created', 'picked'" in out
    assert "feed.jsonl:2: validation_error: occurred_at '2026-11-27T09:30:00' has no offset" in out
    assert "priority 'URGENT' is not one of 'normal' or 'urgent'" in out
    assert "feed.jsonl:3: validation_error: customer_id is required; type is required" in out
    assert "feed.jsonl:3: hint: this looks like a carrier.updates message" in out
    assert "feed.jsonl:4: unsupported_version: schema_version 2 is not supported" in out
    assert "feed.jsonl:5: validation_error: shipment_id 'SSSS" in out and "(70 characters)" in out
    assert "feed.jsonl:6: invalid_json: value is not JSON" in out
    assert "1 valid (shipment.events 1), 6 invalid; nothing was published (--check)" in out


def test_the_hubs_own_dead_letter_message_still_quotes_nothing(tmp_path):
    value = changed(ShipmentEvent, type="on_hold", customer_id="C-secret")
    verdict = check_value(value, ShipmentEvent, 1024 * 1024, "shipment.events")
    assert isinstance(verdict, Rejected) and "on_hold" not in verdict.message


@pytest.mark.parametrize("case", [c for c in HOSTILE if c.value], ids=[c.name for c in HOSTILE if c.value])
def test_check_gives_every_hostile_line_the_reason_the_hub_gives_it(case: Hostile, tmp_path):
    topic = TOPIC_OF[case.model]
    feed = write_lines(tmp_path / "feed.jsonl", case.value or b"")
    checked = publish_command.check_file(Settings(_env_file=None), feed, topic)
    [(_line, result)] = checked.verdicts
    assert isinstance(result, Rejected) and result.reason is case.reason
    assert checked.problems[0].startswith(f"{feed}:1: {case.reason.value}: ")


def test_check_reads_envelopes_and_checks_their_keys_and_topics(tmp_path, nothing_is_published):
    good = orjson.dumps(CallLog.schema_examples[0])
    feed = write_lines(
        tmp_path / "envelopes.jsonl",
        orjson.dumps({"topic": "call.logs", "key": "CUST-00042", "value": good.decode()}),
        orjson.dumps({"topic": "call.logs", "key": "C-other", "value": good.decode()}),
        orjson.dumps({"topic": "calls", "key": "C1", "value": good.decode()}),
        orjson.dumps({"topic": "call.logs", "value": "{bad", "expect": "dead_letter"}),
        orjson.dumps({"topic": "call.logs", "value": good.decode(), "expect": "dead_letter"}),
        good,
    )
    result = check(str(feed))
    assert result.exit_code == 1
    out = result.output
    assert "envelopes.jsonl:2: key 'C-other' is not the contract's key for call.logs: customer_id 'CUST-00042'" in out
    assert "envelopes.jsonl:3: unknown topic 'calls'" in out
    assert "envelopes.jsonl:4" not in out  # meant to be dead-lettered, and it will be
    assert 'envelopes.jsonl:5: marked "expect": "dead_letter", but the hub would accept it' in out
    assert "envelopes.jsonl:6: not an envelope" in out and "give --topic" in out
    assert "1 marked to be dead-lettered, as they will be (invalid_json 1)" in out


def test_a_bare_line_given_an_envelope_says_to_leave_out_the_topic(tmp_path):
    envelope = orjson.dumps({"topic": "call.logs", "key": None, "value": encode(BASES[CallLog]).decode()})
    result = check("--topic", "call.logs", str(write_lines(tmp_path / "e.jsonl", envelope)))
    assert "hint: this line is an envelope as `hub simulate --dry-run` writes it: leave out --topic" in result.output


def test_simulate_dry_run_writes_a_file_hub_publish_accepts(tmp_path, nothing_is_published):
    out = tmp_path / "traffic.jsonl"
    simulated = runner.invoke(
        app,
        [
            "simulate",
            "--rate",
            "200",
            "--duration",
            "5",
            "--seed",
            "9",
            "--start",
            "2026-03-02T08:00:00+08:00",
            "--dry-run",
            str(out),
        ],
        env=NO_HUB_ENV,
    )
    assert simulated.exit_code == 0, simulated.output
    lines = [orjson.loads(line) for line in out.read_bytes().splitlines()]
    assert any(line.get("expect") == "dead_letter" for line in lines), "no malformed message to prove the marking"
    result = check(str(out))
    assert result.exit_code == 0, result.output
    assert f"{len(lines) - sum('expect' in line for line in lines):,} valid" in result.output
    assert "0 invalid; nothing was published (--check)" in result.output
