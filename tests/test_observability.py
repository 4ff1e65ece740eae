"""Health and metrics endpoint of `hub run`: a real HubRuntime, broker, Postgres and HTTP scrapes."""

from __future__ import annotations

import asyncio
import socket
import time
import urllib.error
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer
from prometheus_client.parser import text_string_to_metric_families

from hub.clock.engine import TickReport
from hub.config import Settings
from hub.core.clock import Firing, Timer
from hub.dev.embedded import free_port
from hub.kafka import aiokafka_kwargs, ensure_topics
from hub.migrate import apply_migrations
from hub.observability import EndpointUnavailable, Observability, readiness
from hub.runtime import HubRuntime
from producers.feeds import CallCentreFeed, CarrierFeed, WarehouseFeed
from schemas.enums import Department, Severity

WAIT_S = 60  # Tansu's group join alone takes ~5 s; the box is shared
T0 = datetime(2026, 11, 27, 9, 0, tzinfo=UTC)

# Personal data that must never show up as a label value.
CUSTOMER_ID = "CUST-PII-7731"
PHONE = "+86 138 0013 8000"
NAME = "Zhang Wei"

_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a developer's proxy


async def http_get(port: int, path: str) -> tuple[int, bytes, str]:
    def get() -> tuple[int, bytes, str]:
        try:
            with _OPENER.open(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
                return response.status, response.read(), response.headers.get("Content-Type", "")
        except urllib.error.HTTPError as error:
            return error.code, error.read(), error.headers.get("Content-Type", "")

    return await asyncio.to_thread(get)


async def scrape(port: int) -> dict[tuple[str, frozenset], float]:
    status, body, content_type = await http_get(port, "/metrics")
    assert status == 200 and content_type.startswith("text/plain")
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(body.decode())
        for s in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def delta(after: dict, before: dict, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


async def wait_for(condition, what: str, timeout_s: float = WAIT_S):
    deadline = time.monotonic() + timeout_s
    while True:
        result = await condition()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")
        await asyncio.sleep(0.2)


def _settings_with_port(hub_settings: Settings) -> Settings:
    return hub_settings.model_copy(update={"http_port": free_port(), "http_host": "127.0.0.1"})


# ------------------------------------------------------------------------------------------- events


def _at(minutes: int) -> str:
    return (T0 + timedelta(minutes=minutes)).isoformat()


def _shipment(type_: str, minutes: int, **extra) -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": _at(minutes),
        "source": "wms-sh-01",
        "shipment_id": f"SH-{uuid.uuid4().hex[:8]}",
        "customer_id": CUSTOMER_ID,
        "type": type_,
        **extra,
    }


def _complaint() -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": _at(5),
        "source": "callcentre",
        "call_id": "CALL-1",
        "customer_id": CUSTOMER_ID,
        "direction": "inbound",
        "channel": "phone",
        "category": "complaint",
        "caller_phone": PHONE,
        "notes": f"{NAME} says the parcel is late",
    }


def _carrier_update() -> dict:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": _at(7),
        "source": "carrier:SF",
        "carrier_id": "SF",
        "carrier_tracking_no": "SF123",
        "shipment_id": f"SH-{uuid.uuid4().hex[:8]}",
        "status": "in_transit",
    }


async def publish_scenario(settings: Settings) -> None:
    """3 processed shipment/carrier events, 1 processed call, 1 duplicate, 3 dead letters (one per reason)."""
    damaged = _shipment("exception", 1, exception={"code": "damaged", "description": "crushed box"})
    urgent = _shipment("created", 2, priority="urgent")
    broken_shipment = {**_shipment("created", 3), "customer_id": None, "type": "teleported"}  # validation_error
    complaint = _complaint()
    conflicting = {**complaint, "notes": "a different payload under the same event_id"}
    async with WarehouseFeed(settings=settings) as feed:
        await feed.publish_many([damaged, urgent])
        await feed.publish_raw(orjson.dumps(broken_shipment), b"SH-BROKEN", broken_shipment["event_id"])
    async with CallCentreFeed(settings=settings) as feed:
        await feed.publish(complaint)
        await feed.publish(complaint)  # the same event again: a duplicate, no second effect
        await feed.publish_raw(orjson.dumps(conflicting), CUSTOMER_ID.encode(), conflicting["event_id"])
    async with CarrierFeed(settings=settings) as feed:
        await feed.publish(_carrier_update())
        await feed.publish_raw(b"{not json", b"SH-X", None)


