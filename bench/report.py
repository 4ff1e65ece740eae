"""The run's summary (bench/results/latest.json) and its printed tables. `summarize` is pure."""

from __future__ import annotations

import json
import math
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console
from rich.table import Table

from bench.options import Options
from bench.stats import spread

# Keys every summary has, each a positive number (the smoke test checks them).
HEADLINE_KEYS = (
    "hub_eps",
    "floor_eps",
    "naive_eps",
    "hub_over_floor",
    "hub_over_naive",
    "p50_ms",
    "p95_ms",
    "p99_ms",
    "commit_p50_ms",
    "commit_p95_ms",
    "commit_p99_ms",
    "alert_p50_ms",
    "alert_p95_ms",
    "alert_p99_ms",
    "half_max_rate_eps",
    "half_max_p50_ms",
    "half_max_p95_ms",
    "half_max_p99_ms",
    "half_max_commit_p50_ms",
    "half_max_commit_p95_ms",
    "half_max_commit_p99_ms",
    "half_max_alert_p50_ms",
    "half_max_alert_p95_ms",
    "half_max_alert_p99_ms",
    "broker_cpu_pct",
    "half_max_broker_cpu_pct",
    "hub_cpu_pct",
    "rss_mb_peak",
    "latency_rate_eps",
    "hub_task_eps",
    "floor_commit_p99_ms",
    "floor_alert_p50_ms",
    "floor_alert_p99_ms",
    "alert_p99_over_floor",
)
HUB_EFFECTS = ("db", "commit", "alert")
FLOOR_EFFECTS = ("commit", "alert")  # the floor has no transaction start to time


def summarize(
    runs: dict, *, options: Options, machine: dict, versions: dict, load: dict, started_at: float, wall_s: float
) -> dict:
    drains, fixed, half, soak = runs["drain"], runs["latency_fixed"], runs["latency_half_max"], runs["soak"]
    floor = runs.get("latency_floor", [])
    eps = {p: spread([r["eps"] for r in rs]) for p, rs in drains.items()}
    summary = {
        "hub_eps": eps["hub"]["median"],
        "floor_eps": eps["floor"]["median"],
        "naive_eps": eps["naive"]["median"],
        "hub_over_floor": _ratio(eps["hub"]["median"], eps["floor"]["median"]),
        "hub_over_naive": _ratio(eps["hub"]["median"], eps["naive"]["median"]),
        # The hub's maximum for the latency runs' traffic, in which every event is a task and an alert.
        "hub_task_eps": eps["hub_tasks"]["median"] if "hub_tasks" in eps else math.nan,
        "hub_workers": options.hub_workers,
        **_single_process_keys(eps),
        "latency_rate_eps": options.latency_rate,
        **_latency_keys("", fixed),
        "half_max_rate_eps": half[0]["offered_rate"] if half else math.nan,
        **_latency_keys("half_max_", half),
        **_latency_keys("floor_", floor, FLOOR_EFFECTS),
        "hub_cpu_pct": spread([r["cpu_pct"]["pipeline"] for r in fixed])["median"],
        "rss_mb_peak": max(
            [r["rss_peak_mb"] for r in drains["hub"] + drains.get("hub_tasks", []) + fixed + half]
            + ([soak["rss_peak_mb"]] if soak else [])
        ),
    }
    if soak:
        summary["rss_growth_ratio"] = soak["rss_growth_ratio"]
        if "worker_rss_growth_ratio" in soak:
            summary["worker_rss_growth_ratio"] = soak["worker_rss_growth_ratio"]
    summary["alert_p99_over_floor"] = _ratio(summary["alert_p99_ms"], summary["floor_alert_p99_ms"])
    summary["spread"] = {
        "eps": eps,
        **{
            f"{prefix}{effect}_{q}": spread([r[effect][f"{q}_ms"] for r in rs])
            for prefix, rs, effects in (
                ("", fixed, HUB_EFFECTS),
                ("half_max_", half, HUB_EFFECTS),
                ("floor_", floor, FLOOR_EFFECTS),
            )
            for effect in effects
            for q in ("p50", "p95", "p99")
        },
        "floor_broker_cpu_pct": spread([r["cpu_pct"]["broker"] for r in floor]),
        "broker_cpu_pct": spread([r["cpu_pct"]["broker"] for r in fixed]),
        "half_max_broker_cpu_pct": spread([r["cpu_pct"]["broker"] for r in half]),
        "startup_to_first_s": {p: spread([r["startup_to_first_s"] for r in rs]) for p, rs in drains.items()},
    }
    summary.update(
        runs=runs,
        machine=machine,
        versions=versions,
        load_average=load,
        options={k: str(v) if isinstance(v, Path) else v for k, v in asdict(options).items()},
        started_at=datetime.fromtimestamp(started_at, UTC).isoformat(timespec="seconds"),
        wall_s=round(wall_s, 1),
        method=(
            "drain: events/s between the first and the last commit of the stored rows (Postgres commit "
            "timestamps), fresh Tansu per phase, one Postgres with default durability (plus "
            "track_commit_timestamp), fresh database per phase; "
            "latency: send() time in a separate producer process to the task row's created_at "
            "(transaction start), to its commit, and to the alert's arrival on its queue; medians of the repeats"
        ),
    )
    return summary


