"""Where the hub spends its CPU while it drains a preloaded workload.

py-spy (default) samples `python -m hub run` from outside the process: no change to the hub, little
overhead, and the idle time waiting on the network is left out. It writes a speedscope profile
(open it at https://www.speedscope.app) and we derive folded stacks from it (for flamegraph.pl or
inferno) and the top functions by own time. `--profiler cprofile` runs the hub under
`python -m cProfile -m hub run` instead (deterministic, slower, no py-spy needed).
"""

from __future__ import annotations

import asyncio
import json
import os
import pstats
import shutil
import signal
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import asyncpg

from bench.drain import SPAN_INBOX, drain_rate, drain_timeout_s
from bench.latency import COUNT_INBOX
from bench.procstats import children_of, load_average
from bench.services import (
    REPO_ROOT,
    Child,
    create_topics,
    fresh_broker,
    fresh_database,
    hub_settings,
    hub_tree,
    preload,
    prepare_hub_database,
    run_postgres,
)
from bench.suite import WORKLOAD_START
from bench.workload import drain_workload, task_workload

TOP = 25
# Frames of Python's import machinery: start-up, not the drain.
_IMPORT_FRAMES = frozenset({"_find_and_load", "_find_and_load_unlocked", "_load_unlocked"})
HUB_PACKAGES = ("hub", "consumers", "schemas", "producers")


def pyspy_binary() -> str | None:
    beside = Path(sys.executable).with_name("py-spy")
    return str(beside) if beside.exists() else shutil.which("py-spy")


async def run_profile(
    events: int,
    seed: int,
    rate_hz: int,
    profiler: str,
    out_dir: Path,
    say: Callable[[str], None],
    workload_kind: str = "mixed",
) -> dict:
    """`workload_kind`: "mixed" (the drain workload) or "tasks" (the latency runs' traffic)."""
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    out_dir.mkdir(parents=True, exist_ok=True)
    base = out_dir / f"profile-{stamp}"
    make = task_workload if workload_kind == "tasks" else drain_workload
    workload = make(seed, events, WORKLOAD_START)
    work_dir = Path(tempfile.mkdtemp(prefix="hub-bench-profile-"))
    say(
        f"profiling the hub ({profiler}) draining {events:,} {workload_kind} events; load {load_average()}; "
        f"work dir {work_dir}"
    )
    async with run_postgres(work_dir) as pg:
        child, span, drained_wall = await _profiled_drain(
            pg.admin_dsn, work_dir, workload, seed, _command(profiler, base, rate_hz), profiler
        )
    eps = drain_rate(span["rows"], span["first"], span["last"], span["in_first"])
    result = {
        "profiler": profiler,
        "workload": workload_kind,
        "events": events,
        "eps_under_profiler": round(eps, 1),
        "load": load_average(),
        "created_at": stamp,
        "hub_tree": hub_tree(),
    }
    if profiler == "py-spy":
        profile = json.loads(base.with_suffix(".speedscope.json").read_text())
        window = (span["first"].timestamp() - child.started_wall, drained_wall - child.started_wall)
        stacks, time_split = folded_stacks(profile, window)
        base.with_suffix(".folded.txt").write_text("".join(f"{s} {n}\n" for s, n in stacks.most_common()))
        result.update(
            files=[str(base.with_suffix(".speedscope.json")), str(base.with_suffix(".folded.txt"))],
            main_thread=time_split,
            **summarize_stacks(stacks),
        )
    else:
        result.update(files=[str(base.with_suffix(".pstats"))], **summarize_pstats(base.with_suffix(".pstats")))
    shutil.rmtree(work_dir, ignore_errors=True)
    return result


async def _profiled_drain(
    admin_dsn: str, work_dir: Path, workload: list, seed: int, command: list[str], profiler: str
) -> tuple[Child, asyncpg.Record, float]:
    """Preload on a fresh broker and database, drain under the profiler; (process, commit span, drained at)."""
    with fresh_broker(work_dir, "profile") as broker:
        async with fresh_database(admin_dsn, "profile") as dsn:
            settings = hub_settings(broker.bootstrap, dsn)
            await create_topics(settings)
            await prepare_hub_database(dsn, seed)
            await preload(settings, workload)
            child = Child.spawn("profiled hub", command, settings.child_environment(), work_dir / "hub.log", work_dir)
            try:
                drained_wall = await _wait_drained(child, dsn, len(workload))
            finally:
                await _stop(child, profiler)
            conn = await asyncpg.connect(dsn)
            try:
                span = await conn.fetchrow(SPAN_INBOX)
            finally:
                await conn.close()
    return child, span, drained_wall


