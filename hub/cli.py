"""The `hub` command line. Each command group lives in `hub/commands/<group>.py` and exports
`app` (a Typer group) or `register(app)` (top-level commands); this module only collects them."""

from __future__ import annotations

import importlib
import pkgutil
from importlib.metadata import PackageNotFoundError, version

import typer

import hub.commands

app = typer.Typer(
    name="hub",
    help="Kafka-native integration hub for a logistics customer-service desk.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _version(show: bool) -> None:
    if show:
        try:
            typer.echo(f"hub {version('logistics-hub')}")
        except PackageNotFoundError:  # a source tree that was never installed
            typer.echo("hub (not installed: pip install -e .)")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the hub's version and exit."
    ),
) -> None:
    """Kafka-native integration hub for a logistics customer-service desk."""


def _collect() -> None:
    for info in sorted(pkgutil.iter_modules(hub.commands.__path__), key=lambda m: m.name):
        module = importlib.import_module(f"hub.commands.{info.name}")
        if hasattr(module, "register"):
            module.register(app)
        elif hasattr(module, "app"):
            app.add_typer(module.app, name=getattr(module, "NAME", info.name))


_collect()


def main() -> None:
    app()


if __name__ == "__main__":
    main()
