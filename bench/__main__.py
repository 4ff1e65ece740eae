"""`python -m bench [OPTIONS]` runs the benchmark; `python -m bench profile [OPTIONS]` profiles the hub.

python -m bench                       # 50,000 events, 3 repeats, latency at 2,000/s for 30 s
python -m bench --small               # CI preset: 6,000 events, 1 repeat, latency 5 s at 500/s
python -m bench --soak-minutes 10     # plus 10 minutes at 2,000/s (--soak-rate), RSS every 10 s
python -m bench profile --events 50000
python -m bench purge                 # the hub's throughput while 1,000,000 rows are purged, and without
python -m bench dispatch              # webhook notifications/s against a bare httpx floor; pending -> sent at 200/s

python -m bench reports               # the reports over a month of 1,000,000 shipments; 10,000 statements
"""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import typer
from rich.console import Console
from rich.table import Table

from bench.options import DEFAULT_OUT, RESULTS_DIR, Options, small

# Piped output (CI logs, tee) would otherwise wrap the tables at 80 columns.
console = Console(width=None if sys.stdout.isatty() else 150)
app = typer.Typer(
    add_completion=False,
    invoke_without_command=True,
    no_args_is_help=False,
    help="Benchmark the hub against a bare-aiokafka floor and a naive FastStream pipeline.",
)


def _say(text: str) -> None:
    console.print(f"[dim]{text}[/]")


def _fail(message: str) -> None:
    console.print(f"[red]error:[/] {message}")
    raise typer.Exit(1)


@app.callback()
def main(
    ctx: typer.Context,
    events: int = typer.Option(Options.events, "--events", help="Events drained by the floor and the hub"),
    naive_events: int = typer.Option(
        Options.naive_events,
        "--naive-events",
        help="Events drained by the naive pipeline (a prefix of the same workload)",
    ),
    repeat: int = typer.Option(Options.repeat, "--repeat", help="Runs of each measurement (median, min-max)"),
    latency_rate: float = typer.Option(Options.latency_rate, "--latency-rate", help="Offered events/s, fixed-rate run"),
    latency_seconds: float = typer.Option(Options.latency_seconds, "--latency-seconds", help="Length of a latency run"),
    soak_minutes: float = typer.Option(
        Options.soak_minutes,
        "--soak-minutes",
        help="Also offer --soak-rate for this long and watch the hub's RSS (0: off)",
    ),
    soak_rate: float = typer.Option(
        None, "--soak-rate", help="Events/s offered during the soak [default: --latency-rate]"
    ),
    hub_workers: int = typer.Option(
        None, "--hub-workers", help="`hub run --workers` for the hub's runs [default: the number of cores, at most 6]"
    ),
    seed: int = typer.Option(Options.seed, "--seed", help="Workload seed: the same seed, the same events"),
    out: Path = typer.Option(DEFAULT_OUT, "--out", dir_okay=False, help="Where the JSON summary goes"),
    keep: bool = typer.Option(False, "--keep", help="Keep the work directory (Postgres data, every process's log)"),
    small_preset: bool = typer.Option(
        False,
        "--small",
        help="CI preset: 6,000 events, 1 repeat, latency 5 s at 500/s; finishes in well under 2 minutes",
    ),
) -> None:
    """Run the benchmark and write the summary (default bench/results/latest.json)."""
    if ctx.invoked_subcommand is not None:
        return
    options = Options(
        events=events,
        naive_events=naive_events,
        repeat=repeat,
        latency_rate=latency_rate,
        latency_seconds=latency_seconds,
        soak_minutes=soak_minutes,
        soak_rate=soak_rate,
        seed=seed,
        **({"hub_workers": hub_workers} if hub_workers is not None else {}),
        out=out,
        keep_work_dir=keep,
    )
    options = small(options) if small_preset else options
    try:
        options.check()
    except ValueError as exc:
        _fail(str(exc))
    _missing_msgspec_hint()
    from bench.report import print_report, write_summary
    from bench.suite import run_benchmark

    try:
        summary = asyncio.run(run_benchmark(options, _say))
    except (RuntimeError, TimeoutError) as exc:
        _fail(
            f"{exc}\nEvery process's log is kept in the work directory printed above; "
            "re-run with fewer events or on a quieter machine if a pipeline merely ran out of time."
        )
    write_summary(summary, options.out)
    print_report(console, summary)
    console.print(f"summary written to [bold]{options.out}[/]")


