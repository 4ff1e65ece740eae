"""Live pages: Postgres LISTEN/NOTIFY in, server-sent events out.

One connection per console process listens on `hub_outbox` (an alert was written: the store,
the clock, dispatch) and `hub_tasks` (a task was created or changed: the same writers, and every
ops action). Notifications are coalesced (a busy hub sends hundreds a second); then the board is
read once, rendered once per language, and the fragments are handed to every open stream.
A client that cannot keep up loses intermediate fragments, never the latest (each fragment is
the whole section).

A lost listener connection is re-opened with backoff; the board is refreshed after each
reconnect, since notifications sent meanwhile are gone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field

import asyncpg

log = logging.getLogger("hub.console.live")

CHANNELS = ("hub_outbox", "hub_tasks")
COALESCE_S = 0.15  # wait this long after the first notification for more
MIN_INTERVAL_S = 0.5  # at most two refreshes a second, however busy the hub is
QUEUE_SIZE = 8

Fragments = dict[str, str]  # SSE event name -> HTML
Render = Callable[[set[str]], Awaitable[dict[str, Fragments]]]  # languages wanted -> language -> fragments


@dataclass(eq=False)  # one per open stream, kept in a set by identity
class Subscriber:
    language: str
    queue: asyncio.Queue[Fragments] = field(default_factory=lambda: asyncio.Queue(QUEUE_SIZE))

    def offer(self, fragments: Fragments) -> None:
        if self.queue.full():  # keep the newest: drop the oldest
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
        self.queue.put_nowait(fragments)


class Live:
    def __init__(self, dsn: str, render: Render, connect_kwargs: dict | None = None) -> None:
        self.dsn = dsn
        self.render = render
        self.connect_kwargs = connect_kwargs or {}
        self.subscribers: set[Subscriber] = set()
        self.latest: dict[str, Fragments] = {}
        self.refreshes = 0
        self.listening = asyncio.Event()
        self._dirty = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._listener: asyncio.Task[None] | None = None

    # -------------------------------------------------------------------------------- lifecycle

    def start(self) -> None:
        self._listener = asyncio.create_task(self._listen(), name="console-listen")
        self._task = asyncio.create_task(self._refresh_loop(), name="console-refresh")

    async def stop(self) -> None:
        self._stop.set()
        self._dirty.set()
        for task in (self._task, self._listener):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    def poke(self) -> None:
        """Something changed (a notification, or this process changed a task itself)."""
        self._dirty.set()

    @contextlib.contextmanager
    def subscription(self, language: str) -> Iterator[Subscriber]:
        subscriber = Subscriber(language)
        self.subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self.subscribers.discard(subscriber)

    # -------------------------------------------------------------------------------------- work

    async def _listen(self) -> None:
        delay = 0.5
        while not self._stop.is_set():
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(self.dsn, **self.connect_kwargs)
                lost = asyncio.Event()
                conn.add_termination_listener(lambda *_, lost=lost: lost.set())
                for channel in CHANNELS:
                    await conn.add_listener(channel, lambda *_: self._dirty.set())
                self.listening.set()
                self._dirty.set()  # anything sent while we were not listening
                delay = 0.5
                while not lost.is_set() and not self._stop.is_set():
                    # asyncpg notices a dead socket only when it uses it
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(lost.wait(), timeout=15)
                    if not lost.is_set() and not self._stop.is_set():
                        await conn.execute("SELECT 1")
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning(
                    "console: LISTEN connection lost (%s: %s); retrying in %.1fs", type(exc).__name__, exc, delay
                )
            finally:
                self.listening.clear()
                if conn is not None:
                    with contextlib.suppress(Exception):
                        await conn.close(timeout=2)
            if not self._stop.is_set():
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)

    async def _refresh_loop(self) -> None:
        last = 0.0
        while not self._stop.is_set():
            await self._dirty.wait()
            if self._stop.is_set():
                return
            await asyncio.sleep(max(COALESCE_S, MIN_INTERVAL_S - (time.monotonic() - last)))
            self._dirty.clear()
            last = time.monotonic()
            if not self.subscribers:
                self.latest = {}  # nobody watches: render on demand next time
                continue
            try:
                rendered = await self.render({s.language for s in self.subscribers})
            except (OSError, TimeoutError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
                log.warning("console: cannot refresh the live board (%s: %s)", type(exc).__name__, exc)
                continue
            # Only the sections that changed go out; a new stream gets all of `latest` first.
            changed = {
                language: {
                    name: html for name, html in fragments.items() if self.latest.get(language, {}).get(name) != html
                }
                for language, fragments in rendered.items()
            }
            self.latest = rendered
            self.refreshes += 1
            for subscriber in list(self.subscribers):
                fragments = changed.get(subscriber.language)
                if fragments:
                    subscriber.offer(fragments)
