"""The batch store alone: `apply_batch` over the drain workload, one connection, no broker.

    python -m bench.store_only [EVENTS] [--tree PATH] [--workload drain|tasks] [--repeat N]

Decodes EVENTS events of the benchmark's workload once, then applies them in batches of 500, one
transaction each, to a fresh migrated database on an embedded PostgreSQL 18, and prints events/s,
the time spent waiting on Postgres and the statements that took it. `--tree` runs another
checkout's `hub` (a `git worktree` of an older commit with the same layout: `hub/store/batch.py`,
`hub/core/`), so two commits compare on one box within minutes; the drain benchmark's spread on a
shared 2-core box (+-15 %) hides differences of that size. Used for bench/README.md's comparison
of c8675a5, 0b3518b and later commits (older trees need their own imports: see git history).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BATCH = 500


class _Timed:
    """The connection, with the time each statement waited for Postgres added up by its start."""

    def __init__(self, conn: Any, waits: dict[str, float]) -> None:
        self._conn, self._waits = conn, waits

    def __getattr__(self, name: str) -> Any:
        method = getattr(self._conn, name)
        if name not in ("fetch", "execute", "fetchrow", "fetchval", "copy_records_to_table"):
            return method

        async def timed(*args: Any, **kwargs: Any) -> Any:
            began = time.perf_counter()
            try:
                return await method(*args, **kwargs)
            finally:
                key = " ".join(str(args[0]).split())[:60] if args else name
                self._waits[key] = self._waits.get(key, 0.0) + time.perf_counter() - began

        return timed


async def run(events: int, workload: str, repeat: int) -> None:
    import asyncpg

    from bench.services import prepare_hub_database, topic_of
    from bench.workload import drain_workload, task_workload
    from hub.config import Settings
    from hub.core.decoding import Accepted, Record, decode_record
    from hub.core.rules import load_rules
    from hub.dev.databases import scratch_database
    from hub.dev.embedded import start_postgres
    from hub.store.batch import apply_batch

    build = task_workload if workload == "tasks" else drain_workload
    messages = build(7, events, datetime(2026, 11, 27, tzinfo=UTC))
    settings = Settings(_env_file=None)
    models = {topic: stream.model for topic, stream in settings.streams.items()}
    records = [Record(topic_of(settings, m.kind), 0, i, m.key, m.value) for i, m in enumerate(messages)]
    accepted = [a for r in records if isinstance(a := decode_record(r, models[r.topic], 1 << 20), Accepted)]
    rules, destinations = load_rules(), settings.destinations
    with tempfile.TemporaryDirectory(prefix="hub-store-only-") as work, start_postgres(Path(work) / "pg") as pg:
        for attempt in range(1, repeat + 1):
            async with scratch_database(pg.admin_dsn, "store_only") as dsn:
                await prepare_hub_database(dsn, 7)
                conn = await asyncpg.connect(dsn)
                try:
                    waits: dict[str, float] = {}
                    timed, per_batch = _Timed(conn, waits), []
                    began = time.perf_counter()
                    for i in range(0, len(accepted), BATCH):
                        batch_began = time.perf_counter()
                        transaction = conn.transaction()
                        await transaction.start()
                        await apply_batch(timed, accepted[i : i + BATCH], [], rules, destinations)
                        committing = time.perf_counter()
                        await transaction.commit()
                        waits["COMMIT"] = waits.get("COMMIT", 0.0) + time.perf_counter() - committing
                        per_batch.append(time.perf_counter() - batch_began)
                    elapsed = time.perf_counter() - began
                finally:
                    await conn.close()
            print(
                f"run {attempt}: {len(accepted) / elapsed:,.0f} events/s, batch p50 "
                f"{statistics.median(per_batch) * 1000:.1f} ms, waiting on Postgres {sum(waits.values()):.2f} s "
                f"of {elapsed:.2f} s"
            )
            for statement, seconds in sorted(waits.items(), key=lambda kv: -kv[1])[:10]:
                print(f"    {seconds:6.3f} s  {statement}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("events", type=int, nargs="?", default=40_000)
    parser.add_argument("--tree", type=Path, help="another checkout whose hub/ to run (default: this one)")
    parser.add_argument("--workload", choices=("drain", "tasks"), default="drain")
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    if options.tree:
        sys.path.insert(0, str(options.tree.resolve()))
    asyncio.run(run(options.events, options.workload, options.repeat))


if __name__ == "__main__":
    main()