@app.command()
def latency(
    rates: list[float] = typer.Option(
        [Options.latency_rate],
        "--rate",
        help="Offered events/s; repeat the option for several rates "
        "(e.g. --rate 2000 --rate 8587 for the full run's two)",
    ),
    seconds: float = typer.Option(Options.latency_seconds, "--seconds", help="Length of each latency run"),
    repeat: int = typer.Option(1, "--repeat", help="Runs at each rate (interleaved across the rates)"),
    hub_workers: int = typer.Option(None, "--hub-workers", help="`hub run --workers` [default: cores, at most 6]"),
    seed: int = typer.Option(Options.seed, "--seed"),
    out: Path = typer.Option(
        None,
        "--out",
        dir_okay=False,
        help="Where the runs go as JSON [default: bench/results/latency-<time>.json]; "
        "never latest.json, which holds full runs only",
    ),
    keep: bool = typer.Option(False, "--keep", help="Keep the work directory (Postgres data, every process's log)"),
) -> None:
    """Only the latency runs (no drains, so no measured half maximum: give the rates), for before/after checks."""
    from bench.latency_only import run_latency_only

    if not rates or min(rates) <= 0 or seconds <= 0 or repeat < 1:
        _fail("--rate and --seconds must be positive, --repeat at least 1")
    options = Options(
        repeat=repeat,
        latency_seconds=seconds,
        seed=seed,
        keep_work_dir=keep,
        **({"hub_workers": hub_workers} if hub_workers is not None else {}),
    )
    try:
        result = asyncio.run(run_latency_only(options, rates, _say))
    except (RuntimeError, TimeoutError) as exc:
        _fail(f"{exc}\nEvery process's log is kept in the work directory printed above.")
    out = out or RESULTS_DIR / f"latency-{result['created_at']}.json"
    if out.resolve() == DEFAULT_OUT.resolve():
        _fail("latest.json holds full runs only: choose another --out")
    out.write_text(json.dumps(result, indent=2, default=str) + "\n")
    table = Table(title=f"latency only ({result['hub_workers']} workers, load {result['load_average']})")
    for column in (
        "rate/s",
        "task p50",
        "task p99",
        "commit p99",
        "alert p50",
        "alert p99",
        "alert/task p99",
        "commit->alert p50",
        "commit->alert p99",
        "floor commit p99",
        "floor alert p99",
        "alert p99 / floor",
        "box busy %",
    ):
        table.add_column(column, justify="right")
    for row in result["summary"]:
        table.add_row(
            f"{row['rate']:,.0f}",
            *(f"{row[k]:,.0f}" for k in ("db_p50_ms", "db_p99_ms", "commit_p99_ms", "alert_p50_ms", "alert_p99_ms")),
            f"{row['alert_over_task_p99']:.2f}",
            f"{row['alert_after_commit_p50_ms']:,.0f}",
            f"{row['alert_after_commit_p99_ms']:,.0f}",
            f"{row['floor_commit_p99_ms']:,.0f}",
            f"{row['floor_alert_p99_ms']:,.0f}",
            f"{row['alert_p99_over_floor']:.2f}" if row["alert_p99_over_floor"] is not None else "-",
            f"{row['box_busy_pct']:.0f}",
        )
    console.print(table)
    console.print(f"written to [bold]{out}[/]")


