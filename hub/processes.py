"""Child processes that do not outlive their parent (Linux; elsewhere a no-op)."""

from __future__ import annotations

import ctypes
import os
import signal
import sys
from collections.abc import Callable

_PR_SET_PDEATHSIG = 1
# Looked up once here: the forked child then only makes the call (no loading, no import locks).
_prctl = getattr(ctypes.CDLL(None, use_errno=True), "prctl", None) if sys.platform == "linux" else None


def die_with_parent(sig: int, parent_pid: int) -> None:
    """In the child, before exec: have the kernel send `sig` when the parent goes away, even on SIGKILL.

    PDEATHSIG fires when the *thread* that forked the child exits, not the process: start children from the
    main thread (never from asyncio.to_thread or an executor, whose worker threads come and go). It runs after
    Popen's setuid, which matters because a credential change clears PDEATHSIG.
    """
    if _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    if os.getppid() != parent_pid:  # the parent died before prctl took effect
        os.kill(os.getpid(), sig)


def orphan_guard(sig: int = signal.SIGTERM) -> Callable[[], None]:
    """A Popen `preexec_fn` that ties the child's life to this process (see die_with_parent)."""
    parent = os.getpid()
    return lambda: die_with_parent(sig, parent)
