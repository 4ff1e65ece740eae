"""Through the real broker: the hub polls HUB_BATCH_STEADY_RECORDS at a time, switches to
HUB_BATCH_MAX_RECORDS once full polls add up to a backlog, and returns to steady polls when
it has caught up. Every record is stored exactly once either way."""

from __future__ import annotations

from hub.inbound import BACKLOG_POLLS
from tests.support import publish, running_hub, shipment_event, wait_for_count

STEADY, MAXIMUM, BACKLOG = 5, 20, 300


async def test_poll_size_follows_the_backlog(hub_settings):
    s = hub_settings.model_copy(update={"batch_steady_records": STEADY, "batch_max_records": MAXIMUM})
    dsn = s.database_url.get_secret_value()
    sizes: list[int] = []
    await publish(s, shipments=[shipment_event(f"P{i}", "created", i / 60) for i in range(BACKLOG)])
    async with running_hub(s, on_batch=lambda outcome, _elapsed: sizes.append(outcome.records)):
        await wait_for_count(dsn, "SELECT count(*) FROM inbox", BACKLOG)
        caught_up = len(sizes)
        await publish(s, shipments=[shipment_event(f"Q{i}", "created", 10 + i) for i in range(3)])
        await wait_for_count(dsn, "SELECT count(*) FROM inbox", BACKLOG + 3)
    assert sum(sizes) == BACKLOG + 3
    assert max(sizes) <= MAXIMUM
    first = sizes[: BACKLOG_POLLS * MAXIMUM // STEADY]
    assert max(first) <= STEADY, f"a backlog must first be seen in steady polls: {first}"
    assert max(sizes[:caught_up]) > STEADY, f"a backlog of {BACKLOG} was never polled in larger batches: {sizes}"
    assert max(sizes[caught_up:]) <= STEADY, f"after catching up, polls are steady again: {sizes[caught_up:]}"
