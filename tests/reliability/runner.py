"""Run scenarios, judge each from all its attempts, and report the scorecard (rich table and JSON).

An attempt ends in one of three verdicts:

  PASS       no failure of any kind.
  FAIL       a correctness failure: the oracle found a lost or doubled effect or another broken
             invariant (checker.Findings.violations: lost, duplicate effects, unexpected effects,
             missing alerts, stale overwrites, dead-letter mismatches, dead letters missing from
             the topic, altered text), or the scenario found a broken contract (a crash, a
             graceful stop that is not, a canary leak, a replay that changed rows, ...); or the
             attempt could not be judged at all (the scenario raised or ran out of time before
             the oracle ran: nothing shows it lost nothing).
  LIVENESS   nothing lost or doubled, but work not done in time: no progress, not caught up,
             lag not zero, outbox not drained (Outcome.stalls), events not yet read or alerts
             still in the outbox when the checker looked (Findings.backlog).

A row (one scenario) is FAIL as soon as any attempt is FAIL: a later attempt never clears it, so
a correctness failure is not re-run. Only after a LIVENESS attempt is the scenario run again (at
most MAX_ATTEMPTS in all); the row is PASS if an attempt passed and none failed, and every
LIVENESS attempt of a passing row is a *flake*, printed in the row ("PASS (flaky)") and listed in
the scorecard's flake section and JSON. A row whose attempts all stalled is FAIL. Evidence that
ties a failure to the test broker (Tansu 0.6) is reported beside it and changes no verdict.
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
from rich.console import Group
from rich.table import Table

from tests.reliability.harness import Services
from tests.reliability.scenarios import BY_NAME, SCENARIOS, Context, Outcome, Scenario

PASS, FAIL, LIVENESS = "PASS", "FAIL", "LIVENESS"
SIZES = ("smoke", "full")
RESULTS_DIR = Path(__file__).with_name("results")
SCENARIO_TIMEOUT_S = {"smoke": 420.0, "full": 2400.0}
MAX_ATTEMPTS = 2  # one re-run, and only after a liveness failure
BASE_SEED = 20261127


@dataclass
class Attempt:
    number: int
    correctness: list[str]  # lost/doubled effects and broken contracts: the row FAILs
    liveness: list[str]  # stalls and backlog: may be cleared by a clean re-run, then shown as a flake
    evidence: list[str]  # what ties a failure to the test broker; informative, changes nothing
    outcome: Outcome | None
    error: str | None
    wall_s: float
    folder: Path

    @property
    def judged(self) -> bool:
        """The oracle ran: an attempt without an outcome (the scenario raised) proves nothing."""
        return self.outcome is not None

    @property
    def status(self) -> str:
        if self.correctness or not self.judged:
            return FAIL
        return LIVENESS if self.liveness else PASS

    @property
    def failures(self) -> list[str]:
        return [*self.correctness, *self.liveness]

    def to_json(self) -> dict:
        o = self.outcome
        return {
            "attempt": self.number,
            "status": self.status,
            "failures": self.failures,
            "correctness_failures": self.correctness,
            "liveness_failures": self.liveness,
            "broker_evidence": self.evidence,
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


def judge(attempts: list[Attempt]) -> str:
    """A row's status from all its attempts, in any order: FAIL if one failed (a correctness failure
    or an unjudged attempt), PASS if none did and one passed cleanly, FAIL if all only stalled."""
    statuses = {a.status for a in attempts}
    if FAIL in statuses or PASS not in statuses:
        return FAIL
    return PASS


def should_rerun(attempts: list[Attempt]) -> bool:
    """Another attempt only while every attempt so far only stalled, and not beyond MAX_ATTEMPTS."""
    return len(attempts) < MAX_ATTEMPTS and all(a.status == LIVENESS for a in attempts)


@dataclass
class Row:
    scenario: Scenario
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def final(self) -> Attempt:
        return self.attempts[-1]

    @property
    def shown(self) -> Attempt:
        """The attempt the table's figures come from: a failed one if any (the evidence), else the last."""
        return next((a for a in self.attempts if a.status == FAIL), self.final)

    @property
    def status(self) -> str:
        return judge(self.attempts)

    @property
    def flakes(self) -> list[Attempt]:
        """Liveness failures a clean attempt cleared (only on a passing row)."""
        return [a for a in self.attempts if a.status == LIVENESS] if self.status == PASS else []

    @property
    def result(self) -> str:
        return f"{PASS} (flaky)" if self.flakes else self.status

    @property
    def note(self) -> str:
        shown = self.shown
        parts = []
        for a in self.attempts:
            if a.status == FAIL:
                parts.append(f"attempt {a.number} FAIL: {'; '.join(a.correctness)}")
            elif a.status == LIVENESS:
                kind = "flaky" if self.status == PASS else "stalled"
                parts.append(f"{kind}: attempt {a.number} {'; '.join(a.liveness)[:300]}")
            parts.extend(f"attempt {a.number} broker evidence: {line}" for line in a.evidence)
        parts.extend(shown.outcome.notes if shown.outcome else [])
        return "; ".join(p for p in parts if p)

    def cells(self) -> dict:
        o = self.shown.outcome
        f = o.findings if o else None
        return {
            "scenario": self.scenario.name,
            "events": o.workload["good_events"] if o else None,
            "faults": len(o.faults) if o else None,
            "lost": f.lost_total if f else None,
            "duplicate_effects": f.doubled_total if f else None,
            "duplicate_alerts": f.duplicate_alerts if f else None,
            "dead_letters": f.dead_letters if f else None,
            "recovery_s": _round(o.recovery_s) if o else None,
            "result": self.status,
            "note": self.note,
        }

    def flake_records(self) -> list[dict]:
        return [
            {
                "scenario": self.scenario.name,
                "attempt": a.number,
                "liveness_failures": a.liveness,
                "broker_evidence": a.evidence,
                "cleared_by_attempt": next(b.number for b in self.attempts if b.status == PASS),
                "folder": str(a.folder),
            }
            for a in self.flakes
        ]

    def to_json(self) -> dict:
        return {
            **self.cells(),
            "flaky": bool(self.flakes),
            "title": self.scenario.title,
            "attempts": [a.to_json() for a in self.attempts],
        }


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

    @property
    def flakes(self) -> list[dict]:
        return [flake for row in self.rows for flake in row.flake_records()]

    def to_json(self) -> dict:
        counts = {s: sum(1 for r in self.rows if r.status == s) for s in (PASS, FAIL)}
        return {
            "size": self.size,
            "started_at": self.started_at,
            "wall_s": round(self.wall_s, 1),
            "passed": self.passed,
            "counts": {**counts, "flaky": sum(1 for r in self.rows if r.flakes)},
            "workdir": self.workdir,
            "flakes": self.flakes,
            "rows": [r.to_json() for r in self.rows],
        }


