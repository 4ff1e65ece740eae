"""The paced producer of the latency and soak runs, as its own process (its CPU is not the hub's).

Sends `rate` task events per second (bench.workload.task_events) for `seconds`, each with its own
send(), and records the wall-clock time just before each send() by event_id. Prints one JSON line
with what it did; writes "event_id<TAB>send time" lines to `out` when given.
Run by the benchmark: `python -m bench.paced '<PacedConfig JSON>'`.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time
from dataclasses import asdict, dataclass
from datetime import datetime

from aiokafka import AIOKafkaProducer

from bench.workload import task_events

TICK_S = 0.001
SETTLE_EVERY = 5_000  # sends between clearing acknowledged futures (bounded memory on long soaks)


@dataclass(frozen=True)
class PacedConfig:
    bootstrap: str
    topics: dict[str, str]  # kind -> topic
    rate: float
    seconds: float
    seed: int
    start: str  # simulated time of the first event (RFC 3339)
    out: str | None = None

    def to_arg(self) -> str:
        return json.dumps(asdict(self))


async def send_paced(config: PacedConfig) -> tuple[dict, list[tuple[str, float]]]:
    """Send the events on schedule; returns what happened and (event_id, send time) when recording."""
    total = round(config.rate * config.seconds)
    events = task_events(config.seed, datetime.fromisoformat(config.start), config.rate)
    producer = AIOKafkaProducer(bootstrap_servers=config.bootstrap, acks="all", enable_idempotence=False, linger_ms=5)
    await producer.start()
    sent: list[tuple[str, float]] = []
    pending: list[asyncio.Future] = []
    loop = asyncio.get_running_loop()
    behind_max = 0.0
    try:
        began = loop.time()
        index = 0
        while index < total:
            due = min(total, int((loop.time() - began) * config.rate) + 1)
            behind_max = max(behind_max, (due - index - 1) / config.rate)
            while index < due:
                message = next(events)
                at = time.time()
                pending.append(await producer.send(config.topics[message.kind], message.value, key=message.key))
                if config.out:
                    sent.append((message.event_id, at))
                index += 1
                if index % SETTLE_EVERY == 0:
                    pending = _settle(pending)
            await asyncio.sleep(TICK_S)
        await asyncio.gather(*pending)
        elapsed = loop.time() - began
    finally:
        await producer.stop()
    return {
        "sent": total,
        "elapsed_s": round(elapsed, 3),
        "achieved_rate": round(total / elapsed, 1),
        "max_behind_s": round(behind_max, 3),
    }, sent


def _settle(pending: list[asyncio.Future]) -> list[asyncio.Future]:
    for future in pending:
        if future.done():
            future.result()  # a failed delivery ends the run with its error
    return [f for f in pending if not f.done()]


def main() -> None:
    if len(sys.argv) != 2:
        raise SystemExit("usage: python -m bench.paced '<PacedConfig as JSON>' (bench starts this itself)")
    config = PacedConfig(**json.loads(sys.argv[1]))
    summary, sent = asyncio.run(send_paced(config))
    if config.out:
        with open(config.out, "w") as f:
            f.writelines(f"{event_id}\t{at:.6f}\n" for event_id, at in sent)
    print(json.dumps(summary), flush=True)


if __name__ == "__main__":
    main()
