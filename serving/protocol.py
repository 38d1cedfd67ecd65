"""uvicorn's HTTP protocol (httptools) with each connection's writes sent once per loop tick.

uvicorn writes a response's status line and headers, then its body, in two `transport.write`
calls: two send() system calls, two TCP segments, and the client woken for each. On this 2-core
virtual machine that was about 45 us of a 450 us single-lead request (benchmarks/README.md).
Holding a connection's writes until the end of the current event-loop iteration sends them as
one. Nothing waits longer than that, so an interim `100 Continue`, the headers of a HEAD answer or
a streamed body still go out at once, only joined with whatever else that iteration wrote.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol


class TickBufferedTransport:
    """A transport whose writes in one loop iteration reach the socket as one write."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        self._pending.append(data)
        if len(self._pending) == 1:
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def __getattr__(self, name: str) -> Any:  # everything else is the socket transport's
        return getattr(self._transport, name)


class HttpProtocol(HttpToolsProtocol):
    """`sal serve`'s protocol (`uvicorn.run(http=HttpProtocol)`): httptools, writes per tick."""

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(TickBufferedTransport(transport, self.loop))  # type: ignore[arg-type]