@app.command()
def profile(
    events: int = typer.Option(50_000, "--events", help="Events the profiled hub drains"),
    seed: int = typer.Option(Options.seed, "--seed"),
    rate_hz: int = typer.Option(100, "--rate", help="py-spy samples per second"),
    profiler: str = typer.Option("py-spy", "--profiler", help="py-spy (sampling, default) or cprofile"),
    workload: str = typer.Option(
        "mixed",
        "--workload",
        help="mixed (the drain workload) or tasks (every event a task and an alert, as in the latency runs)",
    ),
    out_dir: Path = typer.Option(RESULTS_DIR, "--out-dir", file_okay=False, help="Where the profile files go"),
    summary_file: Path = typer.Option(
        DEFAULT_OUT,
        "--summary",
        dir_okay=False,
        help="Benchmark summary that gets the top list under 'profile' (if it exists)",
    ),
) -> None:
    """Profile `python -m hub run` while it drains a preloaded workload; print the top functions by own time."""
    if profiler not in ("py-spy", "cprofile"):
        _fail(f"--profiler {profiler!r}: choose py-spy or cprofile")
    if workload not in ("mixed", "tasks"):
        _fail(f"--workload {workload!r}: choose mixed or tasks")
    if events < 2_000:
        _fail("use at least 2,000 events (--events) so the drain outlasts start-up")
    from bench.profile import run_profile

    try:
        result = asyncio.run(run_profile(events, seed, rate_hz, profiler, out_dir, _say, workload))
    except (RuntimeError, TimeoutError) as exc:
        _fail(f"{exc}\nThe hub's log is kept in the work directory printed above.")
    (out_dir / f"profile-{result['created_at']}.json").write_text(json.dumps(result, indent=2) + "\n")
    _attach_to_summary(summary_file, result)
    _print_profile(result)


@app.command()
def purge(
    rows: int = typer.Option(1_000_000, "--rows", help="Rows past retention that the purge deletes"),
    events: int = typer.Option(120_000, "--events", help="Events the hub drains meanwhile (and without a purge)"),
    batch: int = typer.Option(1000, "--batch", help="Rows per purge transaction (HUB_PURGE_BATCH)"),
    seed: int = typer.Option(Options.seed, "--seed"),
    keep: bool = typer.Option(False, "--keep", help="Keep the work directory (Postgres data, logs)"),
) -> None:
    """The hub's throughput while a purge of --rows rows runs, and without one (bench/purge.py)."""
    from bench.purge import lines, run_purge_bench, write

    try:
        result = asyncio.run(run_purge_bench(rows, events, batch, seed, keep, _say))
    except (RuntimeError, TimeoutError) as exc:
        _fail(str(exc))
    for line in lines(result):
        console.print(line, highlight=False)
    console.print(f"written to [bold]{write(result)}[/]")


def _attach_to_summary(path: Path, result: dict) -> None:
    if not path.exists():
        return
    key = "profile" if result["workload"] == "mixed" else f"profile_{result['workload']}"
    try:
        summary = json.loads(path.read_text())
    except (OSError, ValueError):
        summary = None
    if not isinstance(summary, dict):  # e.g. --summary /dev/null: the profile files are written all the same
        console.print(f"[yellow]{path} is no benchmark summary: the top list was not added to it[/]")
        return
    summary[key] = result
    path.write_text(json.dumps(summary, indent=2, default=str) + "\n")
    console.print(f"top list added to {path} under {key!r}")


def _print_profile(result: dict) -> None:
    table = Table(
        title=f"hub under {result['profiler']} ({result['workload']} events): top {len(result['top_own'])} "
        f"functions by own time "
        f"({result['eps_under_profiler']:,.0f} events/s while profiled, load {result['load']})"
    )
    table.add_column("own %", justify="right")
    table.add_column("incl. %", justify="right")
    table.add_column("function")
    for row in result["top_own"]:
        table.add_row(f"{row['own_pct']:.1f}", f"{row['inclusive_pct']:.1f}", row["function"])
    console.print(table)
    if "main_thread" in result:
        t = result["main_thread"]
        console.print(
            f"[bold]event loop during the drain:[/] {t['window_s']:.1f}s, busy {t['busy_s']:.1f}s, "
            f"waiting {t['idle_s']:.1f}s; other threads busy {t['other_threads_busy_s']:.1f}s"
        )
    for title in ("by_component_pct", "by_library_pct"):
        if title in result:
            parts = ", ".join(f"{k} {v:.1f}%" for k, v in list(result[title].items())[:14])
            console.print(f"[bold]{title.removesuffix('_pct').replace('_', ' ')}:[/] {parts}")
    console.print("files: " + ", ".join(result["files"]))


