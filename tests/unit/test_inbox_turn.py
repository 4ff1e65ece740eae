"""InboxTurn: a batch claims its inbox rows only after the batch read before it claimed (or ended)."""

from __future__ import annotations

import asyncio

from hub.pipeline import InboxTurn


async def test_each_claim_waits_for_the_one_read_before_it() -> None:
    first = InboxTurn()
    second = InboxTurn(first)
    third = InboxTurn(second)
    order: list[str] = []

    async def claim(name: str, turn: InboxTurn) -> None:
        await turn.wait()
        order.append(name)
        turn.claimed()

    tasks = [asyncio.create_task(claim("third", third)), asyncio.create_task(claim("second", second))]
    await asyncio.sleep(0.01)
    assert order == [], "nobody claims before the first batch has"
    await claim("first", first)
    await asyncio.gather(*tasks)
    assert order == ["first", "second", "third"]


async def test_a_batch_that_ends_without_claiming_lets_the_next_one_go() -> None:
    failed = InboxTurn()
    later = InboxTurn(failed)
    waiting = asyncio.create_task(later.wait())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    failed.claimed()  # what InboundBatches does when the batch's task ends, however it ends
    await asyncio.wait_for(waiting, 1)


async def test_the_first_batch_and_a_turn_without_a_predecessor_never_wait() -> None:
    await asyncio.wait_for(InboxTurn().wait(), 1)
