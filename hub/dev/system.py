"""`python -m hub.dev.system`: the few system packages pip cannot bring, installed when missing.

What needs them: PDF reports and statements (WeasyPrint draws with Pango and HarfBuzz), the tests'
checks of those PDFs (poppler's pdftotext and pdftoppm), the console's browser tests (Debian's
Chromium, driven by Playwright, and a Chinese font so screenshots show Chinese, not boxes), and
promtool for the alerting rules. Fonts for the PDFs themselves come from pip.

Debian and Ubuntu (apt-get), as root or with password-less sudo. Anything present is skipped, so a
second run takes a fraction of a second. `--check` only reports; it exits 1 when something is missing.
"""

from __future__ import annotations

import argparse
import ctypes.util
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from typing import NamedTuple


class Need(NamedTuple):
    package: str
    why: str
    present: Callable[[], bool]


def _command(name: str) -> Callable[[], bool]:
    return lambda: shutil.which(name) is not None


def _library(name: str) -> Callable[[], bool]:
    return lambda: ctypes.util.find_library(name) is not None


def _chinese_font() -> bool:
    if shutil.which("fc-list") is None:
        return False
    listed = subprocess.run(["fc-list", ":lang=zh"], capture_output=True, text=True, check=False)
    return bool(listed.stdout.strip())


NEEDS = (
    Need("libpango-1.0-0", "PDF reports (WeasyPrint)", _library("pango-1.0")),
    Need("libpangoft2-1.0-0", "PDF reports (WeasyPrint)", _library("pangoft2-1.0")),
    Need(
        "libharfbuzz-subset0",
        "PDF reports: font subsetting (else each render takes seconds)",
        _library("harfbuzz-subset"),
    ),
    Need("poppler-utils", "the tests' checks of the PDFs (pdftotext, pdftoppm, pdffonts)", _command("pdftotext")),
    Need("chromium", "the console's browser tests (driven by Playwright, never downloaded)", _command("chromium")),
    Need("fonts-wqy-microhei", "Chinese in the console's screenshots", _chinese_font),
    Need("prometheus", "promtool: the tests check the alerting rules with it", _command("promtool")),
)


def missing() -> list[Need]:
    return [need for need in NEEDS if not need.present()]


def install(packages: list[str]) -> int:
    if shutil.which("apt-get") is None:
        print("no apt-get here: install these with your package manager: " + " ".join(packages), file=sys.stderr)
        return 1
    prefix: list[str] = []
    if os.geteuid() != 0:
        if shutil.which("sudo") is None:
            print("not root and no sudo: as root, run apt-get install -y " + " ".join(packages), file=sys.stderr)
            return 1
        prefix = ["sudo", "-n"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (
        ["apt-get", "update", "-q"],
        ["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages],
    ):
        result = subprocess.run([*prefix, *command], env=env, check=False)
        if result.returncode != 0:
            print(
                f"{' '.join(command[:2])} failed (exit {result.returncode}); the packages needed: "
                + " ".join(packages),
                file=sys.stderr,
            )
            return result.returncode
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hub.dev.system", description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="Only report what is missing (exit 1 if anything is)")
    args = parser.parse_args(argv)
    needed = missing()
    if not needed:
        print("system packages: all present")
        return 0
    for need in needed:
        print(f"missing {need.package}: {need.why}")
    if args.check:
        return 1
    return install([need.package for need in needed])


if __name__ == "__main__":
    sys.exit(main())
