"""The outbox relay against real Postgres: a fake producer for the Kafka side (it records what the
relay hands it and acknowledges when the test says so), and once against the real broker.

What the relay promises: rows are published in id order per partition and marked sent only once
acknowledged; batch k+1 is published while batch k waits for its acknowledgement (and is not read
twice); a failed send leaves its rows unsent and they are read and published again; a stop
publishes what is still unsent.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from types import SimpleNamespace

import asyncpg
import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import RequestTimedOutError
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.record.default_records import DefaultRecordBatch

from hub.kafka import ensure_topics, producer_kwargs
from hub.migrate import apply_migrations
from hub.relay import OutboxRelay

TOPICS = ("alerts.exceptions.test", "alerts.complaints.test")
PARTITIONS = (0, 1, 2)
WAIT_S = 15.0


@dataclass
class Sent:
    topic: str
    partition: int
    key: bytes | None
    value: bytes | None
    headers: list
    call: int  # which send_batch call carried it


@dataclass
class FakeProducer:
    """Enough of AIOKafkaProducer for the relay: partitions_for, send_batch, and the accumulator's
    settings the relay copies into its record batch builders."""

    auto_ack: bool = True
    fail_calls: set[int] = field(default_factory=set)  # these send_batch calls fail (their future)
    sent: list[Sent] = field(default_factory=list)
    pending: list[tuple[set[int], asyncio.Future]] = field(default_factory=list)  # (ids it carries, future)
    calls: int = 0
    _message_accumulator: SimpleNamespace = field(
        default_factory=lambda: SimpleNamespace(_compression_type=0, _txn_manager=None)
    )

    async def partitions_for(self, topic: str) -> set[int]:
        return set(PARTITIONS)

    async def send_batch(self, builder, topic: str, *, partition: int) -> asyncio.Future:
        self.calls += 1
        ids = set()
        for record in DefaultRecordBatch(bytes(builder._build())):
            self.sent.append(Sent(topic, partition, record.key, record.value, list(record.headers), self.calls))
            ids.add(orjson.loads(record.value)["id"] if record.value else None)
        future = asyncio.get_running_loop().create_future()
        if self.calls in self.fail_calls:
            future.set_exception(RequestTimedOutError())
        elif self.auto_ack:
            future.set_result(None)
        else:
            self.pending.append((ids, future))
        return future

    def ack(self, ids: set[int] | None = None) -> None:
        """Acknowledge the record batches that carry rows of `ids` (None: all)."""
        self._settle(ids, None)

    def refuse(self, ids: set[int]) -> None:
        """Fail the record batches that carry rows of `ids`, as aiokafka does once it gives up."""
        self._settle(ids, RequestTimedOutError())

    def _settle(self, ids: set[int] | None, error: Exception | None) -> None:
        keep = []
        for carried, future in self.pending:
            if ids is None or carried & ids:
                if not future.done():
                    future.set_result(None) if error is None else future.set_exception(error)
            else:
                keep.append((carried, future))
        self.pending = keep

    def ids(self) -> list[int]:
        """The outbox ids of what was handed over (each row's value names its id), in order."""
        return [orjson.loads(s.value)["id"] for s in self.sent if s.value is not None]


@pytest.fixture
async def conn(database_url):
    await apply_migrations(database_url)
    conn = await asyncpg.connect(database_url)
    yield conn
    await conn.close()


async def insert(conn, count: int, *, notify: bool = True, keys: int = 5, first: int = 1, topics=TOPICS) -> None:
    """`count` rows as the store writes them (COPY, then one NOTIFY); row i names itself in its value."""
    rows = []
    for i in range(first, first + count):
        message_id = uuid.uuid4().hex
        rows.append(
            (
                topics[i % len(topics)],
                f"S{i % keys}".encode(),
                orjson.dumps({"id": i}),
                orjson.dumps([["hub.alert_id", message_id.encode().hex()]]).decode(),
                message_id,
            )
        )
    async with conn.transaction():
        await conn.copy_records_to_table(
            "outbox", records=rows, columns=("topic", "key", "value", "headers", "message_id")
        )
        if notify:
            await conn.execute("SELECT pg_notify('hub_outbox', '')")


async def unsent(conn) -> list[int]:
    return [r["id"] for r in await conn.fetch("SELECT id FROM outbox WHERE sent_at IS NULL ORDER BY id")]


async def until(condition, what: str, timeout_s: float = WAIT_S) -> None:
    deadline = asyncio.get_running_loop().time() + timeout_s
    while not await condition():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def relay_of(database_url):
    """Build a relay and run it; stops it (and waits) at the end of the test."""
    tasks: list[tuple[OutboxRelay, asyncio.Task]] = []

    def start(producer, **kwargs) -> tuple[OutboxRelay, asyncio.Task]:
        relay = OutboxRelay(database_url, producer, **{"poll_interval_s": 0.2, **kwargs})
        tasks.append((relay, asyncio.create_task(relay.run())))
        return tasks[-1]

    yield start
    for relay, task in tasks:
        relay.stop()
        relay.producer.auto_ack = True  # the stop drains the outbox: let it
        relay.producer.ack()
        await asyncio.wait_for(task, WAIT_S)


@pytest.mark.postgres
async def test_rows_go_out_in_id_order_per_partition_with_their_headers_and_are_marked_sent(conn, relay_of):
    await insert(conn, 40)
    producer = FakeProducer()
    relay, _task = relay_of(producer, batch_size=7)

    async def all_sent():
        return not await unsent(conn)

    await until(all_sent, "every row marked sent")
    assert sorted(producer.ids()) == list(range(1, 41))  # each row once
    by_partition = defaultdict(list)
    for s in producer.sent:
        by_partition[(s.topic, s.partition)].append(orjson.loads(s.value)["id"])
        assert s.partition == DefaultPartitioner()(s.key, list(PARTITIONS), list(PARTITIONS))
        ((name, value),) = s.headers
        assert name == "hub.alert_id" and len(value) == 32
    assert all(ids == sorted(ids) for ids in by_partition.values())
    # one record batch per partition per relay batch: 40 rows in batches of 7 touch at most 6 each
    assert producer.calls <= 6 * 6
    assert relay.published == 40


@pytest.mark.postgres
async def test_batch_k_plus_1_is_published_while_k_awaits_its_ack_and_is_not_read_twice(conn, relay_of):
    await insert(conn, 6)
    producer = FakeProducer(auto_ack=False)
    relay, _task = relay_of(producer, batch_size=3)

    async def handed_over(n):
        async def check():
            return len(producer.sent) == n

        return check

    await until(await handed_over(6), "batches 1 and 2 handed to the producer before any acknowledgement")
    assert sorted(producer.ids()[:3]) == [1, 2, 3] and sorted(producer.ids()[3:]) == [4, 5, 6]
    await asyncio.sleep(0.3)  # nothing acknowledged: nothing marked, nothing read again
    assert await unsent(conn) == [1, 2, 3, 4, 5, 6]
    assert len(producer.sent) == 6

    await insert(conn, 3, first=7)  # committed while batches 1 and 2 are in flight
    producer.ack({1, 2, 3})

    async def first_marked():
        return await unsent(conn) == [4, 5, 6, 7, 8, 9]

    await until(first_marked, "batch 1 marked once acknowledged, batch 2 still in flight")
    await until(await handed_over(9), "batch 3 read and handed over while batch 2 is unacknowledged")
    assert sorted(producer.ids()[6:]) == [7, 8, 9]  # batch 2 (in flight, unsent) was left out of the read
    await asyncio.sleep(0.3)
    assert await unsent(conn) == [4, 5, 6, 7, 8, 9] and len(producer.sent) == 9

    async def all_sent():
        producer.ack()
        return not await unsent(conn)

    await until(all_sent, "everything marked")
    assert sorted(producer.ids()) == list(range(1, 10))  # nothing published twice
    assert relay.published == 9


@pytest.mark.postgres
async def test_at_most_max_in_flight_batches_wait_for_the_broker(conn, relay_of):
    await insert(conn, 40, topics=TOPICS[:1], keys=1)
    producer = FakeProducer(auto_ack=False)
    _relay, _task = relay_of(producer, batch_size=2, max_in_flight=2)

    async def calls(n):
        async def check():
            return producer.calls == n

        return check

    await until(await calls(2), "two batches in flight")
    await asyncio.sleep(0.3)
    assert producer.calls == 2 and producer.ids() == [1, 2, 3, 4, 5, 6]  # [1, 2], then a full read grew
    producer.ack({1})
    await until(await calls(3), "a third once the first is acknowledged")
    assert producer.ids()[6:] == list(range(7, 15))
    await asyncio.sleep(0.3)
    assert producer.calls == 3 and await unsent(conn) == list(range(3, 41))


@pytest.mark.postgres
async def test_a_refused_batch_leaves_its_rows_unsent_and_they_are_published_again(conn, relay_of):
    await insert(conn, 4, topics=TOPICS[:1], keys=1)  # one partition: one record batch per relay batch
    producer = FakeProducer(auto_ack=False)
    relay, _task = relay_of(producer, batch_size=2)

    async def handed_over(n):
        async def check():
            return len(producer.sent) >= n

        return check

    await until(await handed_over(4), "batches [1, 2] and [3, 4] handed over")
    producer.refuse({1, 2})
    await until(await handed_over(8), "the refused rows, and those behind them, handed over again")
    # Nothing was marked: [1, 2] was refused, and [3, 4], in flight behind it, is read again with it.
    assert await unsent(conn) == [1, 2, 3, 4]
    assert producer.ids()[4:] == [1, 2, 3, 4]  # again, from the first unsent row, in order

    async def all_sent():
        producer.ack()
        return not await unsent(conn)

    await until(all_sent, "every row marked after the retry")
    assert relay.published == 4


@pytest.mark.postgres
async def test_what_the_broker_took_before_a_refused_batch_is_marked_and_not_sent_again(conn, relay_of):
    await insert(conn, 6, topics=TOPICS[:1], keys=1)
    producer = FakeProducer(auto_ack=False)
    _relay, _task = relay_of(producer, batch_size=2)

    async def handed_over(n):
        async def check():
            return len(producer.sent) >= n

        return check

    await until(await handed_over(6), "[1, 2] and then, the read being full, [3, 4, 5, 6] in flight")
    assert [s.call for s in producer.sent] == [1, 1, 2, 2, 2, 2]
    producer.refuse({3})  # the second refused while the first still waits: nothing can be marked yet
    await asyncio.sleep(0.3)
    assert await unsent(conn) == [1, 2, 3, 4, 5, 6]
    producer.ack({1, 2})  # the first acknowledged: it is marked, then the refusal ends this lead

    async def first_marked():
        return await unsent(conn) == [3, 4, 5, 6]

    await until(first_marked, "the acknowledged batch marked")
    await until(await handed_over(10), "the refused batch published again")
    assert producer.ids()[6:10] == [3, 4, 5, 6]

    async def all_sent():
        producer.ack()
        return not await unsent(conn)

    await until(all_sent, "every row marked after the retry")
    assert sorted(producer.ids()) == [1, 2, 3, 3, 4, 4, 5, 5, 6, 6]


@pytest.mark.postgres
async def test_a_backlog_is_read_in_growing_batches_and_a_caught_up_relay_reads_small_ones(conn, relay_of):
    await insert(conn, 200, topics=TOPICS[:1], keys=1)
    producer = FakeProducer()
    _relay, _task = relay_of(producer, batch_size=5)

    async def all_sent():
        return not await unsent(conn)

    await until(all_sent, "the backlog sent")
    sizes = [sum(1 for s in producer.sent if s.call == call) for call in range(1, producer.calls + 1)]
    assert sizes[:5] == [5, 10, 20, 40, 40]  # doubling while reads come back full, up to 8x batch_size
    assert sum(sizes) == 200
    await insert(conn, 3, topics=TOPICS[:1], keys=1, first=201)
    await until(all_sent, "three more rows sent")
    assert [s.call for s in producer.sent[-3:]] == [producer.calls] * 3


@pytest.mark.postgres
async def test_a_row_committed_late_below_rows_already_read_is_published_too(conn, database_url, relay_of):
    """Another worker's transaction takes an id, then commits after later ids were read and published
    (here while a backlog is read on after the rows in flight)."""
    late = await asyncpg.connect(database_url)
    try:
        transaction = late.transaction()
        await transaction.start()
        await insert(late, 1, notify=False, first=1, topics=TOPICS[:1], keys=1)  # takes id 1, not yet visible
        await insert(conn, 60, first=2, topics=TOPICS[:1], keys=1)
        producer = FakeProducer(auto_ack=False)
        _relay, _task = relay_of(producer, batch_size=4)

        async def read_on():
            producer.ack()
            return len(producer.sent) >= 30

        await until(read_on, "the relay reading on through the committed rows")
        await transaction.commit()
    finally:
        await late.close()

    async def all_sent():
        producer.ack()
        return not await unsent(conn)

    await until(all_sent, "the late row sent as well")
    assert sorted(producer.ids()) == list(range(1, 62))
    assert producer.ids().index(1) >= 30


@pytest.mark.postgres
async def test_stop_publishes_what_is_still_unsent_and_marks_it(conn, database_url):
    producer = FakeProducer()
    relay = OutboxRelay(database_url, producer, batch_size=5, poll_interval_s=60)
    task = asyncio.create_task(relay.run())
    await insert(conn, 3)

    async def first_sent():
        return not await unsent(conn)

    await until(first_sent, "the first rows sent on NOTIFY")
    await insert(conn, 12, notify=False, first=4)  # no NOTIFY, and the next poll is a minute away
    await asyncio.sleep(0.2)
    assert len(await unsent(conn)) == 12
    relay.stop()
    await asyncio.wait_for(task, WAIT_S)
    assert await unsent(conn) == []
    assert sorted(producer.ids()) == list(range(1, 16))
    assert relay.published == 15


@pytest.mark.postgres
async def test_only_one_relay_leads_per_database(conn, relay_of):
    first, second = FakeProducer(), FakeProducer()
    relay_of(first, batch_size=50)
    await asyncio.sleep(0.5)  # the first takes the leader lock
    relay_of(second, batch_size=50)
    await insert(conn, 30)

    async def all_sent():
        return not await unsent(conn)

    await until(all_sent, "every row sent")
    await asyncio.sleep(0.3)
    assert sorted(first.ids()) == list(range(1, 31)) and second.sent == []


async def test_relay_through_the_real_broker(conn, hub_settings, database_url):
    """Alerts, a tombstone dead letter and a record larger than a relay record batch all arrive once,
    on the partition the producer's own partitioner picks, in id order per partition."""
    settings = hub_settings
    await ensure_topics(settings)
    topic, dead = settings.topic_alerts_exceptions, settings.topic_dead_letter
    big = b"x" * 300_000
    rows = [
        (topic, f"S{i % 4}".encode(), orjson.dumps({"id": i}), [["hub.alert_id", f"a{i}".encode().hex()]])
        for i in range(1, 60)
    ]
    rows.append((dead, b"K", None, [["hub.reason", b"tombstone".hex()]]))
    rows.append((dead, b"K", big, [["hub.reason", b"oversized".hex()]]))
    rows.append((topic, b"S1", big, []))
    async with conn.transaction():
        await conn.copy_records_to_table(
            "outbox",
            columns=("topic", "key", "value", "headers", "message_id"),
            records=[(t, k, v, orjson.dumps(h).decode(), uuid.uuid4().hex) for t, k, v, h in rows],
        )
    producer = AIOKafkaProducer(**producer_kwargs(settings))
    await producer.start()
    relay = OutboxRelay(database_url, producer, batch_size=25, poll_interval_s=0.2, record_batch_bytes=200_000)
    task = asyncio.create_task(relay.run())
    try:

        async def all_sent():
            return not await unsent(conn)

        await until(all_sent, "every row acknowledged by the broker and marked", 60)
    finally:
        relay.stop()
        await asyncio.wait_for(task, WAIT_S)
        await producer.stop()

    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = [TopicPartition(t, p) for t in (topic, dead) for p in range(settings.topic_partitions)]
        consumer.assign(parts)
        got: list = []
        deadline = asyncio.get_running_loop().time() + 60
        while len(got) < len(rows) and asyncio.get_running_loop().time() < deadline:
            for records in (await consumer.getmany(timeout_ms=500)).values():
                got.extend(records)
    finally:
        await consumer.stop()
    assert len(got) == len(rows)
    partitions = list(range(settings.topic_partitions))
    by_partition = defaultdict(list)
    for r in got:
        assert r.partition == DefaultPartitioner()(r.key, partitions, partitions)
        if r.topic == topic and r.value != big:
            by_partition[r.partition].append(orjson.loads(r.value)["id"])
    assert sorted(i for ids in by_partition.values() for i in ids) == list(range(1, 60))
    assert all(ids == sorted(ids) for ids in by_partition.values())
    dead_letters = {r.value: dict(r.headers) for r in got if r.topic == dead}
    assert dead_letters == {None: {"hub.reason": b"tombstone"}, big: {"hub.reason": b"oversized"}}
    assert sum(1 for r in got if r.topic == topic and r.value == big) == 1
