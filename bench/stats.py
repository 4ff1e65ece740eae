"""Percentiles, medians and spreads. Pure."""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import median


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0-100), linear between the closest ranks; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low, high = math.floor(rank), math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def latency_summary(latencies_ms: Sequence[float]) -> dict[str, float]:
    return {
        "p50_ms": round(percentile(latencies_ms, 50), 2),
        "p95_ms": round(percentile(latencies_ms, 95), 2),
        "p99_ms": round(percentile(latencies_ms, 99), 2),
        "max_ms": round(max(latencies_ms, default=math.nan), 2),
        "count": len(latencies_ms),
    }


def spread(values: Sequence[float]) -> dict[str, float]:
    """Median and min-max of the repeats."""
    clean = [v for v in values if v is not None and not math.isnan(v)]
    if not clean:
        return {"median": math.nan, "min": math.nan, "max": math.nan}
    return {"median": round(median(clean), 2), "min": round(min(clean), 2), "max": round(max(clean), 2)}


def windows(pairs: Sequence[tuple[float, float]], parts: int = 5) -> list[float]:
    """p99 of each of `parts` equal slices of a run, by send time: does latency drift?"""
    ordered = sorted(pairs)
    size = max(1, math.ceil(len(ordered) / parts))
    return [round(percentile([lat for _, lat in ordered[i : i + size]], 99), 2) for i in range(0, len(ordered), size)]