# --- `python -m bench console` (issue 21): the web console on a big database; see bench/console.py ---


@app.command(name="console")
def console_command(
    tasks: int = typer.Option(100_000, "--tasks", help="Tasks in the database (15 % open)"),
    events: int = typer.Option(1_000_000, "--events", help="Shipment events in the database"),
    requests: int = typer.Option(200, "--requests", help="Requests per page for the page times"),
    clients: int = typer.Option(50, "--clients", help="Live clients (event streams) for the alert latency"),
    rounds: int = typer.Option(10, "--rounds", help="Alerts written while the clients listen"),
    out: Path = typer.Option(None, "--out", dir_okay=False, help="JSON summary [default: bench/results/console.json]"),
    keep: bool = typer.Option(False, "--keep", help="Keep the work directory (Postgres data, the console's log)"),
) -> None:
    """The web console with 100,000 tasks and 1,000,000 shipment events: page times (p95 under 200 ms for
    queues, tasks, shipment) and 50 live clients each receiving a new alert (within 2 s)."""
    from bench.console import DEFAULT_OUT, ConsoleOptions, run_console_bench, summary_json

    options = ConsoleOptions(tasks, events, requests, clients, rounds, out=out or DEFAULT_OUT, keep=keep)
    summary = asyncio.run(run_console_bench(options, _say))
    options.out.parent.mkdir(parents=True, exist_ok=True)
    options.out.write_text(json.dumps(summary_json(summary), indent=2) + "\n")
    table = Table(
        title=f"hub console: {summary.tasks:,} tasks ({summary.open_tasks:,} open), "
        f"{summary.shipment_events:,} shipment events; load {summary.load_average_before} on {summary.cpus} cores"
    )
    for column in ("page", "requests", "p50 ms", "p95 ms", "max ms"):
        table.add_column(column, justify="left" if column == "page" else "right")
    for page in summary.pages:
        table.add_row(page.page, str(page.requests), f"{page.p50_ms:.1f}", f"{page.p95_ms:.1f}", f"{page.max_ms:.1f}")
    console.print(table)
    if summary.live:
        live = summary.live
        console.print(
            f"live: {live.clients} clients x {live.rounds} alerts, {live.deliveries} deliveries; "
            f"from commit to each client p50 {live.p50_ms} ms, p95 {live.p95_ms} ms, max {live.max_ms} ms; "
            f"all within 2 s: {live.all_within_2s}"
        )
    console.print(f"summary written to [bold]{options.out}[/]")


# --- `python -m bench reports` (issue 20): the reports over a month of 1,000,000 shipments; see bench/reports.py ---


