"""What the two reference pipelines (floor and naive) share: their table, their SQL, their settings.

Both write one row per event into `bench_events` and re-publish the events that need attention
(bench.workload.needs_attention) to the exceptions queue, the least a hub must do.
"""

from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass

CREATE_EVENTS_TABLE = """
CREATE TABLE bench_events (
    event_id      text PRIMARY KEY,
    topic         text NOT NULL,
    key           text NOT NULL,
    status        text NOT NULL,
    occurred_at   timestamptz NOT NULL,
    payload       jsonb NOT NULL
)
"""

INSERT_EVENTS_BATCH = """
INSERT INTO bench_events (event_id, topic, key, status, occurred_at, payload)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::timestamptz[], $6::jsonb[])
ON CONFLICT (event_id) DO NOTHING
"""

INSERT_EVENT = """
INSERT INTO bench_events (event_id, topic, key, status, occurred_at, payload)
VALUES ($1, $2, $3, $4, $5, $6)
ON CONFLICT (event_id) DO NOTHING
"""


@dataclass(frozen=True)
class PipelineConfig:
    """Handed to a baseline process as one JSON argument."""

    bootstrap: str
    dsn: str
    topics: dict[str, str]  # kind (hub.dev.simulator SHIPMENT/CARRIER/CALL) -> topic
    attention_topic: str
    group_id: str
    batch_max_records: int = 1000

    def to_arg(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_argv(cls) -> PipelineConfig:
        if len(sys.argv) != 2:
            raise SystemExit(f"usage: python -m {sys.argv[0]} '<PipelineConfig as JSON>' (bench starts this itself)")
        return cls(**json.loads(sys.argv[1]))
