"""A small asyncio TCP proxy that can cut, black-hole or delay the traffic it forwards.

Put it between the hub and Postgres or the broker to simulate outages in tests:
    proxy = FaultProxy("127.0.0.1", target_port); await proxy.start()
    proxy.cut()        # reset every connection and refuse new ones (an outage)
    proxy.blackhole()  # keep connections open but forward nothing (a silent network)
    proxy.restore()
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass, field


@dataclass
class FaultProxy:
    target_host: str
    target_port: int
    listen_host: str = "127.0.0.1"
    delay_s: float = 0.0
    port: int = 0
    connections: int = 0
    _mode: str = "pass"
    _server: asyncio.base_events.Server | None = None
    _writers: set = field(default_factory=set)
    _flowing: asyncio.Event = field(default_factory=asyncio.Event)

    async def start(self) -> "FaultProxy":
        self._flowing.set()
        self._server = await asyncio.start_server(self._accept, self.listen_host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def stop(self) -> None:
        self._reset_all()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        self._mode = "refuse"
        self._flowing.set()
        self._reset_all()

    def blackhole(self) -> None:
        self._mode = "blackhole"
        self._flowing.clear()

    def restore(self) -> None:
        self._mode = "pass"
        self._flowing.set()

    def _reset_all(self) -> None:
        for writer in list(self._writers):
            with contextlib.suppress(Exception):
                writer.transport.abort()
        self._writers.clear()

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
        self._writers |= {writer, up_writer}
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer), return_exceptions=True)
        for w in (writer, up_writer):
            self._writers.discard(w)
            with contextlib.suppress(Exception):
                w.close()

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                await self._flowing.wait()
                if self.delay_s:
                    await asyncio.sleep(self.delay_s)
                writer.write(data)
                await writer.drain()
        finally:
            with contextlib.suppress(Exception):
                writer.transport.abort()