@app.command(name="reports")
def reports_command(
    shipments: int = typer.Option(1_000_000, "--shipments", help="Shipments of the month (with their events, ...)"),
    customers: int = typer.Option(10_000, "--customers", help="Customers they belong to (each gets a statement)"),
    repeat: int = typer.Option(5, "--repeat", help="Runs of each report"),
    pdf_sample: int = typer.Option(100, "--pdf-sample", help="Statements rendered as PDF for the PDF rate"),
    month: str = typer.Option(None, "--month", help="YYYY-MM [default: last month in Asia/Shanghai]"),
    out: Path = typer.Option(None, "--out", dir_okay=False, help="JSON summary [default: bench/results/reports.json]"),
    keep: bool = typer.Option(False, "--keep", help="Keep the work directory (Postgres data and log)"),
) -> None:
    """complaints, kpi and a statement over a month of 1,000,000 shipments (each under 10 s), and the
    statements of 10,000 customers as the monthly sweep builds them (under 10 minutes); PDF rate."""
    from bench.reports import DEFAULT_OUT as REPORTS_OUT
    from bench.reports import ReportsOptions, run_reports_bench, write

    options = ReportsOptions(shipments, customers, repeat, pdf_sample, month, out=out or REPORTS_OUT, keep=keep)
    summary = asyncio.run(run_reports_bench(options, _say))
    table = Table(
        title=f"hub reports, {summary.month} ({summary.timezone}): {summary.shipments:,} shipments, "
        f"{summary.rows['shipment_events']:,} events, {summary.rows['coordination_tasks']:,} tasks, "
        f"{summary.rows['call_logs']:,} calls, {summary.customers:,} customers; "
        f"load {summary.load_average_before} -> {summary.load_average_after} on {summary.cpus} cores"
    )
    for column in ("what", "runs", "p50 s", "max s", "x seq scan", "target", "met"):
        table.add_column(column, justify="left" if column == "what" else "right")
    b = summary.baseline
    table.add_row(b.name, str(b.runs), f"{b.p50_s:.3f}", f"{b.max_s:.3f}", "1.0", "", "")
    for t in summary.reports:
        met = "" if t.met is None else ("yes" if t.met else "[red]no[/]")
        row = (f"{t.p50_s:.3f}", f"{t.max_s:.3f}", _ratio(t.ratio_to_scan), f"< {t.target_s:.0f} s")
        table.add_row(t.name, str(t.runs), *row, met)
    if summary.sweep:
        s = summary.sweep
        table.add_row(
            f"monthly_statement sweep: {s.statements:,} statements as JSON ({s.ticks} ticks)",
            "1",
            f"{s.total_s:.1f}",
            f"{s.total_s:.1f}",
            _ratio(s.total_s / b.p50_s),
            "",
            "",
        )
        table.add_row(
            "  per statement (sweep total / statements)",
            f"{s.statements:,}",
            f"{s.per_statement_ms / 1000:.3f}",
            "",
            _ratio(s.per_statement_ms / 1000 / b.p50_s),
            "",
            "",
        )
        table.add_row(
            "  10,000 statements at that rate",
            "",
            f"{s.extrapolated_10000_s:.1f}",
            "",
            "",
            f"< {s.target_s:.0f} s",
            "yes" if s.met else "[red]no[/]",
        )
    for rate in summary.pdf:
        table.add_row(
            f"statement PDF, HUB_REPORT_PROCESSES={rate.processes} (sample of {rate.sample}), per PDF",
            str(rate.sample),
            f"{rate.per_pdf_s:.3f}",
            "",
            _ratio(rate.per_pdf_s / b.p50_s),
            "",
            "",
        )
        table.add_row(
            f"  {summary.sweep.statements if summary.sweep else 0:,} PDFs at that rate (rendered at send time)",
            "",
            f"{rate.extrapolated_s:.0f}",
            "",
            "",
            "(none)",
            "",
        )
    console.print(table)
    for note in summary.notes:
        console.print(f"- {note}", highlight=False)
    console.print(f"summary written to [bold]{write(summary, options.out)}[/]")


def _ratio(x: float) -> str:
    return f"{x:,.0f}" if x >= 100 else f"{x:.1f}" if x >= 1 else f"{x:.2f}"


def _missing_msgspec_hint() -> None:
    try:
        import msgspec  # noqa: F401 - the floor pipeline needs it
    except ImportError:
        _fail("the floor pipeline needs msgspec: pip install msgspec (the `bench` extra)")


# --- `python -m bench clock` (issue 18): a tick's cost on a big database, and hub run's rate with the clock on ---


