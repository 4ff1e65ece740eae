"""A hung test ends the run's wait for it, and says where it hung.

pytest-timeout bounds every test (pyproject: `timeout`, method `thread`): past its time the worker
exits, xdist reports the test as crashed and goes on with a new worker, so a hang costs one test, not
CI's whole budget. pytest-timeout's own dump shows threads only; the suite is asyncio, where a hang
sits in the event loop's select(), so this timer also prints every pending task's coroutine stack.
An xdist worker's stderr is not shown, so the stacks also go to a file that the run's summary prints.
"""

from __future__ import annotations

import asyncio
import io
import os
import sys
import tempfile
import threading
import traceback
from pathlib import Path
from typing import Any

import pytest

_TIMER = pytest.StashKey[threading.Timer]()
_HANGS = "PYTEST_HANG_DIR"  # set by the controlling process, inherited by its xdist workers


def _pending_tasks() -> list[asyncio.Task[Any]]:
    # Read from the watchdog's thread while the loop is stuck: the module's registry of tasks
    # (3.11: _all_tasks; 3.12+: _scheduled_tasks), since all_tasks() needs the loop's own thread.
    registry = getattr(asyncio.tasks, "_scheduled_tasks", None) or getattr(asyncio.tasks, "_all_tasks", ())
    return [task for task in list(registry) if not task.done()]


def _stacks() -> str:
    out = io.StringIO()
    for thread_id, frame in sys._current_frames().items():
        out.write(f"--- thread {thread_id} ---\n")
        traceback.print_stack(frame, file=out)
    for task in _pending_tasks():
        out.write(f"--- asyncio task {task.get_name()} ---\n")
        try:
            task.print_stack(file=out)
        except Exception as exc:  # noqa: BLE001 - a diagnostic must not stop the exit
            out.write(f"(no stack: {type(exc).__name__}: {exc})\n")
    return out.getvalue()


def _hung(nodeid: str, seconds: float) -> None:
    try:
        text = f"{nodeid} still running after {seconds:.0f} s (pytest-timeout); its process exits.\n{_stacks()}"
        folder = os.environ.get(_HANGS)
        if folder:
            Path(folder).mkdir(parents=True, exist_ok=True)
            name = "".join(c if c.isalnum() else "_" for c in nodeid)[-150:]
            Path(folder, f"{name}.txt").write_text(text)
        if sys.__stderr__ is not None:
            sys.__stderr__.write(f"\n+++ {text}+++\n")
            sys.__stderr__.flush()
    finally:
        os._exit(1)


def pytest_configure(config: pytest.Config) -> None:
    # Named here, made only by a hang: a run without one leaves nothing behind.
    os.environ.setdefault(_HANGS, str(Path(tempfile.gettempdir(), f"hub-test-hangs-{os.getpid()}")))


def pytest_terminal_summary(terminalreporter: Any) -> None:
    folder = Path(os.environ[_HANGS])
    for found in sorted(folder.glob("*.txt")) if folder.is_dir() else ():
        terminalreporter.write_sep("=", f"hung test: {found.stem}")
        terminalreporter.write_line(found.read_text())


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_set_timer(item: pytest.Item, settings: Any) -> bool | None:
    if settings.method != "thread":
        return None
    timer = threading.Timer(settings.timeout, _hung, (item.nodeid, settings.timeout))
    timer.name, timer.daemon = "hub-test-watchdog", True
    timer.start()
    item.stash[_TIMER] = timer
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_timeout_cancel_timer(item: pytest.Item) -> bool | None:
    timer = item.stash.get(_TIMER, None)
    if timer is None:
        return None
    timer.cancel()
    del item.stash[_TIMER]
    return True
