"""The benchmark runs end to end: `python -m bench --small` writes a complete summary.

No assertion about speed (the box may be busy); only that every pipeline drained the whole
workload, every latency run saw every event's effect, and every headline figure is there.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from bench.report import HEADLINE_KEYS, missing_or_not_positive

pytestmark = pytest.mark.slow

REPO_ROOT = Path(__file__).resolve().parent.parent
TIMEOUT_S = 300  # about 90 s on a quiet machine; CI shares two cores with the rest of the suite


def test_small_preset_writes_every_headline_figure(tmp_path: Path) -> None:
    out = tmp_path / "latest.json"
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    try:
        run = subprocess.run(
            [sys.executable, "-m", "bench", "--small", "--out", str(out)],
            cwd=REPO_ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=TIMEOUT_S,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"`python -m bench --small` took over {TIMEOUT_S}s; output so far:\n{exc.stdout}\n{exc.stderr}")
    output = run.stdout + run.stderr
    assert run.returncode == 0, f"`python -m bench --small` failed:\n{output[-4000:]}"

    summary = json.loads(out.read_text())
    assert missing_or_not_positive(summary) == [], f"headline keys missing or not positive; keys: {HEADLINE_KEYS}"
    assert summary["options"]["preset"] == "small"
    for pipeline, runs in summary["runs"]["drain"].items():
        for r in runs:
            assert r["rows"] == r["events"], f"{pipeline} stored {r['rows']} of {r['events']} events"
    for kind in ("latency_fixed", "latency_half_max", "latency_floor"):
        for r in summary["runs"][kind]:
            seen = {k: r[k] for k in ("complete", "missing_tasks", "missing_alerts", "sent")}
            assert r["complete"] and r["missing_tasks"] == 0 and r["missing_alerts"] == 0, (seen, output[-3000:])
            assert r["sent"] == round(r["offered_rate"] * r["seconds"])
    for key in ("nproc", "cpu_model", "memory_gib"):
        assert summary["machine"][key]
    for package in ("python", "aiokafka", "faststream", "asyncpg", "pydantic", "postgres", "tansu"):
        assert summary["versions"][package] not in ("", "unknown", "not installed"), package
    for row in ("floor", "naive", "hub", "task row created_at", "alert on its queue", "floor: alert on its"):
        assert row in run.stdout, f"the printed table lacks {row!r}"