@app.command(name="clock")
def clock_command(
    shipments: int = typer.Option(1_000_000, "--shipments", help="Shipments in flight in the database"),
    open_tasks: int = typer.Option(100_000, "--open-tasks", help="Open tasks (as many closed ones besides)"),
    due: list[int] = typer.Option([0, 1_000, 10_000], "--due", help="Timers due at a measured tick; repeatable"),
    idle_ticks: int = typer.Option(20, "--idle-ticks", help="Ticks measured with nothing due"),
    repeat: int = typer.Option(3, "--repeat", help="Ticks measured per --due above 0"),
    events: int = typer.Option(150_000, "--events", help="Events `hub run` drains, clock off and on"),
    drain_repeat: int = typer.Option(2, "--drain-repeat", help="Drains with the clock off and on (interleaved)"),
    due_rate: float = typer.Option(100.0, "--due-rate", help="Timers coming due per second during the drains"),
    hub_workers: int = typer.Option(None, "--hub-workers", help="`hub run --workers` [default: cores, at most 6]"),
    seed: int = typer.Option(Options.seed, "--seed"),
    out: Path = typer.Option(None, "--out", dir_okay=False, help="JSON summary [default: bench/results/clock.json]"),
    keep: bool = typer.Option(False, "--keep", help="Keep the work directory (Postgres data, the hubs' logs)"),
) -> None:
    """A tick with 1,000,000 shipments in flight and 100,000 open tasks, with 0, 1,000 and 10,000 timers
    due (issue 18: under 20 ms idle, under 1 s for 10,000), and `hub run`'s drain rate with the clock
    off and on (within 10 % of the last committed figure)."""
    from bench.clock import ClockOptions, run_clock_bench, write

    if shipments < 100 or open_tasks < 100 or min(due, default=0) < 0 or idle_ticks < 1 or repeat < 1:
        _fail("--shipments and --open-tasks at least 100, --due at least 0, --idle-ticks and --repeat at least 1")
    if drain_repeat < 1 or events < 1_000 or due_rate < 0:
        _fail("--drain-repeat at least 1, --events at least 1,000, --due-rate at least 0")
    options = ClockOptions(
        shipments=shipments,
        open_tasks=open_tasks,
        due=tuple(due),
        idle_ticks=idle_ticks,
        repeat=repeat,
        events=events,
        drain_repeat=drain_repeat,
        due_rate=due_rate,
        seed=seed,
        keep=keep,
        **({"hub_workers": hub_workers} if hub_workers is not None else {}),
        **({"out": out} if out is not None else {}),
    )
    try:
        result = asyncio.run(run_clock_bench(options, _say))
    except (RuntimeError, TimeoutError) as exc:
        _fail(str(exc))
    path = write(result, options.out)
    for table in clock_tables(result):
        console.print(table)
    console.print(f"written to [bold]{path}[/]")


