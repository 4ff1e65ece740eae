"""One batch of Kafka records in, its effects committed to Postgres exactly once.

decode each record -> store.apply_batch in one transaction. Transient failures (Postgres
unreachable, deadlock, serialization) are retried with backoff for as long as it takes;
a record Postgres refuses for its data is isolated and dead-lettered as `unprocessable`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import asyncpg

from hub.core.decoding import Accepted, Record, Rejected, decode_record
from hub.core.outcome import BatchOutcome
from hub.core.rules import Rules
from hub.core.topics import Destinations
from hub.store.batch import apply_batch
from schemas.enums import DeadLetterReason
from schemas.inbound import InboundEvent

log = logging.getLogger("hub.pipeline")

# SQLSTATE classes that say "this data can never be stored", as opposed to "try again later".
_DATA_CLASSES = ("22", "23", "54")


class Stopping(Exception):
    """The hub is shutting down while a batch could not be stored; nothing was committed."""


class InboxTurn:
    """A batch's turn to claim its inbox rows: once the batch read before it has claimed its own.

    Batches are stored concurrently, and two copies of one event_id in two batches would race
    in the inbox's unique index, so the later copy could win. Claiming in read order makes the
    later claim wait on the earlier batch's uncommitted row and find the conflict: the first copy
    in partition order is the one processed. Only the claims queue; the rest still overlaps.
    One order is left open: if the earlier transaction fails after its claim and is retried, the
    later copy can win meanwhile; either way one copy is processed and the other dead-lettered.
    """

    def __init__(self, previous: InboxTurn | None = None) -> None:
        self._previous = previous
        self._claimed = asyncio.Event()

    async def wait(self) -> None:
        if self._previous is not None:
            await self._previous._claimed.wait()
            self._previous = None  # the chain behind a claimed turn is not needed any more

    def claimed(self) -> None:
        """Called by the claim, and by InboundBatches when the batch's task ends however it ends
        (failed, cancelled, even before it ran): the next batch never waits on one that is gone."""
        self._claimed.set()


def is_data_error(exc: BaseException) -> bool:
    state = getattr(exc, "sqlstate", None) or ""
    return isinstance(exc, asyncpg.PostgresError) and state[:2] in _DATA_CLASSES


def is_transient(exc: BaseException) -> bool:
    """Worth retrying the same batch: the database or network is away, busy or in a conflict.

    Anything else is about the records (Postgres refusing their data, or the hub failing on
    them): retrying would block the partition forever, so the batch is split to find them.
    """
    if isinstance(exc, asyncpg.PostgresError):
        return not is_data_error(exc)
    return isinstance(exc, (OSError, asyncio.TimeoutError, asyncpg.InterfaceError))


@dataclass
class Pipeline:
    pool: asyncpg.Pool
    rules: Rules
    models: dict[str, type[InboundEvent]]  # topic -> model
    destinations: Destinations
    max_message_bytes: int
    backoff_max_s: float = 10.0
    stopping: Callable[[], bool] = lambda: False

    def decode(self, records: Sequence[Record]) -> tuple[list[Accepted], list[Rejected]]:
        accepted: list[Accepted] = []
        rejected: list[Rejected] = []
        for record in records:
            try:
                result = decode_record(record, self.models[record.topic], self.max_message_bytes)
            except Exception as exc:  # a record the decoder chokes on must not sink its batch
                log.exception("decoding failed on %s[%d]@%d", record.topic, record.partition, record.offset)
                result = Rejected(
                    record,
                    DeadLetterReason.UNPROCESSABLE,
                    type(exc).__name__,
                    f"the hub failed to decode the record ({type(exc).__name__}); see its log",
                )
            if isinstance(result, Accepted):
                accepted.append(result)
            else:
                rejected.append(result)
        return accepted, rejected

    async def store(
        self, accepted: list[Accepted], rejected: list[Rejected], turn: InboxTurn | None = None
    ) -> BatchOutcome:
        """Store one decoded batch: one transaction, retried until it commits or the hub stops.

        With a `turn`, its inbox claim waits for the batch read before it to claim first.
        """
        turn = turn or InboxTurn()
        await turn.wait()
        try:
            outcome = await self._with_retry(accepted, rejected, turn)
        except Stopping:
            raise
        except Exception as exc:  # _with_retry only lets non-transient errors out
            log.warning(
                "batch failed on its data (%s); storing its records one by one",
                type(exc).__name__,
                exc_info=not isinstance(exc, asyncpg.PostgresError),
            )
            outcome = await self._one_by_one(accepted, rejected, turn)
        outcome.records = len(accepted) + len(rejected)
        return outcome

    async def _with_retry(self, accepted: list[Accepted], rejected: list[Rejected], turn: InboxTurn) -> BatchOutcome:
        attempt = 0
        while True:
            try:
                return await self._transaction(accepted, rejected, turn)
            except Exception as exc:  # classified right below
                if not is_transient(exc):
                    raise
                attempt += 1
                await self._backoff(attempt, exc)

    async def _transaction(self, accepted: list[Accepted], rejected: list[Rejected], turn: InboxTurn) -> BatchOutcome:
        async with self.pool.acquire() as conn, conn.transaction():
            return await apply_batch(conn, accepted, rejected, self.rules, self.destinations, after_claim=turn.claimed)

    async def _backoff(self, attempt: int, exc: BaseException) -> None:
        if self.stopping():
            raise Stopping(f"stopping while Postgres is failing ({type(exc).__name__})") from exc
        delay = min(self.backoff_max_s, 0.2 * 2 ** min(attempt, 10)) * (0.5 + random.random() / 2)
        # Connection trouble is expected and self-explanatory; anything else is a bug worth a traceback.
        expected = isinstance(exc, (OSError, asyncio.TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError))
        log.warning(
            "cannot store batch (attempt %d: %s: %s); retrying in %.1fs",
            attempt,
            type(exc).__name__,
            _short(exc),
            delay,
            exc_info=exc if not expected and attempt % 10 == 1 else None,
        )
        deadline = time.monotonic() + delay
        while time.monotonic() < deadline and not self.stopping():
            await asyncio.sleep(min(0.1, delay))

    async def _one_by_one(self, accepted: list[Accepted], rejected: list[Rejected], turn: InboxTurn) -> BatchOutcome:
        total = BatchOutcome()
        total.merge(await self._with_retry([], rejected, turn))
        for item in accepted:
            try:
                total.merge(await self._with_retry([item], [], turn))
            except Stopping:
                raise
            except Exception as exc:  # noqa: BLE001 - _with_retry only lets non-transient errors out
                total.merge(await self._with_retry([], [_unprocessable(item, exc)], turn))
        return total


def _unprocessable(item: Accepted, exc: Exception) -> Rejected:
    # Only the error's class and SQLSTATE: its text could quote the event's personal data.
    if isinstance(exc, asyncpg.PostgresError):
        why = f"Postgres refused the event: {type(exc).__name__} (SQLSTATE {exc.sqlstate})"
    else:
        why = f"the hub could not process the event ({type(exc).__name__}); see the hub's log for the traceback"
    return Rejected(item.record, DeadLetterReason.UNPROCESSABLE, type(exc).__name__, why)


def _short(exc: BaseException) -> str:
    text = str(exc).splitlines()[0] if str(exc) else ""
    return text[:200]
