"""Duplicates, conflicting duplicates, late events, cross-stream ETA, repeat contact and
hostile input, each through the real broker and Postgres."""

from __future__ import annotations

from datetime import timedelta

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from hub.kafka import aiokafka_kwargs
from schemas.outbound import DeadLetterHeaders
from tests.support import (
    T0,
    call_log,
    carrier_update,
    fetch,
    fetchval,
    publish,
    publish_raw,
    read_topics,
    running_hub,
    shipment_event,
    wait_for_count,
)

PROMISE = (T0 + timedelta(hours=48)).isoformat()
LATE_ETA = (T0 + timedelta(hours=60)).isoformat()


async def test_duplicate_is_skipped_and_conflicting_duplicate_is_dead_lettered(hub_settings):
    s = hub_settings
    damage = shipment_event("S1", "exception", 5, exception={"code": "damaged"})
    respaced = orjson.dumps(dict(reversed(list({**damage, "order_id": None}.items()))))  # same content
    conflicting = orjson.dumps({**damage, "exception": {"code": "lost"}})
    async with running_hub(s) as runtime:
        dsn = s.database_url.get_secret_value()
        await publish(s, shipments=[damage])
        await wait_for_count(dsn, "SELECT count(*) FROM inbox", 1)
        await publish_raw(s, s.topic_shipment_events, [(b"S1", respaced), (b"S1", conflicting)])
        await wait_for_count(dsn, "SELECT count(*) FROM dead_letters", 1)
        await wait_for_count(dsn, "SELECT count(*) FROM outbox WHERE sent_at IS NULL", 0)
        assert runtime.totals.duplicates == 1
    assert await fetchval(dsn, "SELECT count(*) FROM coordination_tasks") == 1
    assert await fetchval(dsn, "SELECT count(*) FROM customer_notifications") == 1
    dead = await read_topics(s, [s.topic_dead_letter], expected=1)
    assert len(dead) == 1 and dead[0].value == conflicting and dead[0].key == b"S1"
    headers = DeadLetterHeaders.from_kafka(list(dead[0].headers))
    assert headers.reason == "conflicting_duplicate" and headers.topic == s.topic_shipment_events
    assert "different payload" in headers.message


async def test_same_event_id_on_another_topic_is_a_conflict(hub_settings):
    s = hub_settings
    created = shipment_event("S2", "created", 0)
    update = {**carrier_update("S2", "in_transit", 1), "event_id": created["event_id"]}
    async with running_hub(s):
        dsn = s.database_url.get_secret_value()
        await publish(s, shipments=[created])
        await wait_for_count(dsn, "SELECT count(*) FROM inbox", 1)
        await publish(s, carriers=[update])
        await wait_for_count(dsn, "SELECT count(*) FROM dead_letters", 1)
    row = (await fetch(dsn, "SELECT reason, message FROM dead_letters"))[0]
    assert row["reason"] == "conflicting_duplicate" and "from topic" in row["message"]


@pytest.mark.parametrize("order", ["promise_first", "eta_first"])
async def test_eta_past_promise_fires_once_in_either_arrival_order(hub_settings, order):
    s = hub_settings
    created = shipment_event("S3", "created", 0, promised_delivery_at=PROMISE)
    late_eta = carrier_update("S3", "in_transit", 10, eta=LATE_ETA)
    still_late = carrier_update("S3", "arrived_at_hub", 20, eta=(T0 + timedelta(hours=61)).isoformat())
    first, second = (
        (("shipments", [created]), ("carriers", [late_eta]))
        if order == "promise_first"
        else (("carriers", [late_eta]), ("shipments", [created]))
    )
    async with running_hub(s):
        dsn = s.database_url.get_secret_value()
        await publish(s, **{first[0]: first[1]})
        await wait_for_count(dsn, "SELECT count(*) FROM inbox", 1)
        await publish(s, **{second[0]: second[1]})
        await wait_for_count(dsn, "SELECT count(*) FROM inbox", 2)
        await publish(s, carriers=[still_late])
        await wait_for_count(dsn, "SELECT count(*) FROM inbox", 3)
    delays = await fetch(dsn, "SELECT source_event_id, customer_id FROM coordination_tasks WHERE kind = 'delay'")
    assert len(delays) == 1, "fires once while the ETA stays past the promise"
    assert delays[0]["source_event_id"] == second[1][0]["event_id"], "fires when the second fact arrives"
    assert delays[0]["customer_id"] == "C-STD"


