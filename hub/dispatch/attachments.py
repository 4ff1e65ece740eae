"""What a notice carries besides its text: a monthly statement notice, the customer's stored
statement rendered as PDF for e-mail. A PDF costs about half a second of CPU, so it is rendered in
a worker process, off the event loop that keeps the other channels moving."""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor


class AttachmentError(RuntimeError):
    """A notice's attachment cannot be made; the message says what to do."""


def statement_pdf(content: bytes) -> bytes:
    """A stored statement (its JSON) as PDF, in the statement's own language."""
    from hub.reports.models import Statement  # in the worker process: the renderer loads fonts there
    from hub.reports.render import render

    return render(Statement.model_validate_json(content), "pdf")


class Renderer:
    """Worker processes that render PDFs (spawned on the first one: most rounds carry none)."""

    def __init__(self, processes: int) -> None:
        self.processes = processes
        self._pool: ProcessPoolExecutor | None = None

    async def statement_pdf(self, content: bytes) -> bytes:
        if self._pool is None:
            self._pool = ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"))
        return await asyncio.get_running_loop().run_in_executor(self._pool, statement_pdf, content)

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)
            self._pool = None
