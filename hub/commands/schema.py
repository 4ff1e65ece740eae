"""`hub schema export DIR`: JSON Schema per topic and the AsyncAPI document."""

from __future__ import annotations

from pathlib import Path

import typer

from hub.commands._common import console

NAME = "schema"
app = typer.Typer(help="Contract documents for integrators.", no_args_is_help=True)


@app.command()
def export(directory: Path = typer.Argument(Path("schemas/json"), help="Folder to write into")) -> None:
    """Write one JSON Schema per topic and asyncapi.json (committed under schemas/json/)."""
    from consumers.spec import export as write

    for path in write(directory):
        console.print(f"wrote {path}")
