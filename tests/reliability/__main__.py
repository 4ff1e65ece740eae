"""`python -m tests.reliability`: run the reliability scorecard outside pytest and print it.

Starts its own Tansu and PostgreSQL (hub.dev.embedded), runs the scenarios of
tests/reliability/scenarios.py against `hub run` subprocesses, prints the scorecard and writes
it as JSON. A development tool: it lives with the tests, from a source checkout installed with
`pip install -e '.[test]'`, and the hub's wheel does not ship it.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

import typer
from rich.console import Console

from tests.reliability import runner
from tests.reliability.scenarios import BY_NAME

console = Console()
app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)


def _fail(message: str) -> None:
    Console(stderr=True).print(f"[bold red]error:[/] {message}")
    raise typer.Exit(2)


@app.command()
def reliability(
    size: str = typer.Option("smoke", "--size", help="smoke (a few minutes) or full (the issue's sizes)"),
    only: list[str] = typer.Option(None, "--only", help="Run only this scenario (repeatable)"),
    json_file: Path = typer.Option(
        None, "--json", help="Where to write the scorecard (default: tests/reliability/results/scorecard-<size>.json)"
    ),
    parallel: int = typer.Option(1, "--parallel", min=1, max=4, help="Scenarios run side by side"),
    workdir: Path = typer.Option(
        None, "--workdir", help="Logs and ledgers of every attempt (default: a new temporary directory, kept)"
    ),
) -> None:
    """Crashes, outages, rebalances and hostile input against `hub run`: nothing may be lost or doubled."""
    if size not in runner.SIZES:
        _fail(f"--size {size!r}: use one of {', '.join(runner.SIZES)}")
    unknown = [n for n in only or [] if n not in BY_NAME]
    if unknown:
        _fail(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(BY_NAME)}")
    work = workdir or Path(tempfile.mkdtemp(prefix=f"hub-reliability-{size}-"))
    card = asyncio.run(
        runner.run_scorecard(
            size, only or None, work, parallel=parallel, report=lambda line: console.print(f"[dim]{line}[/]")
        )
    )
    if not console.is_terminal:
        console.width = max(console.width, 200)  # a log file gets the whole table, not 80 columns
    console.print(runner.render(card))
    path = runner.write_json(card, json_file or runner.default_json_path(size))
    console.print(f"scorecard written to {path}; logs and ledgers in {work}")
    if not card.passed:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
