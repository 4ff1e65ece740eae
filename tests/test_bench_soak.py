"""The soak's verdict from its samples: RSS in minute 1 against the last minute, and the batch
sizes beside it (what the hub holds in flight grows with them)."""

from __future__ import annotations

from bench.latency import soak_summary


def _sample(t_s: float, rss_mb: float, records: float | None, batches: float | None) -> dict:
    sample = {
        "t_s": t_s,
        "rss_mb": rss_mb,
        "hwm_mb": rss_mb,
        "processed": int(t_s * 2000),
        "workers_rss_mb": [rss_mb - 50, rss_mb - 60],
    }
    if batches is not None:
        sample.update(batch_records=records, batches=batches)
    return sample


def test_minute_one_against_the_last_minute_with_batch_sizes() -> None:
    # 10 batches of 20 records in minute 1; 10 of 400 in the last minute.
    samples = [
        _sample(0, 100, 0, 0),
        _sample(50, 104, 200, 10),
        _sample(540, 110, 5000, 100),
        _sample(590, 112, 9000, 110),
    ]
    summary = soak_summary(samples, rate=2000, minutes=10, producer={})
    assert summary["rss_minute1_mb"] == 104 and summary["rss_last_minute_mb"] == 112
    assert summary["rss_growth_ratio"] == round(112 / 104, 3)
    assert summary["worker_rss_growth_ratio"] == round(52 / 44, 3)  # the worker that grew most (44 -> 52 MB)
    assert summary["batch_mean_minute1"] == 20.0
    assert summary["batch_mean_last_minute"] == 400.0
    assert summary["kept_up"]


def test_samples_without_batch_counts_are_left_out_and_no_batches_give_none() -> None:
    # The middle sample of minute 1 found a worker too busy to answer: no counts, skipped.
    samples = [
        _sample(0, 100, 0, 0),
        _sample(30, 101, None, None),
        _sample(50, 101, 300, 3),
        _sample(550, 101, 900, 9),
        _sample(590, 101, 900, 9),
    ]
    summary = soak_summary(samples, rate=2000, minutes=10, producer={})
    assert summary["batch_mean_minute1"] == 100.0
    assert summary["batch_mean_last_minute"] is None  # no batch stored in the last minute
