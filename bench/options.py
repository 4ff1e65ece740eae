"""The knobs of one benchmark run, and the --small preset for CI."""

from __future__ import annotations

import os
from dataclasses import dataclass, field, replace
from pathlib import Path

RESULTS_DIR = Path(__file__).resolve().parent / "results"
DEFAULT_OUT = RESULTS_DIR / "latest.json"
TOPIC_PARTITIONS = 6  # per inbound topic, in every phase


def default_hub_workers() -> int:
    """One per core this process may use, but no more than the partitions of a topic: with range
    assignment a worker beyond them gets none."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, min(cores, TOPIC_PARTITIONS))


@dataclass(frozen=True)
class Options:
    events: int = 50_000  # drained by the floor and the hub
    naive_events: int = 5_000  # the naive pipeline manages ~1,000/s: its rate comes from fewer events
    repeat: int = 3
    latency_rate: float = 2_000.0  # events/s offered in the fixed-rate latency runs
    latency_seconds: float = 30.0
    # The second latency run (and the soak) offers this share of the hub's measured maximum for the
    # same traffic: its drain rate on task events (`hub_task_eps`).
    half_max_share: float = 0.5
    # A cap on that rate: a small drain lands in one or two commits, and a rate timed between
    # so few commits is meaningless (the CI preset once offered 79,000/s from it).
    half_max_cap: float | None = None
    soak_minutes: float = 0.0  # 0: no soak
    # Events/s offered during the soak; None: latency_rate. A leak shows only in a run the hub (and the
    # shared broker) can sustain: at half the maximum the 2-core box is saturated and backlog grows.
    soak_rate: float | None = None
    # `hub run --workers`: one process per core, as an operator would run the hub on this box. The
    # hub is also drained as one process (`hub_1`), since floor and naive are single processes.
    hub_workers: int = field(default_factory=default_hub_workers)
    seed: int = 7
    out: Path = DEFAULT_OUT
    keep_work_dir: bool = False
    preset: str = "full"

    def check(self) -> None:
        if self.events < 6_000 or self.naive_events < 200:
            raise ValueError(
                "use at least 6,000 events (--events) and 200 naive events (--naive-events): "
                "fewer fit in one or two batches and cannot be timed"
            )
        if self.naive_events > self.events:
            raise ValueError("--naive-events takes a prefix of the workload: make it at most --events")
        if self.repeat < 1 or self.latency_rate <= 0 or self.latency_seconds <= 0 or self.soak_minutes < 0:
            raise ValueError("--repeat, --latency-rate and --latency-seconds must be positive, --soak-minutes >= 0")
        if not 1 <= self.hub_workers <= TOPIC_PARTITIONS:
            raise ValueError(f"--hub-workers must be between 1 and {TOPIC_PARTITIONS} (the partitions of a topic)")
        if self.soak_rate is not None and self.soak_rate <= 0:
            raise ValueError("--soak-rate must be positive")
        if 0 < self.soak_minutes < 2:
            raise ValueError("--soak-minutes must be at least 2 to compare the first and the last minute")


def small(options: Options) -> Options:
    """CI preset: finishes in well under two minutes; says nothing about speed."""
    return replace(
        options,
        events=6_000,
        naive_events=500,
        repeat=1,
        latency_rate=500.0,
        latency_seconds=5.0,
        soak_minutes=0.0,
        half_max_cap=1_000.0,
        preset="small",
    )
