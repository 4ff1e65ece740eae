"""`python -m bench dispatch` runs end to end at tiny sizes and produces every figure.

No assertion about speed (the box may be busy): the floor, the hub's rate, their ratio, the
latency percentiles, and every notice received exactly once.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 120


def test_dispatch_bench_produces_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "dispatch.json"
    args = ["--notifications", "120", "--repeat", "1", "--rate", "50", "--seconds", "2", "--out", str(out)]
    try:
        run = subprocess.run(
            [sys.executable, "-m", "bench", "dispatch", *args],
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`python -m bench dispatch` took over {TIMEOUT_S}s; output so far:\n{exc.stdout}\n{exc.stderr}")
    assert run.returncode == 0, f"`python -m bench dispatch` failed:\n{(run.stdout + run.stderr)[-4000:]}"

    result = json.loads(out.read_text())
    t = result["throughput"]
    for key in ("floor_rate", "hub_rate", "ratio", "floor_sender_cpu_pct", "hub_sender_cpu_pct"):
        assert isinstance(t[key], float | int) and t[key] > 0 and math.isfinite(t[key]), (key, t[key])
    for floor, hub in zip(result["runs"]["floor"], result["runs"]["hub"], strict=True):
        assert floor["received_once"] == floor["count"] == 120 and floor["errors"] == 0, floor
        assert hub["sent"] == hub["attempts"] == hub["received_once"] == 120, hub
    latency = result["latency"]
    assert latency["offered"] == latency["sent"] == latency["received_once"] == 100, latency
    assert latency["exactly_once"] and latency["missing"] == 0 and latency["received_twice_or_more"] == 0
    for key in ("p50_ms", "p95_ms", "p99_ms", "max_ms"):
        assert latency[key] > 0 and math.isfinite(latency[key]), (key, latency[key])
    assert result["delivery"]["exactly_once"] and result["delivery"]["never_received"] == 0, result["delivery"]
    assert result["concurrency"]["floor"] == result["concurrency"]["hub"] > 0
    for target in ("throughput_ratio", "latency_p99_ms", "exactly_once"):
        assert isinstance(result["targets"][target]["met"], bool), target
    assert result["load_average_before"] and result["load_average_after"]
    for row in ("floor: bare httpx POST loop", "hub: Dispatcher", "hub / floor", "as the store writes"):
        assert row in run.stdout, f"the printed table lacks {row!r}"
