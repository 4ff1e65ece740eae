"""How InboundBatches sizes its polls and commits them: steady polls while the hub keeps up, the
maximum through a backlog, offsets committed in order, nothing after a failed batch."""

from __future__ import annotations

import asyncio

from aiokafka.structs import ConsumerRecord

from hub.inbound import InboundBatches
from hub.pipeline import Stopping
from hub.store.batch import BatchOutcome
from tests.support import FakeConsumer

TOPIC = "shipment.events"


def poll(first: int, count: int, partition: int = 0) -> tuple:
    return tuple(
        ConsumerRecord(TOPIC, partition, offset, 0, 0, b"k", b"{}", None, 1, 2, ())
        for offset in range(first, first + count)
    )


class FakePipeline:
    """Records what was stored, one list of offsets per transaction; can fail chosen batches."""

    def __init__(self, fail_batch: int | None = None) -> None:
        self.stored: list[list[int]] = []
        self.fail_batch = fail_batch

    def decode(self, records):
        return list(records), []

    async def store(self, accepted, rejected, turn=None) -> BatchOutcome:
        await asyncio.sleep(0)  # let the next batch decode meanwhile, as Postgres I/O would
        if self.fail_batch is not None and len(self.stored) == self.fail_batch:
            self.stored.append([])
            raise Stopping("Postgres away")
        self.stored.append([r.offset for r in accepted])
        return BatchOutcome(processed=len(accepted))


async def handled(batches: InboundBatches, consumer: FakeConsumer, *polls: tuple) -> None:
    for records in polls:
        await batches.handle(records, consumer)
    await batches.settle(consumer)


async def test_polls_stay_steady_while_the_hub_keeps_up_and_commit_in_order():
    pipeline, consumer = FakePipeline(), FakeConsumer()
    batches = InboundBatches(lambda: pipeline, depth=2, max_records=10, steady_records=4)
    assert batches.poll_size == 4
    await handled(batches, consumer, poll(0, 4), poll(4, 3), poll(7, 4), poll(11, 1))
    assert batches.poll_size == 4  # full polls between short ones are bursts, not a backlog
    assert pipeline.stored == [[0, 1, 2, 3], [4, 5, 6], [7, 8, 9, 10], [11]]
    assert consumer.commits == [4, 7, 11, 12]


async def test_full_polls_adding_up_to_a_backlog_raise_the_poll_size_until_one_comes_back_short():
    pipeline, consumer = FakePipeline(), FakeConsumer()
    batches = InboundBatches(lambda: pipeline, depth=2, max_records=10, steady_records=4)
    sizes = []
    offset = 0
    for count in (4, 4, 4, 4, 4, 10, 10, 7, 4):
        await batches.handle(poll(offset, count), consumer)
        offset += count
        sizes.append(batches.poll_size)
    await batches.settle(consumer)
    # 20 records (BACKLOG_POLLS x max_records) in full polls make a backlog; the short poll of 7 ends it.
    assert sizes == [4, 4, 4, 4, 10, 10, 10, 4, 4]
    assert consumer.commits == sorted(consumer.commits) and consumer.commits[-1] == offset


async def test_steady_records_zero_polls_the_maximum():
    batches = InboundBatches(lambda: FakePipeline(), depth=2, max_records=10, steady_records=0)
    assert batches.poll_size == 10


async def test_a_failed_batch_is_read_again_and_nothing_after_it_is_committed():
    pipeline, consumer = FakePipeline(fail_batch=1), FakeConsumer()
    batches = InboundBatches(lambda: pipeline, depth=2, max_records=10, steady_records=3)
    await handled(batches, consumer, poll(0, 3), poll(3, 3), poll(6, 3))
    assert consumer.commits == [3]
    assert consumer.seeks and min(consumer.seeks) == 3  # from the failed batch on