EXPECTED_EVENTS = {
    ("shipment_events", "processed"): 2,
    ("shipment_events", "dead_lettered"): 1,
    ("call_logs", "processed"): 1,
    ("call_logs", "duplicate"): 1,
    ("call_logs", "dead_lettered"): 1,
    ("carrier_updates", "processed"): 1,
    ("carrier_updates", "dead_lettered"): 1,
}
# The contract's routing table for a standard (auto-created) customer.
EXPECTED_ALERTS = {("exceptions", "P1"): 1, ("urgent_orders", "P1"): 1, ("complaints", "P2"): 1}
EXPECTED_DEAD_LETTERS = {"validation_error": 1, "conflicting_duplicate": 1, "invalid_json": 1}
PUBLISHED = sum(EXPECTED_EVENTS.values())


# -------------------------------------------------------------------------------------------- tests


async def test_ready_reports_each_failing_check_before_the_runtime_started():
    settings = Settings(_env_file=None, http_host="127.0.0.1", http_port=free_port())  # no services needed
    observability = Observability(settings)
    await observability.start(HubRuntime(settings))  # not started: no pool, no consumer
    try:
        assert (await http_get(observability.port, "/health/live"))[0] == 200
        status, body, content_type = await http_get(observability.port, "/health/ready")
        assert status == 503 and content_type == "application/json"
        doc = orjson.loads(body)
        assert doc["status"] == "not ready"
        assert doc["checks"] == {
            "postgres": "no connection pool yet",
            "kafka": "consumer not started",
            "assignment": "consumer not started",
        }
        assert (await http_get(observability.port, "/nowhere"))[0] == 404
    finally:
        await observability.stop()
    with pytest.raises(urllib.error.URLError):
        await http_get(observability.port, "/health/live")  # the endpoint is gone after stop


async def test_ready_fails_on_assignment_alone_while_postgres_and_kafka_answer(
    hub_settings: Settings, database_url: str
):
    await ensure_topics(hub_settings)
    consumer = AIOKafkaConsumer(**aiokafka_kwargs(hub_settings))  # started, never subscribed: owns nothing
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=1)
    await consumer.start()
    try:
        checks = await readiness(SimpleNamespace(consumer=consumer, pool=pool, settings=hub_settings))
    finally:
        await consumer.stop()
        await pool.close()
    assert checks == {
        "postgres": "ok",
        "kafka": "ok",
        "assignment": "no partitions assigned (group joining or rebalancing)",
    }


async def test_a_taken_port_is_reported_with_what_to_do():
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = Settings(_env_file=None, http_host="127.0.0.1", http_port=taken.getsockname()[1])
        observability = Observability(settings)
        with pytest.raises(EndpointUnavailable, match="HUB_HTTP_PORT"):
            await observability.start(HubRuntime(settings))
    await observability.stop()  # stopping after a failed start is harmless