def _command(profiler: str, base: Path, rate_hz: int) -> list[str]:
    if profiler == "cprofile":
        return [sys.executable, "-m", "cProfile", "-o", str(base.with_suffix(".pstats")), "-m", "hub", "run"]
    binary = pyspy_binary()
    if binary is None:
        raise RuntimeError("py-spy is not installed: `pip install py-spy`, or use --profiler cprofile")
    # --idle keeps the waiting samples too: the main thread's samples then tell time, and the
    # share of time the event loop waits (on Postgres, on the broker) is measured rather than guessed.
    return [
        binary,
        "record",
        "--idle",
        "--format",
        "speedscope",
        "-o",
        str(base.with_suffix(".speedscope.json")),
        "--rate",
        str(rate_hz),
        "--",
        sys.executable,
        "-m",
        "hub",
        "run",
    ]


async def _wait_drained(child: Child, dsn: str, events: int) -> float:
    """The wall-clock time at which every event was in the inbox."""
    deadline = time.monotonic() + drain_timeout_s(events) * 2  # the profiler slows the hub down
    conn = await asyncpg.connect(dsn)
    try:
        while await conn.fetchval(COUNT_INBOX) < events:
            child.check_alive()
            if time.monotonic() > deadline:
                raise TimeoutError(
                    f"the profiled hub did not drain {events:,} events in time; log {child.log_path}:\n"
                    f"{child.log_tail()}"
                )
            await asyncio.sleep(0.2)
        return time.time()
    finally:
        await conn.close()


async def _stop(child: Child, profiler: str) -> None:
    """Stop the hub gracefully; py-spy writes its profile when the hub, its child, exits."""
    if profiler == "py-spy":
        for pid in children_of(child.pid):
            os.kill(pid, signal.SIGTERM)
        if await child.wait(60):
            return
    await child.stop(grace_s=60)  # cProfile: the hub itself; py-spy: only if the hub did not exit


# ------------------------------------------------------------------------------- reading profiles

# Leaf frames where a thread waits rather than computes (py-spy records them with --idle).
_IDLE_LEAVES = frozenset({("select", "selectors.py"), ("wait", "threading.py"), ("get", "queue.py")})
_NO_PYTHON_FRAME = "(no Python frame: native code or GC)"
_ENTRY_POINTS = ("hub/__main__.py", "hub/cli.py", "hub/commands/")


def short_path(path: str) -> str:
    """site-packages/aiokafka/x.py -> aiokafka/x.py; the repository's files relative to it."""
    if "site-packages/" in path:
        return path.split("site-packages/", 1)[1]
    root = str(REPO_ROOT) + os.sep
    if path.startswith(root):
        return path[len(root) :]
    for marker in ("/lib/python3", "/lib64/python3"):
        if marker in path:
            tail = path.split(marker, 1)[1]
            return "stdlib/" + tail.split("/", 1)[1] if "/" in tail else path
    return path


def package_of(path: str) -> str:
    short = short_path(path)
    if short.startswith("stdlib/"):
        parts = short.split("/")
        return f"stdlib:{parts[1].removesuffix('.py')}"
    return short.split("/", 1)[0].removesuffix(".py")


def _label(frame: dict) -> str:
    return f"{frame['name']} ({short_path(frame.get('file') or '?')}:{frame.get('line') or 0})"


def _is_idle(frames: list[dict], sample: list[int]) -> bool:
    if not sample:
        return False
    leaf = frames[sample[-1]]
    return (leaf["name"].rsplit(".", 1)[-1], (leaf.get("file") or "").rsplit("/", 1)[-1]) in _IDLE_LEAVES


