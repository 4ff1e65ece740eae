"""The traffic simulator: reproducible, realistic, contract-valid, and `hub simulate` really publishes it."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition
from typer.testing import CliRunner

from hub.cli import app
from hub.config import Settings
from hub.core.decoding import Accepted, Record, Rejected, decode_record
from hub.dev.simulator import (
    CALL,
    CARRIER,
    DUPLICATE,
    ETA_SLIP,
    EXCEPTION,
    LATE,
    MALFORMED,
    REPEAT_CONTACT,
    SHIPMENT,
    customers,
    customers_csv,
    generate,
)
from hub.kafka import aiokafka_kwargs
from hub.ops.customers import read_customers
from schemas.customers import Customer
from schemas.enums import CustomerTier, DeadLetterReason, Language
from schemas.inbound import CallLog, CarrierUpdate, ShipmentEvent

START = datetime(2026, 3, 2, tzinfo=UTC)
MODELS = {SHIPMENT: ShipmentEvent, CARRIER: CarrierUpdate, CALL: CallLog}
LIFECYCLE = ("created", "picked", "packed", "dispatched", "in_transit", "out_for_delivery", "delivered")


@pytest.fixture(scope="module")
def traffic() -> list:
    """One minute at 200 msg/s: 12,000 messages, enough for the proportions to settle."""
    return list(generate(11, 200, 60, start=START))


@pytest.fixture(scope="module")
def long_traffic() -> list:
    """A hundred simulated hours (speed 6000): whole lifecycles, from promise to slip, fit in it."""
    return list(generate(12, 100, 60, start=START, speed=6000))


def _doc(message) -> dict:
    return orjson.loads(message.value)


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text)


# ------------------------------------------------------------------------------ determinism


def test_same_seed_and_start_give_the_same_bytes() -> None:
    first = list(generate(3, 100, 10, start=START))
    second = list(generate(3, 100, 10, start=START))
    assert len(first) == 1000
    assert first == second


def test_another_seed_or_start_gives_other_traffic() -> None:
    base = list(generate(3, 100, 5, start=START))
    assert [m.value for m in generate(4, 100, 5, start=START)] != [m.value for m in base]
    later = list(generate(3, 100, 5, start=START + timedelta(days=1)))
    base_ids = {m.event_id for m in base if m.event_id}
    assert not base_ids & {m.event_id for m in later if m.event_id}  # a rerun never collides in the inbox


def test_messages_are_paced_at_the_rate_in_arrival_order() -> None:
    messages = list(generate(5, 50, 4, start=START))
    assert [m.at_offset_s for m in messages] == [i / 50 for i in range(200)]


def _dry_run(tmp_path: Path, name: str, *args: str) -> bytes:
    out = tmp_path / name
    env = {k: None for k in os.environ if k.startswith("HUB_")}  # a developer's settings must not leak in
    result = CliRunner().invoke(
        app,
        [
            "simulate",
            "--rate",
            "100",
            "--duration",
            "3",
            "--start",
            "2026-03-02T08:00:00+08:00",
            "--dry-run",
            str(out),
            *args,
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "wrote 300 messages" in result.output
    return out.read_bytes()


def test_dry_run_files_are_identical_for_one_seed(tmp_path: Path) -> None:
    first = _dry_run(tmp_path, "a.jsonl", "--seed", "5")
    second = _dry_run(tmp_path, "b.jsonl", "--seed", "5")
    other = _dry_run(tmp_path, "c.jsonl", "--seed", "6")
    assert first == second
    assert first != other
    lines = [orjson.loads(line) for line in first.splitlines()]
    assert {line["topic"] for line in lines} == {"shipment.events", "carrier.updates", "call.logs"}
    assert all(isinstance(line["key"], str) and isinstance(line["value"], str) for line in lines)


# ------------------------------------------------------------------------------- realism


def test_proportions_follow_the_contract(traffic: list) -> None:
    share = {kind: n / len(traffic) for kind, n in Counter(m.kind for m in traffic).items()}
    assert share[SHIPMENT] == pytest.approx(0.55, abs=0.03)
    assert share[CARRIER] == pytest.approx(0.30, abs=0.03)
    assert share[CALL] == pytest.approx(0.15, abs=0.03)
    tags = Counter(t for m in traffic for t in m.tags)
    for special in (DUPLICATE, LATE, MALFORMED):
        assert tags[special] / len(traffic) == pytest.approx(0.01, abs=0.004), special


def _exception_share(messages: list) -> float:
    created = sum(
        1
        for m in messages
        if m.kind == SHIPMENT and m.event_id and DUPLICATE not in m.tags and _doc(m)["type"] == "created"
    )
    return sum(EXCEPTION in m.tags for m in messages) / created


def test_about_a_tenth_of_shipments_hit_an_exception_and_the_rate_is_configurable(traffic: list) -> None:
    assert _exception_share(traffic) == pytest.approx(0.10, abs=0.035)
    assert _exception_share(list(generate(11, 200, 30, start=START, exception_rate=0.3))) == pytest.approx(
        0.30, abs=0.07
    )
    codes = {t.split(":", 1)[1] for m in traffic for t in m.tags if t.startswith(f"{EXCEPTION}:")}
    assert {
        "damaged",
        "lost",
        "delayed",
        "address_issue",
        "refused",
        "customs_hold",
        "weather",
        "attempt_failed",
    } <= codes


def test_every_stage_and_category_shows_up(traffic: list) -> None:
    docs = [(m.kind, _doc(m)) for m in traffic if m.event_id]
    assert {d["type"] for k, d in docs if k == SHIPMENT} >= set(LIFECYCLE) | {
        "exception",
        "delivery_failed",
        "returned",
    }
    assert {d["status"] for k, d in docs if k == CARRIER} == {
        "accepted",
        "in_transit",
        "arrived_at_hub",
        "out_for_delivery",
        "delivered",
        "attempt_failed",
        "exception",
        "returned_to_sender",
    }
    assert {d["category"] for k, d in docs if k == CALL} == {
        "query",
        "complaint",
        "urgent_order",
        "claim",
        "booking",
        "survey",
        "feedback",
    }
    assert any(d.get("priority") == "urgent" for k, d in docs if k == SHIPMENT)
    assert all("eta" in d for k, d in docs if k == CARRIER and d["status"] in ("accepted", "in_transit"))


def test_a_shipment_moves_through_its_lifecycle_in_order(traffic: list) -> None:
    steps = defaultdict(list)
    for m in traffic:
        if m.kind == SHIPMENT and m.event_id and DUPLICATE not in m.tags:
            d = _doc(m)
            if d["type"] in LIFECYCLE:
                steps[d["shipment_id"]].append((_when(d["occurred_at"]), LIFECYCLE.index(d["type"])))
    checked = [s for s in steps.values() if len(s) >= 3]
    assert len(checked) > 300
    for history in checked:
        ranks = [rank for _, rank in sorted(history)]
        assert ranks == sorted(ranks)


def test_eta_slips_pass_the_promise(long_traffic: list) -> None:
    promise = {}
    for m in long_traffic:
        if m.kind == SHIPMENT and m.event_id and "promised_delivery_at" in (d := _doc(m)):
            promise[d["shipment_id"]] = _when(d["promised_delivery_at"])
    slips = [_doc(m) for m in long_traffic if ETA_SLIP in m.tags]
    known = [d for d in slips if d["shipment_id"] in promise]
    assert len(known) > 10 and all(_when(d["eta"]) > promise[d["shipment_id"]] for d in known)


def test_late_events_are_older_than_their_shipments_latest(traffic: list) -> None:
    latest: dict[str, datetime] = {}
    late = 0
    for m in traffic:
        if m.kind == CALL or not m.event_id:
            continue
        d = _doc(m)
        at = _when(d["occurred_at"])
        if LATE in m.tags and d["shipment_id"] in latest:  # else its newer sibling came before the traffic began
            late += 1
            assert at < latest[d["shipment_id"]]
        latest[d["shipment_id"]] = max(at, latest.get(d["shipment_id"], at))
    assert late > 50


def test_repeat_contacts_follow_an_earlier_contact_within_hours(long_traffic: list) -> None:
    contacts = defaultdict(list)
    repeats = []
    for m in long_traffic:
        if m.kind == CALL and m.event_id and DUPLICATE not in m.tags:
            d = _doc(m)
            if d.get("shipment_id") and d["category"] in ("query", "complaint"):
                contacts[d["shipment_id"]].append(_when(d["occurred_at"]))
                if REPEAT_CONTACT in m.tags:
                    repeats.append((d["shipment_id"], _when(d["occurred_at"])))
    assert len(repeats) > 50
    near = [any(timedelta(0) < at - before <= timedelta(hours=6) for before in contacts[sid]) for sid, at in repeats]
    assert sum(near) / len(near) > 0.9  # the rest had their first call before the traffic began


# --------------------------------------------------------------------------- contract validity


def test_valid_messages_validate_and_are_keyed_per_the_contract(traffic: list) -> None:
    for m in traffic:
        if m.event_id is None:
            continue
        result = decode_record(Record(m.kind, 0, 0, m.key, m.value), MODELS[m.kind], 1024 * 1024)
        assert isinstance(result, Accepted), (m.value, getattr(result, "message", ""))
        assert result.event.event_id == m.event_id
        assert result.event.key.encode() == m.key


def test_malformed_messages_are_rejected_for_the_right_reason(traffic: list) -> None:
    malformed = [m for m in traffic if MALFORMED in m.tags]
    assert {t for m in malformed for t in m.tags} >= {
        f"{MALFORMED}:{how}" for how in ("bad_json", "naive_timestamp", "unknown_enum", "nul")
    }
    for m in malformed:
        assert m.event_id is None
        result = decode_record(Record(m.kind, 0, 0, m.key, m.value), MODELS[m.kind], 1024 * 1024)
        assert isinstance(result, Rejected)
        expected = (
            DeadLetterReason.INVALID_JSON if f"{MALFORMED}:bad_json" in m.tags else DeadLetterReason.VALIDATION_ERROR
        )
        assert result.reason is expected


def test_duplicates_are_exact_copies_of_an_earlier_message(traffic: list) -> None:
    seen = {}
    duplicates = 0
    for m in traffic:
        if DUPLICATE in m.tags:
            duplicates += 1
            original = seen[m.event_id]
            assert (original.kind, original.key, original.value) == (m.kind, m.key, m.value)
        elif m.event_id:
            assert m.event_id not in seen  # every other message carries a fresh event id
            seen[m.event_id] = m
    assert duplicates > 50


# --------------------------------------------------------------------------------- customers


def test_customers_are_reproducible_and_varied() -> None:
    register = customers(7)
    assert register == customers(7) != customers(8)
    assert len({c.customer_id for c in register}) == len(register)
    assert 0.03 < sum(c.tier is CustomerTier.KEY for c in register) / len(register) < 0.15
    assert 0.1 < sum(c.language is Language.EN for c in register) / len(register) < 0.3


def test_customers_csv_imports_and_the_traffic_refers_to_them(tmp_path: Path, traffic: list) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(customers_csv(customers(11)), encoding="utf-8")
    read = read_customers(path)
    rows = read.customers
    assert read.errors == []
    assert rows == [Customer.model_validate(c.model_dump()) for c in customers(11)]
    known = {c.customer_id for c in rows}
    referred = Counter(_doc(m)["customer_id"] in known for m in traffic if m.event_id and m.kind in (SHIPMENT, CALL))
    assert referred[True] / sum(referred.values()) > 0.9  # a few unregistered customers, on purpose
    assert referred[False] > 0


# ------------------------------------------------------------------------- real publishing


def _env(s: Settings) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HUB_")}
    env.update(
        HUB_KAFKA_BOOTSTRAP=s.kafka_bootstrap,
        HUB_KAFKA_IDEMPOTENCE=str(s.kafka_idempotence).lower(),
        HUB_TOPIC_PARTITIONS=str(s.topic_partitions),
        HUB_TOPIC_SHIPMENT_EVENTS=s.topic_shipment_events,
        HUB_TOPIC_CALL_LOGS=s.topic_call_logs,
        HUB_TOPIC_CARRIER_UPDATES=s.topic_carrier_updates,
        HUB_TOPIC_ALERTS_EXCEPTIONS=s.topic_alerts_exceptions,
        HUB_TOPIC_ALERTS_URGENT=s.topic_alerts_urgent,
        HUB_TOPIC_ALERTS_COMPLAINTS=s.topic_alerts_complaints,
        HUB_TOPIC_DEAD_LETTER=s.topic_dead_letter,
    )
    return env


async def _records_on(s: Settings, topics: tuple[str, ...], timeout_s: float = 30) -> dict[str, list]:
    """Everything on the topics, read to each partition's high watermark (nothing is writing any more)."""
    consumer = AIOKafkaConsumer(**aiokafka_kwargs(s), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        assert len(partitions) == len(topics) * s.topic_partitions
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        found: dict[str, list] = {t: [] for t in topics}
        deadline = time.monotonic() + timeout_s
        while not await _at_end(consumer, partitions):
            assert time.monotonic() < deadline, "topics not read to the end in time"
            for tp, records in (await consumer.getmany(timeout_ms=300)).items():
                found[tp.topic] += records
        return found
    finally:
        await consumer.stop()


async def _at_end(consumer: AIOKafkaConsumer, partitions: list[TopicPartition]) -> bool:
    for tp in partitions:
        end = consumer.highwater(tp)  # not end_offsets(): Tansu 0.6 answers ListOffsets wrongly
        if end is None or await consumer.position(tp) < end:
            return False
    return True


async def test_simulate_publishes_the_traffic_to_the_broker(hub_settings: Settings, tmp_path: Path) -> None:
    s = hub_settings
    start = "2026-03-02T08:00:00+08:00"
    args = ["--rate", "200", "--duration", "2", "--seed", "9", "--start", start]
    began = time.monotonic()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "hub",
        "simulate",
        *args,
        env=_env(s),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(proc.communicate(), timeout=60)
    text = output.decode()
    assert proc.returncode == 0, text
    assert time.monotonic() - began >= 2.0  # paced, not dumped
    assert "sent per stream" in text and "special messages" in text

    planned = list(generate(9, 200, 2, start=datetime.fromisoformat(start)))
    topics = {SHIPMENT: s.topic_shipment_events, CARRIER: s.topic_carrier_updates, CALL: s.topic_call_logs}
    found = await _records_on(s, tuple(topics.values()))
    assert sum(len(records) for records in found.values()) == 400
    for kind, topic in topics.items():
        expected = sorted((m.key, m.value) for m in planned if m.kind == kind)
        assert sorted((r.key, r.value) for r in found[topic]) == expected  # byte for byte, keyed per contract


def test_simulate_without_a_broker_says_what_to_set() -> None:
    env = {k: None for k in os.environ if k.startswith("HUB_")}
    result = CliRunner().invoke(app, ["simulate", "--duration", "1"], env=env)
    assert result.exit_code == 1
    assert "HUB_KAFKA_BOOTSTRAP is not set" in result.output


def test_a_run_covers_duration_times_speed_of_simulated_time(traffic: list, long_traffic: list) -> None:
    for messages, simulated in ((traffic, 60 * 600), (long_traffic, 60 * 6000)):
        times = [_when(_doc(m)["occurred_at"]) for m in messages if m.event_id and LATE not in m.tags]
        assert (max(times) - START).total_seconds() == pytest.approx(simulated, rel=0.1)
