"""The project's checked habits, part of the test suite so the README's test command runs them:
dependencies point one way (import-linter), lint and format (ruff), types (mypy; strict on the core).

Each runs the tool as a developer would, from the repository root, and shows its output on failure.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _run(*command: str, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=timeout)


def test_dependencies_point_one_way():
    result = _run(str(BIN / "lint-imports"), "--no-cache")
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize("args", [("check", "."), ("format", "--check", ".")], ids=["lint", "format"])
def test_ruff(args: tuple[str, ...]):
    result = _run(str(BIN / "ruff"), *args)
    assert result.returncode == 0, f"ruff {' '.join(args)}:\n{result.stdout[-6000:]}{result.stderr[-2000:]}"


def test_mypy():
    result = _run(sys.executable, "-m", "mypy")
    assert result.returncode == 0, result.stdout[-8000:] + result.stderr[-2000:]


def test_production_code_never_imports_the_test_tree():
    offenders = []
    for package in ("hub", "consumers", "producers", "schemas"):
        for path in (ROOT / package).rglob("*.py"):
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                text = line.strip()
                if text.startswith(("import tests", "from tests")) or "sys.path" in text:
                    offenders.append(f"{path.relative_to(ROOT)}:{number}: {text}")
    assert not offenders, offenders
