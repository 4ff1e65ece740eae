"""The store and pipeline directly against Postgres (no broker): idempotence, isolation of a
record Postgres refuses, and the transaction boundary. Runs on every Postgres CI knows."""

from __future__ import annotations

import asyncpg
import orjson
import pytest
from aiokafka.structs import ConsumerRecord

from hub.core.decoding import Record
from hub.core.rules import load_rules
from hub.inbound import InboundBatches
from hub.migrate import apply_migrations
from hub.pipeline import Pipeline
from hub.runtime import build_pipeline
from hub.store.batch import apply_batch
from tests.support import FakeConsumer, call_log, carrier_update, isolated_settings, shipment_event

pytestmark = pytest.mark.postgres
TABLES = (
    "inbox",
    "shipments",
    "shipment_events",
    "call_logs",
    "coordination_tasks",
    "customer_notifications",
    "outbox",
    "dead_letters",
    "customers",
)


@pytest.fixture
async def pool(database_url):
    await apply_migrations(database_url)
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    yield pool
    await pool.close()


@pytest.fixture
def settings(database_url):
    return isolated_settings("unused:9092", True, database_url)


def records(settings, events: list[tuple[str, dict | bytes]]) -> list[Record]:
    topic = {
        "shipment": settings.topic_shipment_events,
        "carrier": settings.topic_carrier_updates,
        "call": settings.topic_call_logs,
    }
    out = []
    for offset, (kind, event) in enumerate(events):
        value = event if isinstance(event, bytes) else orjson.dumps(event)
        key = b"k" if isinstance(event, bytes) else (event.get("shipment_id") or event["customer_id"]).encode()
        out.append(Record(topic[kind], 0, offset, key, value))
    return out


async def process(p: Pipeline, records):
    return await p.store(*p.decode(records))


def pipeline(pool, settings) -> Pipeline:
    return build_pipeline(settings.model_copy(update={"retry_backoff_max_s": 1.0}), pool, load_rules())


async def snapshot(pool) -> dict[str, int]:
    async with pool.acquire() as conn:
        return {t: await conn.fetchval(f"SELECT count(*) FROM {t}") for t in TABLES}


BATCH = [
    ("shipment", shipment_event("S1", "created", 0, priority="urgent")),
    ("carrier", carrier_update("S1", "exception", 5, exception_code="damaged")),
    ("call", call_log("C9", "complaint", 6, shipment_id="S1")),
    ("shipment", b"{broken"),
]


async def test_a_redelivered_batch_changes_nothing(pool, settings):
    batch = records(settings, BATCH)
    first = await process(pipeline(pool, settings), batch)
    assert (first.processed, sum(first.dead_lettered.values()), first.tasks) == (3, 1, 3)
    before = await snapshot(pool)
    again = await process(pipeline(pool, settings), batch)
    assert (again.processed, again.duplicates, sum(again.dead_lettered.values())) == (0, 3, 0)
    assert await snapshot(pool) == before
    assert before["customers"] == 2, "unknown customers are registered with defaults"


async def test_a_failed_transaction_leaves_no_trace(pool, settings):
    batch = records(settings, BATCH)
    async with pool.acquire() as conn:
        tx = conn.transaction()
        await tx.start()
        await apply_batch(conn, *pipeline(pool, settings).decode(batch), load_rules(), settings.destinations)
        await tx.rollback()
    assert set((await snapshot(pool)).values()) == {0}


async def test_an_event_postgres_refuses_is_isolated_and_dead_lettered_as_unprocessable(pool, settings):
    async with pool.acquire() as conn:
        # Stand-in for any constraint a valid event can still break (a DBA's CHECK, a trigger, ...).
        await conn.execute("ALTER TABLE shipment_events ADD CONSTRAINT no_evil CHECK (shipment_id <> 'EVIL')")
    batch = records(
        settings,
        [
            ("shipment", shipment_event("S2", "created", 0)),
            ("shipment", shipment_event("EVIL", "created", 1)),
            ("carrier", carrier_update("S3", "delivered", 2)),
        ],
    )
    outcome = await process(pipeline(pool, settings), batch)
    assert outcome.processed == 2 and dict(outcome.dead_lettered) == {"unprocessable": 1}
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT reason, error_class, message, value FROM dead_letters")
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM inbox WHERE event_id = $1", orjson.loads(row["value"])["event_id"]
            )
            == 0
        )
    assert row["reason"] == "unprocessable" and row["error_class"] == "CheckViolationError"
    assert bytes(row["value"]) == batch[1].value


async def test_an_event_the_hub_fails_on_is_dead_lettered_not_retried_forever(pool, settings, monkeypatch):
    """A failure that is about one record (not the database being away) must not block the
    partition: the batch is split and only the record that fails goes to the dead-letter topic."""
    import hub.core.fold

    route = hub.core.fold.route_event

    def failing_route(event, *args):
        if event.__dict__.get("shipment_id") == "BOOM":
            raise TypeError("Recursion limit reached")
        return route(event, *args)

    monkeypatch.setattr(hub.core.fold, "route_event", failing_route)
    batch = records(
        settings,
        [
            ("shipment", shipment_event("S2", "created", 0)),
            ("shipment", shipment_event("BOOM", "created", 1)),
            ("carrier", carrier_update("S3", "delivered", 2)),
        ],
    )
    outcome = await process(pipeline(pool, settings), batch)
    assert outcome.processed == 2 and dict(outcome.dead_lettered) == {"unprocessable": 1}
    async with pool.acquire() as conn:
        row = await conn.fetchrow("SELECT reason, error_class, message FROM dead_letters")
    assert (row["reason"], row["error_class"]) == ("unprocessable", "TypeError")
    assert "Recursion" not in row["message"], "only the class: an error's text may quote personal data"