async def test_endpoint_counts_exactly_what_was_published(hub_settings: Settings, database_url: str):
    await apply_migrations(database_url)
    settings = _settings_with_port(hub_settings)
    observability = Observability(settings, refresh_interval_s=0.3)
    runtime = HubRuntime(settings, extensions=[observability])
    await runtime.start()
    try:
        port = observability.port
        assert runtime.consumer is not None, (
            "HubRuntime.consumer is None: consumers.inbound.subscribe_inbound must return the FastStream "
            "subscriber (which owns the aiokafka consumer), not the decorated handler"
        )
        assert (await http_get(port, "/health/live"))[0] == 200
        await _assert_not_ready_until_assigned(runtime, port)
        before = await scrape(port)
        await publish_scenario(settings)
        after = await wait_for(
            lambda: _scrape_when_events_total(port, before, PUBLISHED), f"{PUBLISHED} events counted"
        )
        _assert_counts(before, after)
        await _assert_counts_match_the_database(database_url, before, after)
        await _assert_gauges_settle(runtime, port)
        _assert_no_personal_data_in_labels(await scrape(port))
        await runtime.pool.close()
        status, body, _ = await http_get(port, "/health/ready")
        checks = orjson.loads(body)["checks"]
        assert status == 503 and checks["postgres"].startswith("InterfaceError") and checks["kafka"] == "ok"
    finally:
        await runtime.stop()


async def _assert_not_ready_until_assigned(runtime: HubRuntime, port: int) -> None:
    unassigned = not runtime.consumer.assignment()
    status, body, _ = await http_get(port, "/health/ready")
    if unassigned and not runtime.consumer.assignment():  # usually: the group join takes a few seconds
        assert status == 503
        assert orjson.loads(body)["checks"]["assignment"].startswith("no partitions assigned")

    async def ready():
        status, body, _ = await http_get(port, "/health/ready")
        return orjson.loads(body) if status == 200 else None

    doc = await wait_for(ready, "/health/ready to answer 200")
    assert doc == {"status": "ready", "checks": {"postgres": "ok", "kafka": "ok", "assignment": "ok"}}


async def _scrape_when_events_total(port: int, before: dict, expected: int):
    samples = await scrape(port)
    counted = sum(delta(samples, before, "hub_events_total", stream=s, outcome=o) for s, o in EXPECTED_EVENTS)
    assert counted <= expected, f"counted {counted} events, published {expected}"
    return samples if counted == expected else None


def _assert_counts(before: dict, after: dict) -> None:
    for stream in ("shipment_events", "call_logs", "carrier_updates"):
        for outcome in ("processed", "duplicate", "dead_lettered"):
            assert delta(after, before, "hub_events_total", stream=stream, outcome=outcome) == EXPECTED_EVENTS.get(
                (stream, outcome), 0
            ), (stream, outcome)
    for queue in ("exceptions", "urgent_orders", "complaints"):
        for severity in ("P1", "P2", "P3", "P4"):
            assert delta(after, before, "hub_alerts_total", queue=queue, severity=severity) == EXPECTED_ALERTS.get(
                (queue, severity), 0
            ), (queue, severity)
    for reason in (
        "undecodable",
        "invalid_json",
        "validation_error",
        "conflicting_duplicate",
        "unsupported_version",
        "oversized",
        "unprocessable",
    ):
        assert delta(after, before, "hub_dead_letters_total", reason=reason) == EXPECTED_DEAD_LETTERS.get(reason, 0), (
            reason
        )
    assert delta(after, before, "hub_batch_size_sum") == PUBLISHED  # every record in exactly one batch
    assert delta(after, before, "hub_batch_size_count") == delta(after, before, "hub_batch_seconds_count") >= 1


async def _assert_counts_match_the_database(dsn: str, before: dict, after: dict) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        tasks = await conn.fetchval("SELECT count(*) FROM coordination_tasks")
        notifications = await conn.fetchval("SELECT count(*) FROM customer_notifications")
        dead_letters = Counter(r["reason"] for r in await conn.fetch("SELECT reason FROM dead_letters"))
    finally:
        await conn.close()
    assert tasks >= len(EXPECTED_ALERTS) and notifications >= 1
    assert delta(after, before, "hub_tasks_written_total") == tasks
    assert delta(after, before, "hub_notifications_written_total") == notifications
    assert dead_letters == EXPECTED_DEAD_LETTERS