def folded_stacks(speedscope: dict, window: tuple[float, float] | None = None) -> tuple[Counter, dict]:
    """Busy samples as 'root;...;leaf' -> count, and how the main thread's time divides.

    The first profile is the main thread (the hub's event loop). Recorded with --idle, its samples
    follow each other at the sampling interval, so their running sum of weights is the time since
    start: only samples inside `window` (seconds since start: the drain) are kept. Other threads
    (FastStream's AnyIO worker, resolver threads) are counted whole. Idle samples (the loop
    waiting in select, threads waiting on a condition) are counted, not kept.
    """
    frames = speedscope["shared"]["frames"]
    labels = [_label(f) for f in frames]
    stacks: Counter = Counter()
    time_split = {"window_s": 0.0, "busy_s": 0.0, "idle_s": 0.0, "other_threads_busy_s": 0.0}
    for index, profile in enumerate(speedscope["profiles"]):
        clock = 0.0
        for sample, weight in zip(profile["samples"], profile["weights"], strict=False):
            clock += weight
            main = index == 0
            if main and window and not window[0] <= clock <= window[1]:
                continue
            if any(frames[i]["name"] in _IMPORT_FRAMES for i in sample):
                continue
            idle = _is_idle(frames, sample)
            if main:
                time_split["window_s"] += weight
                time_split["idle_s" if idle else "busy_s"] += weight
            elif not idle:
                time_split["other_threads_busy_s"] += weight
            if not idle:
                stacks[";".join(labels[i] for i in sample) or _NO_PYTHON_FRAME] += 1
    return stacks, {k: round(v, 2) for k, v in time_split.items()}


def _function(frame: str) -> str:
    """'name (file:line)' -> 'name (file)': own time per function, not per line."""
    if frame == _NO_PYTHON_FRAME:
        return frame
    name, _, where = frame.rpartition(" (")
    return f"{name} ({where.rsplit(':', 1)[0]})"


def _file(frame: str) -> str:
    return frame.rpartition(" (")[2].rsplit(":", 1)[0]


def summarize_stacks(stacks: Counter) -> dict:
    """Top functions by own time, and two breakdowns of the busy samples:

    by_component: the innermost frame of the hub's own code in the stack (which part of the hub
                  caused the work), or the leaf's library when only the hub's entry point is on
                  the stack (the Kafka client's background fetches, FastStream's loop, asyncio);
    by_library:   the package of the leaf frame (where the CPU actually went).
    """
    total = sum(stacks.values()) or 1
    own: Counter = Counter()
    inclusive: Counter = Counter()
    component: Counter = Counter()
    library: Counter = Counter()
    for stack, n in stacks.items():
        frames = stack.split(";")
        own[_function(frames[-1])] += n
        for function in {_function(f) for f in frames}:
            inclusive[function] += n
        library[package_of(_file(frames[-1])) if frames[-1] != _NO_PYTHON_FRAME else frames[-1]] += n
        component[_component(frames)] += n
    return {
        "busy_samples": total,
        "top_own": [
            {
                "function": f,
                "own_pct": round(100 * n / total, 2),
                "inclusive_pct": round(100 * inclusive[f] / total, 2),
                "samples": n,
            }
            for f, n in own.most_common(TOP)
        ],
        "by_component_pct": {k: round(100 * n / total, 1) for k, n in component.most_common()},
        "by_library_pct": {k: round(100 * n / total, 1) for k, n in library.most_common()},
    }


def _component(frames: list[str]) -> str:
    for frame in reversed(frames):
        path = _file(frame)
        if path.split("/", 1)[0] in HUB_PACKAGES and path.endswith(".py") and not path.startswith(_ENTRY_POINTS):
            return path
    leaf = frames[-1]
    return f"(library) {package_of(_file(leaf)) if leaf != _NO_PYTHON_FRAME else leaf}"


def summarize_pstats(path: Path) -> dict:
    stats = pstats.Stats(str(path)).stats  # (file, line, name) -> (calls, primitive, own, cumulative, callers)
    total = sum(v[2] for v in stats.values()) or 1.0
    top = sorted(stats.items(), key=lambda kv: kv[1][2], reverse=True)[:TOP]
    library: Counter = Counter()
    for (file, _line, _name), v in stats.items():
        library[package_of(file) if file.startswith("/") else "builtins"] += v[2]
    return {
        "own_seconds_total": round(total, 2),
        "top_own": [
            {
                "function": f"{name} ({short_path(file)})",
                "own_pct": round(100 * v[2] / total, 2),
                "inclusive_pct": round(100 * v[3] / total, 2),
                "calls": v[1],
            }
            for (file, _line, name), v in top
        ],
        "by_library_pct": {k: round(100 * s / total, 1) for k, s in library.most_common()},
    }
