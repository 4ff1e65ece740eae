"""What the machine and its processes are doing, read from /proc (Linux only).

CPU figures are "% of one core" (a 2-core box tops out at 200%), computed from two snapshots.
"""

from __future__ import annotations

import os
import platform
import time
from dataclasses import dataclass

_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_s(pid: int, *, with_reaped_children: bool = False) -> float:
    """User + system CPU seconds of one process (plus its waited-for children, e.g. a postmaster's backends)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            # The command name may contain spaces: the fields we want follow its closing parenthesis.
            fields = f.read().rsplit(")", 1)[1].split()
    except (FileNotFoundError, ProcessLookupError):
        return 0.0
    utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
    ticks = utime + stime + (cutime + cstime if with_reaped_children else 0)
    return ticks / _TICKS


def children_of(pid: int) -> list[int]:
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as f:
            return [int(p) for p in f.read().split()]
    except FileNotFoundError:
        return []


def tree_cpu_s(pid: int) -> float:
    """A process, its live children, and the children that already exited: a postmaster and its
    backends, or `hub run --workers N` and its workers."""
    return process_cpu_s(pid, with_reaped_children=True) + sum(process_cpu_s(child) for child in children_of(pid))


def box_busy_s() -> tuple[float, float]:
    """(busy CPU seconds, total CPU seconds) of the whole machine since boot, all cores."""
    with open("/proc/stat") as f:
        values = [int(v) for v in f.readline().split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already inside user
    return (total - idle) / _TICKS, total / _TICKS


def memory_kb(pid: int) -> dict[str, int]:
    """VmRSS and VmHWM (peak RSS) of a process, in KiB; empty once it has exited."""
    found = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    name, value = line.split(":", 1)
                    found[name] = int(value.split()[0])
    except FileNotFoundError:
        pass
    return found


def tree_memory_kb(pid: int) -> dict[str, int]:
    """memory_kb summed over a process and its live children (`hub run --workers N`: the supervisor
    and its workers). The summed VmHWM is an upper bound: the peaks need not coincide."""
    total: dict[str, int] = {}
    for member in (pid, *children_of(pid)):
        for name, value in memory_kb(member).items():
            total[name] = total.get(name, 0) + value
    return total


def workers_rss_kb(pid: int) -> list[int]:
    """VmRSS of each child of `pid` (the workers of `hub run --workers N`), in KiB."""
    return [memory_kb(child).get("VmRSS", 0) for child in children_of(pid)]


@dataclass(frozen=True)
class CpuSnapshot:
    at: float  # time.monotonic()
    pipeline: float
    broker: float
    postgres: float
    box_busy: float


@dataclass
class CpuMeter:
    """Snapshots of the pipeline, broker and Postgres CPU time; `between` gives % of one core."""

    pipeline_pid: int
    broker_pid: int
    postgres_pid: int

    def snapshot(self) -> CpuSnapshot:
        return CpuSnapshot(
            time.monotonic(),
            tree_cpu_s(self.pipeline_pid),
            process_cpu_s(self.broker_pid),
            tree_cpu_s(self.postgres_pid),
            box_busy_s()[0],
        )

    @staticmethod
    def between(first: CpuSnapshot, last: CpuSnapshot) -> dict[str, float]:
        wall = max(last.at - first.at, 1e-9)
        return {
            name: round(100 * (getattr(last, name) - getattr(first, name)) / wall, 1)
            for name in ("pipeline", "broker", "postgres", "box_busy")
        }


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f}"


def machine() -> dict[str, object]:
    model = "unknown"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kb = int(next(line for line in f if line.startswith("MemTotal:")).split()[1])
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "memory_gib": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
    }