def _round(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


# --- judging -----------------------------------------------------------------------------------------


def classify(outcome: Outcome) -> tuple[list[str], list[str]]:
    """(correctness failures, liveness failures) of a judged attempt."""
    return outcome.findings.violations() + list(outcome.failures), outcome.findings.backlog() + list(outcome.stalls)


def broker_evidence(outcome: Outcome) -> list[str]:
    """What ties an attempt's failures to the test broker (Tansu 0.6). Reported; decides nothing."""
    f = outcome.findings
    found = []
    if f.lost_missing_on_broker:
        found.append(
            f"{f.lost_missing_on_broker} of {f.lost} lost events are not served by the broker at their "
            f"acknowledged offsets (e.g. {f.samples.get('missing on broker', ['?'])[0]})"
        )
    if outcome.group_trouble:
        found.append(
            f"the hub logged group-protocol errors: {', '.join(outcome.group_trouble[:4])}"
            + (f" (stuck: {outcome.stuck})" if outcome.stuck else "")
        )
    return found


async def run_attempt(
    scenario: Scenario, size: str, services: Services, folder: Path, number: int, seed: int
) -> Attempt:
    folder.mkdir(parents=True, exist_ok=True)
    ctx = Context(scenario.name, size, services, folder, seed)
    started = time.monotonic()
    try:
        outcome = await asyncio.wait_for(scenario.run(ctx), SCENARIO_TIMEOUT_S[size])
    except Exception as exc:  # noqa: BLE001 - a crashed scenario is an unjudged (failed) attempt, with its traceback
        error = "".join(traceback.format_exception(exc))[-4000:]
        text = f"scenario error: {type(exc).__name__}: {str(exc)[:300]}"
        return Attempt(
            number, [*ctx.failures, text], list(ctx.stalls), [], None, error, time.monotonic() - started, folder
        )
    correctness, liveness = classify(outcome)
    evidence = broker_evidence(outcome) if correctness or liveness else []
    return Attempt(number, correctness, liveness, evidence, outcome, None, time.monotonic() - started, folder)


async def run_row(scenario: Scenario, size: str, services: Services, seed: int, report: Callable[[str], None]) -> Row:
    row = Row(scenario)
    while not row.attempts or should_rerun(row.attempts):
        number = len(row.attempts) + 1
        report(f"{scenario.name}: attempt {number} ({size})")
        attempt = await run_attempt(
            scenario, size, services, services.workdir / scenario.name / f"attempt-{number}", number, seed
        )
        row.attempts.append(attempt)
        report(
            f"{scenario.name}: attempt {number} {attempt.status} in {attempt.wall_s:.0f}s"
            + (f" - {'; '.join(attempt.failures)[:400]}" if attempt.failures else "")
        )
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
STYLE = {PASS: "bold green", FAIL: "bold red"}
FLAKY_STYLE = "bold yellow"
FLAKE_COLUMNS = ("scenario", "attempt", "liveness failure", "broker evidence", "cleared by")


def _flake_cells(flake: dict) -> list[str]:
    return [
        flake["scenario"],
        str(flake["attempt"]),
        "; ".join(flake["liveness_failures"]),
        "; ".join(flake["broker_evidence"]) or "-",
        f"attempt {flake['cleared_by_attempt']}",
    ]


def render(card: Scorecard) -> Group:
    """The scorecard table, then every flake (a liveness failure a re-run cleared) in its own table."""
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
        style = FLAKY_STYLE if row.flakes else STYLE[row.status]
        values[COLUMNS.index(("result", "result"))] = f"[{style}]{row.result}[/]"
        table.add_row(*values)
    flakes = Table(
        title=f"Flakes ({len(card.flakes)}): liveness failures a re-run cleared (nothing lost or doubled)",
        show_lines=True,
    )
    for header in FLAKE_COLUMNS:
        flakes.add_column(header, overflow="fold", max_width=70 if header != "scenario" else None)
    for flake in card.flakes:
        flakes.add_row(*_flake_cells(flake))
    return Group(table, flakes) if card.flakes else Group(table, "Flakes: none")


def markdown(card: Scorecard) -> str:
    """The same tables as Markdown (for reports and pull requests)."""
    lines = ["| " + " | ".join(h for _, h in COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in card.rows:
        cells = {**row.cells(), "result": row.result}
        lines.append(
            "| " + " | ".join("-" if cells[k] is None else str(cells[k]).replace("|", "/") for k, _ in COLUMNS) + " |"
        )
    lines.append("")
    if not card.flakes:
        lines.append("Flakes: none")
        return "\n".join(lines)
    lines.append(f"Flakes ({len(card.flakes)}): liveness failures a re-run cleared (nothing lost or doubled)")
    lines.append("")
    lines += ["| " + " | ".join(FLAKE_COLUMNS) + " |", "|" + "---|" * len(FLAKE_COLUMNS)]
    for flake in card.flakes:
        lines.append("| " + " | ".join(c.replace("|", "/") for c in _flake_cells(flake)) + " |")
    return "\n".join(lines)


def default_json_path(size: str) -> Path:
    return RESULTS_DIR / f"scorecard-{size}.json"


def write_json(card: Scorecard, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(orjson.dumps(card.to_json(), option=orjson.OPT_INDENT_2, default=str))
    return path
