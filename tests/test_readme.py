"""The README documents every setting and every command (its users read nothing else)."""

from __future__ import annotations

from pathlib import Path

from hub.cli import app
from hub.config import Settings

README = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")


def test_every_setting_is_in_the_readme():
    missing = [f"HUB_{name.upper()}" for name in Settings.model_fields if f"`HUB_{name.upper()}`" not in README]
    assert not missing, f"add to README's configuration table: {missing}"


def test_every_command_is_in_the_readme():
    import typer.main

    group = typer.main.get_command(app)
    names = []
    for name, command in group.commands.items():
        subcommands = getattr(command, "commands", None)
        names += [f"hub {name} {sub}" for sub in subcommands] if subcommands else [f"hub {name}"]
    missing = [n for n in names if n not in README]
    assert not missing, f"add to README's command table: {missing}"