async def test_late_event_is_recorded_raises_its_alert_but_never_moves_status_back(hub_settings):
    s = hub_settings
    async with running_hub(s):
        dsn = s.database_url.get_secret_value()
        await publish(s, shipments=[shipment_event("S4", "created", 0), shipment_event("S4", "delivered", 60)])
        await wait_for_count(dsn, "SELECT count(*) FROM inbox", 2)
        await publish(s, carriers=[carrier_update("S4", "exception", 30, exception_code="damaged", eta=LATE_ETA)])
        await wait_for_count(dsn, "SELECT count(*) FROM inbox", 3)
    sheet = (await fetch(dsn, "SELECT status, eta FROM shipments WHERE shipment_id = 'S4'"))[0]
    assert sheet["status"] == "delivered"
    assert await fetchval(dsn, "SELECT count(*) FROM shipment_events WHERE shipment_id = 'S4'") == 3
    assert await fetchval(dsn, "SELECT count(*) FROM coordination_tasks WHERE kind = 'damage'") == 1


@pytest.mark.parametrize(
    ("gap_hours", "direction", "fires"), [(3, "inbound", True), (25, "inbound", False), (3, "outbound", False)]
)
async def test_repeat_contact_within_the_window(hub_settings, gap_hours, direction, fires):
    s = hub_settings
    first = call_log("C-STD", "query", 0, shipment_id="S5")
    second = call_log("C-STD", "query", gap_hours * 60, shipment_id="S5", direction=direction)
    async with running_hub(s):
        dsn = s.database_url.get_secret_value()
        # The later contact arrives first: the rule goes by occurred_at, not by arrival.
        await publish(s, calls=[second])
        await wait_for_count(dsn, "SELECT count(*) FROM inbox", 1)
        await publish(s, calls=[first])
        await wait_for_count(dsn, "SELECT count(*) FROM inbox", 2)
    repeats = await fetchval(dsn, "SELECT count(*) FROM coordination_tasks WHERE kind = 'repeat_contact'")
    assert repeats == (1 if fires else 0)
    assert await fetchval(dsn, "SELECT count(*) FROM customer_notifications") == 0


HOSTILE = {
    "undecodable": b'{"event_id": "\xff\xfe"}',
    "invalid_json": b'{"event_id": ',
    "naive_timestamp": orjson.dumps({**shipment_event("SX", "created"), "occurred_at": "2026-11-27T09:00:00"}),
    "unknown_enum": orjson.dumps({**shipment_event("SX", "created"), "type": "teleported"}),
    "missing_field": orjson.dumps({k: v for k, v in shipment_event("SX", "created").items() if k != "customer_id"}),
    "long_id": orjson.dumps(shipment_event("X" * 65, "created")),
    "nan": b'{"event_id": "n1", "amount": NaN}',
    "nul": orjson.dumps({**shipment_event("SX", "created"), "attributes": {"note": "a\u0000b"}}),
    "json_array": b"[1, 2, 3]",
    "version_2": orjson.dumps({**shipment_event("SX", "created"), "schema_version": 2}),
    "oversized": orjson.dumps({**shipment_event("SX", "created"), "attributes": {"blob": "x" * (1024 * 1024)}}),
}
REASONS = {
    "undecodable": "undecodable",
    "invalid_json": "invalid_json",
    "nan": "invalid_json",
    "json_array": "validation_error",
    "version_2": "unsupported_version",
    "oversized": "oversized",
}


