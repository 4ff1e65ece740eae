"""Run scenarios, re-run a failure once, and report the scorecard (rich table and JSON).

A failed scenario is run a second time before it counts; both attempts are recorded. The row
is PASS when an attempt passes (a pass on the re-run says so in the note, with the first
attempt's failures), BROKER-SUSPECT when both attempts failed only in ways the evidence ties
to the test broker (Tansu 0.6: records it no longer serves at their acknowledged offsets, or
partitions stuck while the hub logs group-protocol errors), FAIL otherwise.
"""

from __future__ import annotations

import asyncio
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import orjson
from rich.table import Table

from tests.reliability.harness import Services
from tests.reliability.scenarios import BY_NAME, SCENARIOS, Context, Outcome, Scenario

PASS, FAIL, SUSPECT = "PASS", "FAIL", "BROKER-SUSPECT"
SIZES = ("smoke", "full")
RESULTS_DIR = Path(__file__).with_name("results")
SCENARIO_TIMEOUT_S = {"smoke": 300.0, "full": 2400.0}
BASE_SEED = 20261127
# Failures that a broker losing records or wedging a group explains (see broker_suspicion).
LOSS_SIGNS = ("lost:", "missing alerts:")
STALL_SIGNS = ("not caught up", "lag not zero", "no progress")


@dataclass
class Attempt:
    number: int
    status: str
    failures: list[str]
    suspicion: str | None
    outcome: Outcome | None
    error: str | None
    wall_s: float
    folder: Path

    def to_json(self) -> dict:
        o = self.outcome
        return {
            "attempt": self.number,
            "status": self.status,
            "failures": self.failures,
            "broker_suspicion": self.suspicion,
            "error": self.error,
            "wall_s": round(self.wall_s, 1),
            "folder": str(self.folder),
            **(
                {}
                if o is None
                else {
                    "workload": o.workload,
                    "faults": o.faults,
                    "recovery_s": _round(o.recovery_s),
                    "stuck_partitions": o.stuck,
                    "notes": o.notes,
                    "extra": o.extra,
                    "group_trouble": o.group_trouble,
                    "findings": o.findings.to_json(),
                }
            ),
        }


@dataclass
class Row:
    scenario: Scenario
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def final(self) -> Attempt:
        return self.attempts[-1]

    @property
    def status(self) -> str:
        if any(a.status == PASS for a in self.attempts):
            return PASS
        if self.attempts and all(a.suspicion for a in self.attempts):
            return SUSPECT
        return FAIL

    @property
    def note(self) -> str:
        final = self.final
        parts = list(final.outcome.notes) if final.outcome else []
        if self.status == SUSPECT:
            parts.insert(0, f"broker-suspect: {final.suspicion}")
        elif self.status == FAIL:
            parts.insert(0, "; ".join(final.failures))
        if len(self.attempts) > 1:
            first = self.attempts[0]
            parts.append(
                f"attempt 1 {first.status}: {'; '.join(first.failures)[:200]}"
                + (f" (broker-suspect: {first.suspicion})" if first.suspicion else "")
            )
        return "; ".join(p for p in parts if p)

    def cells(self) -> dict:
        o = self.final.outcome
        f = o.findings if o else None
        return {
            "scenario": self.scenario.name,
            "events": o.workload["good_events"] if o else None,
            "faults": len(o.faults) if o else None,
            "lost": f.lost if f else None,
            "duplicate_effects": f.duplicate_effects if f else None,
            "duplicate_alerts": f.duplicate_alerts if f else None,
            "dead_letters": f.dead_letters if f else None,
            "recovery_s": _round(o.recovery_s) if o else None,
            "result": self.status,
            "note": self.note,
        }

    def to_json(self) -> dict:
        return {**self.cells(), "title": self.scenario.title, "attempts": [a.to_json() for a in self.attempts]}