def _single_process_keys(eps: dict) -> dict:
    """The hub as one process (floor and naive are one process each): drained only with --hub-workers > 1."""
    if "hub_1" not in eps:
        return {}
    single = eps["hub_1"]["median"]
    return {
        "hub_single_eps": single,
        "hub_single_over_floor": _ratio(single, eps["floor"]["median"]),
        "hub_single_over_naive": _ratio(single, eps["naive"]["median"]),
    }


def _latency_keys(prefix: str, runs: list[dict], effects: tuple[str, ...] = HUB_EFFECTS) -> dict:
    """Medians of the repeats (NaN without runs: the floor's, in runs made before it was measured)."""
    keys = {}
    for effect in effects:
        label = "" if effect == "db" else f"{effect}_"
        for q in ("p50", "p95", "p99"):
            keys[f"{prefix}{label}{q}_ms"] = spread([r[effect][f"{q}_ms"] for r in runs])["median"]
    keys[f"{prefix}broker_cpu_pct"] = spread([r["cpu_pct"]["broker"] for r in runs])["median"]
    return keys


def _ratio(a: float, b: float) -> float:
    return round(a / b, 3) if b and not math.isnan(a) and not math.isnan(b) else math.nan


def missing_or_not_positive(summary: dict) -> list[str]:
    """Headline keys that are absent, not numbers, or not above zero."""
    bad = []
    for key in HEADLINE_KEYS:
        value = summary.get(key)
        if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value) or value <= 0:
            bad.append(key)
    return bad