def clock_tables(result: dict) -> list[Table]:
    db, targets = result["database"], result["targets"]
    ticks = Table(
        title=f"hub clock: {db['shipments_in_flight']:,} shipments in flight, {db['open_tasks']:,} open tasks "
        f"({db['size_mb']:,} MB); load {result['load_average_before']} on {result['cpus']} cores"
    )
    for column in ("timers due", "ticks", "1st tick p50 ms", "1st tick max ms", "ticks to drain"):
        ticks.add_column(column, justify="right")
    for column in ("drain p50 ms", "drain max ms", "fired, each once", "target", "met"):
        ticks.add_column(column, justify="right")
    for row in result["ticks"]:
        first, whole = row["first_tick_ms"], row["to_drain_ms"]
        target, met = "", ""
        if row["due"] == 0:
            target, met = "< 20 ms", _yes(targets.get("idle_max_under_20ms"))
        elif row["due"] == 10_000:
            target, met = "< 1 s", _yes(targets.get("due_10000_drained_under_1s"))
        ticks.add_row(
            f"{row['due']:,}",
            str(row["ticks_measured"]),
            f"{first['p50']:,.1f}",
            f"{first['max']:,.1f}",
            str(row["ticks_to_drain"]),
            f"{whole['p50']:,.1f}",
            f"{whole['max']:,.1f}",
            f"{row['fired']:,}, {_yes(row['exactly_once'])}",
            target,
            met,
        )
    first = db["first_tick_of_month"]
    ticks.caption = (
        f"first tick of the month (calendar sweep): {first['fired']:,} key-account reviews in {first['ms']:,.0f} ms; "
        "a tick runs every chunk of due timers (500) until none is left, so 'ticks to drain' > 1 only for "
        "the monthly statements' per-tick share"
    )
    t = result["throughput"]
    drains = Table(
        title=f"hub run, {result['options']['hub_workers']} workers, {result['options']['events']:,} events, "
        f"{result['options']['due_rate']:g} timers/s coming due"
    )
    for column in ("clock", "runs", "events/s (median)", "min-max", "timers fired in drain", "vs clock off", "target"):
        drains.add_column(column, justify="right")
    for state in ("off", "on"):
        runs = [r for r in t["runs"] if r["clock"] == state]
        eps = [r["eps"] for r in runs]
        drains.add_row(
            state,
            str(len(runs)),
            f"{t[f'clock_{state}_eps']:,.0f}",
            f"{min(eps):,.0f}-{max(eps):,.0f}",
            ", ".join(f"{r['timers_fired_in_drain']:,}" for r in runs),
            f"{t['on_over_off']:.2f}" if state == "on" else "",
            f"within 10 %: {_yes(targets.get('throughput_on_within_10pct_of_off'))}" if state == "on" else "",
        )
    if t["last_committed_eps"]:
        about = t["last_committed"]
        drains.add_row(
            f"last committed ({about.get('commit')}, {about.get('events'):,} events)",
            "",
            f"{t['last_committed_eps']:,.0f}",
            "",
            "",
            f"on/committed {t['on_over_last_committed']:.2f}",
            f"within 10 %: {_yes(targets.get('throughput_within_10pct_of_last_committed'))}",
        )
    return [ticks, drains]


def _yes(value: object) -> str:
    return "-" if value is None else ("yes" if value else "NO")


# --- `python -m bench dispatch` (issue 19): webhook notifications/s and pending -> sent; see bench/dispatch.py ---


@app.command(name="dispatch")
def dispatch_command(
    notifications: int = typer.Option(5_000, "--notifications", help="Notices per throughput run (floor and hub)"),
    repeat: int = typer.Option(3, "--repeat", help="Floor and hub runs, alternating (median, min-max)"),
    endpoints: int = typer.Option(4, "--endpoints", help="Webhook customers, one endpoint (URL) each"),
    rate: float = typer.Option(200.0, "--rate", help="Notices written per second in the latency run"),
    seconds: float = typer.Option(25.0, "--seconds", help="Length of the latency run"),
    tick_s: float = typer.Option(0.02, "--tick-s", help="The latency run writes a transaction every this often"),
    out: Path = typer.Option(None, "--out", dir_okay=False, help="JSON summary [default: bench/results/dispatch.json]"),
    keep: bool = typer.Option(False, "--keep", help="Keep the work directory (Postgres data, logs)"),
) -> None:
    """Webhook notifications/s of the hub's dispatcher against a bare httpx POST loop at the same
    concurrency (target >= 0.5x), and pending -> sent at 200/s (target p99 <= 500 ms)."""
    from bench.dispatch import DEFAULT_OUT as DISPATCH_OUT
    from bench.dispatch import DispatchOptions, print_tables, run_dispatch_bench, write

    if notifications < 1 or repeat < 1 or endpoints < 1 or rate <= 0 or seconds <= 0 or tick_s <= 0:
        _fail("--notifications, --repeat and --endpoints must be at least 1; --rate, --seconds, --tick-s positive")
    options = DispatchOptions(notifications, repeat, endpoints, rate, seconds, tick_s, out or DISPATCH_OUT, keep)
    try:
        result = asyncio.run(run_dispatch_bench(options, _say))
    except (RuntimeError, TimeoutError) as exc:
        _fail(str(exc))
    print_tables(console, result)
    console.print(f"written to [bold]{write(result, options.out)}[/]")


if __name__ == "__main__":
    app(prog_name=f"{Path(sys.executable).name} -m bench")