async def _assert_gauges_settle(runtime: HubRuntime, port: int) -> None:
    """The relay drains the outbox and every assigned partition gets a lag series (0 once consumed)."""
    assigned = {(tp.topic, str(tp.partition)) for tp in runtime.consumer.assignment()}
    assert len(assigned) == 9  # 3 inbound topics x 3 partitions, one replica

    async def settled():
        samples = await scrape(port)
        lags = {
            dict(labels)["topic"] + "/" + dict(labels)["partition"]: v
            for (name, labels), v in samples.items()
            if name == "hub_consumer_lag"
        }
        done = (
            value(samples, "hub_outbox_backlog") == 0
            and len(lags) == len(assigned)
            and all(v == 0 for v in lags.values())
        )
        return samples if done else None

    samples = await wait_for(settled, "outbox drained and lag 0 on every partition")
    assert value(samples, "hub_outbox_oldest_age_seconds") == 0
    lag_labels = {
        (dict(labels)["topic"], dict(labels)["partition"]) for (name, labels) in samples if name == "hub_consumer_lag"
    }
    assert lag_labels == assigned


def _assert_no_personal_data_in_labels(samples: dict) -> None:
    label_values = {v for (_, labels) in samples for _, v in labels}
    phone_digits = "".join(c for c in PHONE if c.isdigit())
    for text in label_values:
        assert CUSTOMER_ID not in text and NAME not in text and phone_digits[-8:] not in text.replace(" ", "")