def write_summary(summary: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    tmp.replace(path)


# ------------------------------------------------------------------------------------------ tables


def _span(s: dict, fmt: str = "{:,.0f}") -> str:
    if math.isnan(s["median"]):
        return "-"
    if s["min"] == s["max"]:
        return fmt.format(s["median"])
    return f"{fmt.format(s['median'])} ({fmt.format(s['min'])}-{fmt.format(s['max'])})"


def throughput_table(summary: dict) -> Table:
    runs = summary["runs"]["drain"]
    table = Table(
        title=f"Drain of a preloaded workload ({summary['options']['events']:,} events; "
        f"naive {summary['options']['naive_events']:,}), median (min-max) of "
        f"{summary['options']['repeat']}"
    )
    for column in (
        "pipeline",
        "events/s",
        "hub / this",
        "start to 1st row s",
        "CPU % pipeline/broker/pg/box",
        "peak RSS MB",
        "1-min load per run",
    ):
        table.add_column(column, justify="left" if column in ("pipeline", "1-min load per run") else "right")
    workers = summary.get("hub_workers", 1)
    names = {
        "hub": f"hub, --workers {workers}" if workers > 1 else "hub",
        "hub_1": "hub, one process",
        "hub_tasks": "hub, task events",
    }
    for pipeline in [p for p in ("floor", "naive", "hub", "hub_1", "hub_tasks") if p in runs]:
        rs = runs[pipeline]
        ratio = {
            "floor": summary["hub_over_floor"],
            "naive": summary["hub_over_naive"],
            "hub": 1.0,
            "hub_1": _ratio(summary["hub_eps"], summary.get("hub_single_eps", math.nan)),
        }.get(pipeline)
        cpu = "/".join(
            f"{_median_of(rs, lambda r, k=k: r['cpu_pct'].get(k, math.nan)):.0f}"
            for k in ("pipeline", "broker", "postgres", "box_busy")
        )
        table.add_row(
            names.get(pipeline, pipeline),
            _span(summary["spread"]["eps"][pipeline]),
            f"{ratio:.3g}" if ratio is not None else "",
            _span(summary["spread"]["startup_to_first_s"][pipeline], "{:.1f}"),
            cpu,
            f"{max(r['rss_peak_mb'] for r in rs):.0f}",
            _loads(rs),
        )
    return table


def latency_table(summary: dict) -> Table:
    s = summary["spread"]
    table = Table(
        title="Hub publish-to-effect latency, ms, median (min-max) of the repeats; "
        "'of hub max': offered rate / the hub's drain rate on the same task events"
    )
    for column in (
        "offered events/s",
        "of hub max",
        "effect",
        "p50",
        "p95",
        "p99",
        "broker CPU %",
        "pipeline CPU %",
        "complete",
        "1-min load per run",
    ):
        table.add_column(column, justify="left" if column in ("effect", "1-min load per run") else "right")
    hub_effects = (("db", "task row created_at"), ("commit", "task row committed"), ("alert", "alert on its queue"))
    floor_effects = (("commit", "floor: row committed"), ("alert", "floor: alert on its queue"))
    for prefix, rate, runs, effects in (
        ("floor_", summary["latency_rate_eps"], summary["runs"].get("latency_floor", []), floor_effects),
        ("", summary["latency_rate_eps"], summary["runs"]["latency_fixed"], hub_effects),
        ("half_max_", summary["half_max_rate_eps"], summary["runs"]["latency_half_max"], hub_effects),
    ):
        if not runs:
            continue
        for effect, label in effects:
            first = effect == effects[0][0]
            share = rate / summary["hub_task_eps"] if summary.get("hub_task_eps") else math.nan
            table.add_row(
                f"{rate:,.0f}" if first else "",
                f"{share:.0%}" if first and not math.isnan(share) else "",
                label,
                *(_span(s[f"{prefix}{effect}_{q}"], "{:,.1f}") for q in ("p50", "p95", "p99")),
                _span(s[f"{prefix}broker_cpu_pct"]) if first else "",
                f"{_median_of(runs, lambda r: r['cpu_pct']['pipeline']):.0f}" if first else "",
                "/".join("yes" if r["complete"] else "NO" for r in runs) if first else "",
                _loads(runs) if first else "",
            )
    return table


def _loads(runs: list[dict]) -> str:
    return " ".join(r["load_before"].split()[0] for r in runs)


def _median_of(runs: list[dict], get) -> float:
    return spread([get(r) for r in runs])["median"]


def print_report(console: Console, summary: dict) -> None:
    console.print(throughput_table(summary))
    if "hub_single_eps" in summary:
        console.print(
            f"the hub as one process: {summary['hub_single_over_floor']:.3g} x floor, "
            f"{summary['hub_single_over_naive']:.3g} x naive"
        )
    console.print(latency_table(summary))
    if not math.isnan(summary.get("alert_p99_over_floor", math.nan)):
        console.print(
            f"alert p99 at {summary['latency_rate_eps']:,.0f}/s: hub {summary['alert_p99_ms']:,.0f} ms, "
            f"{summary['alert_p99_over_floor']:.3g} x the floor's {summary['floor_alert_p99_ms']:,.0f} ms "
            f"(the floor re-publishes straight after its commit; the hub through its outbox relay)"
        )
    memory = f"hub peak RSS {summary['rss_mb_peak']:.0f} MB"
    soak = summary["runs"]["soak"]
    if soak:
        memory += (
            f"; soak {soak['minutes']:g} min at {soak['offered_rate']:,.0f}/s: minute 1 "
            f"{soak['rss_minute1_mb']:.0f} MB, last minute {soak['rss_last_minute_mb']:.0f} MB, "
            f"ratio {soak['rss_growth_ratio']:.3f}"
            + (
                f" (the worker that grew most: {soak['worker_rss_growth_ratio']:.3f})"
                if "worker_rss_growth_ratio" in soak
                else ""
            )
            + (
                f"; records per batch {soak['batch_mean_minute1']:,.0f} -> {soak['batch_mean_last_minute']:,.0f}"
                if soak.get("batch_mean_minute1") and soak.get("batch_mean_last_minute")
                else ""
            )
            + f"; processed {soak['processed_eps']:,.0f}/s"
            + ("" if soak["kept_up"] else " [red](fell behind: growth may be backlog, not a leak)[/]")
        )
    console.print(memory)
    m, v = summary["machine"], summary["versions"]
    console.print(
        f"machine: {m['nproc']} cores, {m['cpu_model']}, {m['memory_gib']} GiB; load at start "
        f"{summary['load_average']['start']}, end {summary['load_average']['end']}; "
        f"wall {summary['wall_s']:.0f}s"
    )
    console.print("versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