async def test_a_batch_never_counts_its_own_calls_as_earlier_contacts(pool, settings):
    """Calls are recorded before routing reads the shipment's recent contacts: a batch's own calls
    must count only in time order, so a lone query is no repeat contact and the second one is."""
    lone = records(settings, [("call", call_log("C1", "query", 0, shipment_id="S-LONE"))])
    assert (await process(pipeline(pool, settings), lone)).tasks == 0
    pair = records(
        settings,
        [
            ("call", call_log("C2", "query", 0, shipment_id="S-PAIR")),
            ("call", call_log("C2", "query", 30, shipment_id="S-PAIR")),
        ],
    )
    outcome = await process(pipeline(pool, settings), pair)
    assert dict(outcome.alerts) == {("complaints", "P2"): 1}
    later = records(settings, [("call", call_log("C1", "query", 60, shipment_id="S-LONE"))])
    assert dict((await process(pipeline(pool, settings), later)).alerts) == {("complaints", "P2"): 1}


# --- issue 17's defects, through Postgres ------------------------------------------------------------


@pytest.mark.parametrize("split", [[3], [1, 1, 1], [2, 1], [1, 2]], ids=["one batch", "one each", "2+1", "1+2"])
async def test_a_superseded_milestone_is_never_notified_whatever_the_batches(pool, settings, split):
    """created, then delivered (+10 h), then out_for_delivery (+8 h), published in quick succession."""
    events = [
        shipment_event("S-SUP", "created", 0),
        shipment_event("S-SUP", "delivered", 600),
        shipment_event("S-SUP", "out_for_delivery", 480),
    ]
    batch = records(settings, [("shipment", e) for e in events])
    for size in split:
        await process(pipeline(pool, settings), batch[:size])
        batch = batch[size:]
    kinds = [r["kind"] for r in await pool.fetch("SELECT kind FROM customer_notifications")]
    assert kinds == ["delivered"]


async def test_a_carrier_first_damage_is_told_to_the_customer_once_known(pool, settings):
    await pool.execute("INSERT INTO customers (customer_id, tier) VALUES ('C-KEY', 'key')")
    damage = carrier_update("S-CF", "exception", 0, exception_code="damaged")
    delay = carrier_update("S-CF", "in_transit", 5, eta="2026-12-01T00:00:00Z")
    created = shipment_event("S-CF", "created", 10, customer_id="C-KEY", promised_delivery_at="2026-11-28T00:00:00Z")
    await process(pipeline(pool, settings), records(settings, [("carrier", damage)]))
    assert await pool.fetchval("SELECT count(*) FROM customer_notifications") == 0
    await process(pipeline(pool, settings), records(settings, [("carrier", delay), ("shipment", created)]))
    notes = await pool.fetch("SELECT kind, source_event_id, customer_id FROM customer_notifications ORDER BY kind")
    assert [(n["kind"], n["source_event_id"], n["customer_id"]) for n in notes] == [
        ("delay", created["event_id"], "C-KEY"),  # the ETA past the promise fires when the promise arrives
        ("exception", damage["event_id"], "C-KEY"),  # owed since the carrier's report, written once known
    ]
    tasks = await pool.fetch(
        "SELECT department, severity, customer_id FROM coordination_tasks "
        "WHERE source_event_id = $1 ORDER BY department",
        damage["event_id"],
    )
    assert [tuple(t) for t in tasks] == [("claims", "P1", "C-KEY"), ("key_accounts", "P1", "C-KEY")]
    # a redelivered batch changes nothing
    await process(pipeline(pool, settings), records(settings, [("carrier", delay), ("shipment", created)]))
    assert await pool.fetchval("SELECT count(*) FROM customer_notifications") == 2


async def test_the_first_copy_in_partition_order_wins_when_two_batches_are_in_flight(pool, settings):
    """An event_id's original late in one batch, a conflicting copy early in the next, both batches
    stored at once (as the consumer does): the original is processed and the copy dead-lettered,
    every time. Before the claims were ordered, the copy's INSERT often reached the inbox first."""
    topic, rounds, filler = settings.topic_call_logs, 12, 300
    p = pipeline(pool, settings)
    batches = InboundBatches(lambda: p, depth=2, max_records=2 * filler)
    consumer, offset, originals = FakeConsumer(), 0, {}

    def polled(events: list[dict]) -> tuple:
        nonlocal offset
        out = tuple(
            ConsumerRecord(topic, 0, offset + i, 0, 0, b"C1", orjson.dumps(e), None, 2, 100, ())
            for i, e in enumerate(events)
        )
        offset += len(events)
        return out

    for _ in range(rounds):
        original = call_log("C1", "query")
        copy = {**original, "category": "complaint"}
        first = polled([call_log("C1", "query") for _ in range(filler)] + [original])
        second = polled([copy] + [call_log("C1", "query") for _ in range(filler)])
        originals[original["event_id"]] = (first[-1].offset, second[0].offset)
        await batches.handle(first, consumer)
        await batches.handle(second, consumer)
        await batches.settle(consumer)
    assert consumer.seeks == [], "no batch failed"
    async with pool.acquire() as conn:
        rows = await conn.fetch('SELECT event_id, "offset" FROM inbox WHERE event_id = ANY($1)', list(originals))
        claimed = dict(rows)
        dead = {
            r["source_offset"]
            for r in await conn.fetch("SELECT source_offset FROM dead_letters WHERE reason = 'conflicting_duplicate'")
        }
    assert claimed == {event_id: first for event_id, (first, _copy) in originals.items()}
    assert dead == {copy for _first, copy in originals.values()}