@pytest.mark.postgres
async def test_outbox_gauges_read_the_backlog_and_its_age(database_url: str):
    settings = Settings(_env_file=None, database_url=database_url, http_port=0)  # counting only, no server
    await apply_migrations(database_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        await pool.execute(
            "INSERT INTO outbox (topic, value, message_id, created_at) "
            "VALUES ('alerts.exceptions', 'x', 'm1', now() - interval '90 seconds'), "
            "('alerts.exceptions', 'y', 'm2', now() - interval '10 seconds'), "
            "('alerts.exceptions', 'z', 'm3', now() - interval '1 hour')"
        )
        await pool.execute("UPDATE outbox SET sent_at = now() WHERE message_id = 'm3'")  # sent: not backlog
        observability = Observability(settings)
        # A runtime with only the pool: no broker is involved in this check.
        await observability.start(SimpleNamespace(consumer=None, pool=pool, settings=settings, scheduler=None))
        try:
            await observability.refresh()
        finally:
            await observability.stop()
    finally:
        await pool.close()
    samples = {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(observability.metrics.render().decode())
        for s in family.samples
    }
    assert value(samples, "hub_outbox_backlog") == 2
    assert 90 <= value(samples, "hub_outbox_oldest_age_seconds") < 90 + WAIT_S


# ------------------------------------------------------------------------------------- clock and SLA


def _samples(observability: Observability) -> dict[tuple[str, frozenset], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(observability.metrics.render().decode())
        for s in family.samples
    }


def test_clock_metrics_count_timers_by_kind_and_keep_the_last_lag():
    observability = Observability(Settings(_env_file=None, http_port=0))
    before = _samples(observability)
    for timer in Timer:  # every kind is there from the start, at 0: rate() sees 0, not "no data"
        assert ("hub_clock_timers_fired_total", frozenset({("timer", timer.value)})) in before
    assert value(before, "hub_clock_leader") == 0 and value(before, "hub_clock_lag_seconds") == 0

    def firing(timer: Timer, key: str) -> Firing:
        return Firing(timer, "task-1", key, T0, T0 + timedelta(minutes=3), "no personal data")

    observability.on_tick(
        TickReport(
            now=T0,
            fired=[firing(Timer.SLA_BREACH, "1"), firing(Timer.SLA_BREACH, "2"), firing(Timer.SLA_WARNING, "0")],
            lag_s=180.0,
            duration_s=0.02,
        )
    )
    observability.on_tick(TickReport(now=T0 + timedelta(seconds=5), lag_s=2.5, duration_s=0.004))
    after = _samples(observability)
    assert value(after, "hub_clock_timers_fired_total", timer="sla_breach") == 2
    assert value(after, "hub_clock_timers_fired_total", timer="sla_warning") == 1
    assert value(after, "hub_clock_timers_fired_total", timer="stale_shipment") == 0
    assert value(after, "hub_clock_lag_seconds") == 2.5  # the last tick's, not the worst
    assert value(after, "hub_clock_tick_seconds_count") == 2
    assert value(after, "hub_clock_tick_seconds_bucket", le="0.005") == 1


def _task_row(department: str, severity: str, status: str, due_in: timedelta, level: int) -> tuple:
    return (uuid.uuid4(), department, severity, status, due_in, level, f"event-{uuid.uuid4().hex[:8]}")


@pytest.mark.postgres
async def test_task_gauges_read_open_overdue_and_escalated_tasks_by_department_and_severity(database_url: str):
    settings = Settings(_env_file=None, database_url=database_url, http_port=0)
    await apply_migrations(database_url)
    rows = [
        _task_row("claims", "P1", "open", timedelta(hours=-3), 2),  # breached, escalated to the manager
        _task_row("claims", "P1", "in_progress", timedelta(hours=1), 0),
        _task_row("warehouse", "P2", "open", timedelta(minutes=-10), 1),  # breached, with the supervisor
        _task_row("warehouse", "P2", "done", timedelta(hours=-5), 2),  # closed: counts nowhere
        _task_row("complaints", "P3", "cancelled", timedelta(hours=-5), 0),
    ]
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    try:
        await pool.executemany(
            "INSERT INTO coordination_tasks (task_id, department, kind, severity, status, title, due_at, "
            "source_event_id, rule, opened_at, warn_at, escalate_at, escalation_level) "
            "VALUES ($1, $2, 'claim', $3, $4, 'a task', now() + $5::interval, $7, 'test', "
            "now() - interval '1 day', now() - interval '1 day', now() + $5::interval + interval '1 hour', $6)",
            rows,
        )
        observability = Observability(settings)
        leading = SimpleNamespace(leading=True)
        await observability.start(SimpleNamespace(consumer=None, pool=pool, settings=settings, scheduler=leading))
        try:
            await observability.refresh()
            samples = _samples(observability)
            await pool.execute("UPDATE coordination_tasks SET status = 'done' WHERE status IN ('open', 'in_progress')")
            leading.leading = False  # another replica took the clock over
            await observability.refresh()
            cleared = _samples(observability)
        finally:
            await observability.stop()
    finally:
        await pool.close()

    assert value(samples, "hub_tasks_open", department="claims", severity="P1") == 2
    assert value(samples, "hub_tasks_overdue", department="claims", severity="P1") == 1
    assert value(samples, "hub_tasks_open", department="warehouse", severity="P2") == 1
    assert value(samples, "hub_tasks_overdue", department="warehouse", severity="P2") == 1
    assert (
        value(samples, "hub_tasks_escalated", level="1") == 1 and value(samples, "hub_tasks_escalated", level="2") == 1
    )
    assert value(samples, "hub_clock_leader") == 1
    # Every department and severity is a series (0 when empty), so the dashboard and the rules see 0, not nothing.
    for name in ("hub_tasks_open", "hub_tasks_overdue"):
        series = {dict(labels)["department"] + "/" + dict(labels)["severity"] for (n, labels) in samples if n == name}
        assert len(series) == len(Department) * len(Severity)
    # Once the tasks are closed every gauge reads 0 (the P1 past-due alert clears), and the clock moved.
    gauges = ("hub_tasks_open", "hub_tasks_overdue", "hub_tasks_escalated")
    assert not {k: v for k, v in cleared.items() if k[0] in gauges and v}
    assert value(cleared, "hub_clock_leader") == 0
