"""An asyncio TCP proxy that delays, resets, cuts or black-holes the traffic it forwards.

The fault proxy of the scorecard and of tests/test_faults.py (no toxiproxy or netem on this machine):

    proxy = await FaultProxy("127.0.0.1", target_port, seed=7).start()
    proxy.delay_s = 0.05            # every forwarded chunk waits 50 ms
    proxy.reset_share = 0.2         # 20% of new connections are reset 0.2-2 s after they open
    proxy.reset_some(0.3)           # reset 30% of the open connections now
    proxy.blackhole()               # keep connections open, forward nothing (held, delivered on restore)
    proxy.cut()                     # reset everything and refuse new connections
    proxy.restore()

Random choices come from `seed`, so a scenario injects the same faults on every run.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from dataclasses import dataclass, field

CHUNK = 65536


@dataclass
class FaultProxy:
    target_host: str
    target_port: int
    listen_host: str = "127.0.0.1"
    port: int = 0
    seed: int = 0
    delay_s: float = 0.0
    reset_share: float = 0.0
    connections: int = 0
    resets: int = 0
    _mode: str = "pass"
    _server: asyncio.base_events.Server | None = None
    _pairs: set = field(default_factory=set)  # (client writer, upstream writer) of each open connection
    _flowing: asyncio.Event = field(default_factory=asyncio.Event)
    _rng: random.Random = field(init=False)
    _timers: set = field(default_factory=set)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    async def start(self) -> FaultProxy:
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, self.listen_host, self.port, reuse_address=True)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        for timer in list(self._timers):
            timer.cancel()
        self._mode = "refuse"
        self._flowing.set()
        self._reset(list(self._pairs))
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    # --- faults ------------------------------------------------------------------------------

    def cut(self) -> None:
        self._mode = "refuse"
        self._flowing.set()
        self._reset(list(self._pairs))

    def blackhole(self) -> None:
        self._mode = "blackhole"
        self._flowing.clear()

    def restore(self) -> None:
        self._mode = "pass"
        self.delay_s = 0.0
        self.reset_share = 0.0
        self._flowing.set()

    def reset_some(self, share: float) -> int:
        """Reset (RST) a seeded share of the open connections; returns how many."""
        chosen = [pair for pair in sorted(self._pairs, key=id) if self._rng.random() < share]
        self._reset(chosen)
        return len(chosen)

    # --- plumbing ----------------------------------------------------------------------------

    def _reset(self, pairs: list) -> None:
        for pair in pairs:
            self._pairs.discard(pair)
            self.resets += 1
            for writer in pair:
                with contextlib.suppress(Exception):
                    writer.transport.abort()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._mode == "refuse":
            writer.transport.abort()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(self.target_host, self.target_port)
        except OSError:
            writer.transport.abort()
            return
        self.connections += 1
        pair = (writer, up_writer)
        self._pairs.add(pair)
        if self.reset_share and self._rng.random() < self.reset_share:
            self._schedule_reset(pair, self._rng.uniform(0.2, 2.0))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)
        if pair in self._pairs:
            self._pairs.discard(pair)
            for w in pair:
                with contextlib.suppress(Exception):
                    w.close()

    def _schedule_reset(self, pair: tuple, after_s: float) -> None:
        timer = asyncio.get_running_loop().call_later(after_s, lambda: pair in self._pairs and self._reset([pair]))
        self._timers.add(timer)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(CHUNK):
                await self._flowing.wait()
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort()