async def test_hostile_payloads_are_dead_lettered_byte_for_byte_and_the_stream_goes_on(hub_settings):
    s = hub_settings
    good_after = shipment_event("S6", "exception", 5, exception={"code": "lost"})
    sql_text = shipment_event("S7", "created", 1, attributes={"note": "'); DROP TABLE shipments;-- $1 %s"})
    async with running_hub(s):
        dsn = s.database_url.get_secret_value()
        await publish_raw(s, s.topic_shipment_events, [(b"SX", value) for value in HOSTILE.values()])
        await publish(s, shipments=[good_after, sql_text])
        await wait_for_count(dsn, "SELECT count(*) FROM dead_letters", len(HOSTILE))
        await wait_for_count(dsn, "SELECT count(*) FROM inbox", 2)
    dead = await read_topics(s, [s.topic_dead_letter], expected=len(HOSTILE))
    by_value = {record.value: record for record in dead}
    assert len(dead) == len(HOSTILE)
    for name, value in HOSTILE.items():
        record = by_value[value]
        headers = DeadLetterHeaders.from_kafka(list(record.headers))
        assert record.key == b"SX"
        assert headers.reason == REASONS.get(name, "validation_error"), name
        assert headers.topic == s.topic_shipment_events and headers.message
    assert await fetchval(dsn, "SELECT count(*) FROM coordination_tasks WHERE shipment_id = 'S6'") == 2 - 1
    stored = await fetchval(dsn, "SELECT payload->'attributes'->>'note' FROM shipment_events WHERE shipment_id = 'S7'")
    assert stored == "'); DROP TABLE shipments;-- $1 %s"


async def test_a_tombstone_is_dead_lettered_as_a_tombstone(hub_settings):
    s = hub_settings
    async with running_hub(s):
        dsn = s.database_url.get_secret_value()
        await publish_raw(s, s.topic_shipment_events, [(b"S9", None)])
        await wait_for_count(dsn, "SELECT count(*) FROM dead_letters", 1)
        await wait_for_count(dsn, "SELECT count(*) FROM outbox WHERE sent_at IS NULL", 0)
    dead = await read_topics(s, [s.topic_dead_letter], expected=1)
    assert len(dead) == 1 and dead[0].value is None and dead[0].key == b"S9"


async def test_binary_header_values_neither_stop_the_batch_nor_get_lost(hub_settings):
    """Kafka header values are bytes, not text: a record whose tracing header is not UTF-8 is
    processed like any other, and a bad record's dead letter keeps that header byte for byte."""
    s = hub_settings
    binary = [("trace-bin", b"\xff\x00\xfe"), ("source", b"scanner-7")]
    before, tagged, after = (shipment_event(f"S{n}", "created", 0) for n in (20, 21, 22))
    bad = orjson.dumps({"event_id": "not-an-event"})
    async with running_hub(s):
        dsn = s.database_url.get_secret_value()
        producer = AIOKafkaProducer(**aiokafka_kwargs(s))
        await producer.start()
        try:
            for key, value, headers in [
                (b"S20", orjson.dumps(before), []),
                (b"S21", orjson.dumps(tagged), binary),
                (b"S21", bad, binary),
                (b"S22", orjson.dumps(after), []),
            ]:
                await producer.send(s.topic_shipment_events, value, key=key, headers=headers)
            await producer.flush()
        finally:
            await producer.stop()
        await wait_for_count(dsn, "SELECT count(*) FROM inbox", 3)
        await wait_for_count(dsn, "SELECT count(*) FROM dead_letters", 1)
    assert await fetchval(dsn, "SELECT count(*) FROM shipments WHERE shipment_id IN ('S20', 'S21', 'S22')") == 3
    dead = await read_topics(s, [s.topic_dead_letter], expected=1)
    assert len(dead) == 1 and dead[0].value == bad
    assert [h for h in dead[0].headers if h[0] in ("trace-bin", "source")] == binary
