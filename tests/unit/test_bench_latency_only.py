"""`python -m bench latency`: medians of the repeats per rate, with the relay's share beside them."""

from __future__ import annotations

from bench.latency_only import _summary


def _run(db_p99: float, alert_p99: float, relay_p99: float) -> dict:
    def lat(p99: float) -> dict:
        return {"p50_ms": p99 / 3, "p95_ms": p99 / 1.5, "p99_ms": p99}

    return {
        "db": lat(db_p99),
        "commit": lat(db_p99 + 10),
        "alert": lat(alert_p99),
        "alert_after_commit": lat(relay_p99),
        "load_before": "1.0 1.0 1.0",
        "cpu_pct": {"pipeline": 50.0, "broker": 30.0, "postgres": 20.0, "box_busy": 120.0},
    }


def test_medians_of_the_repeats_and_alert_over_task() -> None:
    row = _summary(2000.0, [_run(80, 120, 40), _run(100, 300, 200), _run(90, 150, 60)])
    assert row["rate"] == 2000.0 and row["runs"] == 3
    assert row["db_p99_ms"] == 90 and row["alert_p99_ms"] == 150
    assert row["alert_over_task_p99"] == round(150 / 90, 2)
    assert row["alert_after_commit_p99_ms"] == 60
    assert row["box_busy_pct"] == 120.0


def test_the_floor_at_the_same_rate_is_the_baseline_of_the_alert_p99() -> None:
    floor = [_run(30, 60, 20), _run(40, 80, 30), _run(35, 70, 25)]
    row = _summary(2000.0, [_run(80, 120, 40), _run(100, 300, 200), _run(90, 150, 60)], floor)
    assert row["floor_alert_p99_ms"] == 70 and row["floor_commit_p99_ms"] == 45
    assert row["alert_p99_over_floor"] == round(150 / 70, 2)
    assert _summary(2000.0, [_run(80, 120, 40)])["alert_p99_over_floor"] is None, "no floor runs: no ratio"
