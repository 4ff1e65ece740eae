"""The webhook receiver of `python -m bench dispatch`: its own process, so it neither shares the
event loop of the sender it measures nor hides its CPU in the sender's.

`python -m bench.webhook_receiver PORT`: a plain asyncio HTTP/1.1 server on 127.0.0.1:PORT
(keep-alive, no framework). Every POST is answered 200 `{}` at once and its `webhook-id` header
counted; `GET /counts` answers those counts as JSON {webhook-id: times received}. The signature
is not checked here (tests/test_dispatch.py checks it with the independent standardwebhooks
library): the receiver should cost as little as a receiver can.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections import Counter

import orjson

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


class Receiver:
    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, path, _ = lines[0].split(" ", 2)
                headers = {}
                for line in lines[1:]:
                    name, _, value = line.partition(":")
                    if name:
                        headers[name.strip().lower()] = value.strip()
                length = int(headers.get("content-length", "0"))
                if length:
                    await reader.readexactly(length)
                if method == "GET" and path == "/counts":
                    body = orjson.dumps(self.counts)
                    writer.write(
                        b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n" % len(body)
                        + body
                    )
                else:
                    if webhook_id := headers.get("webhook-id"):
                        self.counts[webhook_id] += 1
                    writer.write(OK)
                await writer.drain()
        writer.close()


async def main(port: int) -> None:
    receiver = Receiver()
    server = await asyncio.start_server(receiver.serve, "127.0.0.1", port, backlog=1024)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"webhook receiver on 127.0.0.1:{port}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
