"""A process that made a PDF leaves no copy of the font behind in the temporary folder.

WeasyPrint copies the packaged font (8 MB) into a temporary folder per font configuration; the
hub keeps one per process, and WeasyPrint's own cleanup (in __del__) can run after its module is
torn down at interpreter exit, fail, and leave the copy in /tmp: it did once per suite run. The
script below makes that teardown order certain, in a process and in a report process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent

SCRIPT = """
import multiprocessing, sys
from concurrent.futures import ProcessPoolExecutor
from hub.reports.render import to_pdf

def render(text):
    size = len(to_pdf(f"<p>{text} 你好</p>"))
    # What a long-lived process's exit does (seen at the end of every suite run): WeasyPrint's module
    # is torn down before the font configuration, whose __del__ then calls a `rmtree` gone to None.
    import weasyprint.text.fonts
    weasyprint.text.fonts.rmtree = None
    return size

if __name__ == "__main__":
    assert render("in this process") > 1000
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        assert pool.submit(render, "in a report process").result() > 1000
    print("rendered")
"""


def test_neither_the_process_nor_its_report_process_leaves_the_font_copy(tmp_path: Path) -> None:
    script = tmp_path / "render_twice.py"
    script.write_text(SCRIPT)
    temp = tmp_path / "tmp"
    temp.mkdir()
    env = {**os.environ, "TMPDIR": str(temp), "PYTHONPATH": str(REPO_ROOT)}
    run = subprocess.run(
        [sys.executable, str(script)], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0 and "rendered" in run.stdout, run.stdout + run.stderr
    assert sorted(p.name for p in temp.iterdir()) == [], "font copies left behind"
    assert "Exception ignored" not in run.stderr, run.stderr