@dataclass
class Scorecard:
    size: str
    rows: list[Row]
    started_at: str
    wall_s: float = 0.0
    workdir: str = ""

    @property
    def passed(self) -> bool:
        return all(r.status == PASS for r in self.rows)

    def to_json(self) -> dict:
        counts = {s: sum(1 for r in self.rows if r.status == s) for s in (PASS, FAIL, SUSPECT)}
        return {
            "size": self.size,
            "started_at": self.started_at,
            "wall_s": round(self.wall_s, 1),
            "passed": self.passed,
            "counts": counts,
            "workdir": self.workdir,
            "rows": [r.to_json() for r in self.rows],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --- judging -----------------------------------------------------------------------------------------


def failures_of(outcome: Outcome) -> list[str]:
    return outcome.findings.violations() + list(outcome.failures)


def broker_suspicion(outcome: Outcome, failures: list[str]) -> str | None:
    """Evidence that the test broker, not the hub, explains every failure of an attempt."""
    f = outcome.findings
    if f.lost and f.lost_missing_on_broker == f.lost and all(x.startswith(LOSS_SIGNS) for x in failures):
        return (
            f"all {f.lost} lost events are absent from the broker at their acknowledged offsets "
            f"(e.g. {f.samples.get('missing on broker', ['?'])[0]})"
        )
    if outcome.group_trouble and all(any(sign in x for sign in STALL_SIGNS) for x in failures):
        return (
            f"partitions stuck {outcome.stuck or ''} while the hub logs group-protocol errors: "
            f"{', '.join(outcome.group_trouble[:4])}"
        )
    return None


async def run_attempt(
    scenario: Scenario, size: str, services: Services, folder: Path, number: int, seed: int
) -> Attempt:
    folder.mkdir(parents=True, exist_ok=True)
    ctx = Context(scenario.name, size, services, folder, seed)
    started = time.monotonic()
    try:
        outcome = await asyncio.wait_for(scenario.run(ctx), SCENARIO_TIMEOUT_S[size])
    except Exception as exc:  # noqa: BLE001 - a crashed scenario is a failed attempt, with its traceback
        error = "".join(traceback.format_exception(exc))[-4000:]
        text = f"scenario error: {type(exc).__name__}: {str(exc)[:300]}"
        return Attempt(number, FAIL, [*ctx.failures, text], None, None, error, time.monotonic() - started, folder)
    failures = failures_of(outcome)
    status = PASS if not failures else FAIL
    suspicion = broker_suspicion(outcome, failures) if failures else None
    return Attempt(number, status, failures, suspicion, outcome, None, time.monotonic() - started, folder)


async def run_row(scenario: Scenario, size: str, services: Services, seed: int, report: Callable[[str], None]) -> Row:
    row = Row(scenario)
    for number in (1, 2):
        report(f"{scenario.name}: attempt {number} ({size})")
        attempt = await run_attempt(
            scenario, size, services, services.workdir / scenario.name / f"attempt-{number}", number, seed
        )
        row.attempts.append(attempt)
        report(
            f"{scenario.name}: attempt {number} {attempt.status} in {attempt.wall_s:.0f}s"
            + (f" - {'; '.join(attempt.failures)[:400]}" if attempt.failures else "")
        )
        if attempt.status == PASS:
            break
    return row


async def run_scorecard(
    size: str, names: list[str] | None, workdir: Path, *, parallel: int = 1, report: Callable[[str], None] = print
) -> Scorecard:
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}")
    chosen = [BY_NAME[n] for n in names] if names else list(SCENARIOS)
    started = time.monotonic()
    card = Scorecard(size, [], datetime.now(UTC).isoformat(timespec="seconds"), workdir=str(workdir))
    services = Services.start(workdir)
    report(
        f"services: Tansu {services.broker.bootstrap}, PostgreSQL 18 on port {services.postgres.port}; "
        f"work in {workdir}"
    )
    try:
        rows: dict[str, Row] = {}
        queue = list(chosen)

        async def lane() -> None:
            while queue:
                scenario = queue.pop(0)
                seed = BASE_SEED + [s.name for s in SCENARIOS].index(scenario.name)
                rows[scenario.name] = await run_row(scenario, size, services, seed, report)

        await asyncio.gather(*(lane() for _ in range(max(1, parallel))))
        card.rows = [rows[s.name] for s in chosen]
    finally:
        services.stop()
    card.wall_s = time.monotonic() - started
    return card


# --- reporting ------------------------------------------------------------------------------------------

COLUMNS = (
    ("scenario", "scenario"),
    ("events", "events"),
    ("faults", "faults injected"),
    ("lost", "lost"),
    ("duplicate_effects", "duplicate effects"),
    ("duplicate_alerts", "duplicate alerts"),
    ("dead_letters", "dead letters"),
    ("recovery_s", "recovery s"),
    ("result", "result"),
    ("note", "note"),
)
STYLE = {PASS: "bold green", FAIL: "bold red", SUSPECT: "bold yellow"}


def render(card: Scorecard) -> Table:
    table = Table(title=f"Reliability scorecard ({card.size}, {card.wall_s:.0f} s wall)", show_lines=True)
    for key, header in COLUMNS:
        table.add_column(
            header,
            overflow="fold",
            max_width=70 if key == "note" else None,
            justify="right" if key not in ("scenario", "result", "note") else "left",
        )
    for row in card.rows:
        cells = row.cells()
        values = ["-" if cells[key] is None else str(cells[key]) for key, _ in COLUMNS]
        values[COLUMNS.index(("result", "result"))] = f"[{STYLE[row.status]}]{row.status}[/]"
        table.add_row(*values)
    return table


def markdown(card: Scorecard) -> str:
    """The same table as Markdown (for reports and pull requests)."""
    lines = ["| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in card.rows:
        cells = row.cells()
        lines.append(
            "| " + " | ".join("-" if cells[k] is None else str(cells[k]).replace("|", "/") for k, _ in COLUMNS) + " |"
        )
    return "\n".join(lines)


def default_json_path(size: str) -> Path:
    return RESULTS_DIR / f"scorecard-{size}.json"


def write_json(card: Scorecard, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(card.to_json(), option=orjson.OPT_INDENT_2, default=str))
    return path
