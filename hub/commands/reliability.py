"""`hub reliability`: run the reliability scorecard outside pytest and print it.

Starts its own Tansu and PostgreSQL (hub.embedded), runs the scenarios of
tests/reliability/scenarios.py against `hub run` subprocesses, prints the scorecard and writes
it as JSON. Needs a source checkout (the scenarios live with the tests) and the `test` extra.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
from pathlib import Path

import typer

from hub.commands._common import console, fail

REPO_ROOT = Path(__file__).resolve().parents[2]


def _runner():
    if not (REPO_ROOT / "tests" / "reliability" / "runner.py").exists():
        fail(f"the scorecard's scenarios are not next to this hub ({REPO_ROOT / 'tests' / 'reliability'}); "
             "run `hub reliability` from a source checkout installed with `pip install -e '.[test]'`")
    if str(REPO_ROOT) not in sys.path:
        sys.path.insert(0, str(REPO_ROOT))
    try:
        from tests.reliability import runner
    except ImportError as exc:
        fail(f"cannot load the scorecard ({exc}); install the test extra: pip install -e '.[test]'")
    return runner


def register(app: typer.Typer) -> None:
    @app.command(name="reliability")
    def reliability(
        size: str = typer.Option("smoke", "--size", help="smoke (a few minutes) or full (the issue's sizes)"),
        only: list[str] = typer.Option(None, "--only", help="Run only this scenario (repeatable)"),
        json_file: Path = typer.Option(None, "--json", help="Where to write the scorecard "
                                       "(default: tests/reliability/results/scorecard-<size>.json)"),
        parallel: int = typer.Option(1, "--parallel", min=1, max=4, help="Scenarios run side by side"),
        workdir: Path = typer.Option(None, "--workdir", help="Logs and ledgers of every attempt "
                                     "(default: a new temporary directory, kept)"),
    ) -> None:
        """Crashes, outages, rebalances and hostile input against `hub run`: nothing may be lost or doubled."""
        runner = _runner()
        from tests.reliability.scenarios import BY_NAME

        if size not in runner.SIZES:
            fail(f"--size {size!r}: use one of {', '.join(runner.SIZES)}")
        unknown = [n for n in only or [] if n not in BY_NAME]
        if unknown:
            fail(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
        work = workdir or Path(tempfile.mkdtemp(prefix=f"hub-reliability-{size}-"))
        card = asyncio.run(runner.run_scorecard(size, only or None, work, parallel=parallel,
                                                report=lambda line: console.print(f"[dim]{line}[/]")))
        if not console.is_terminal:
            console.width = max(console.width, 200)  # a log file gets the whole table, not 80 columns
        console.print(runner.render(card))
        path = runner.write_json(card, json_file or runner.default_json_path(size))
        console.print(f"scorecard written to {path}; logs and ledgers in {work}")
        if not card.passed:
            raise typer.Exit(1)
