"""`sal serve`'s HTTP protocol: a connection's writes in one loop iteration are one socket write."""

from __future__ import annotations

import asyncio

from serving.protocol import TickBufferedTransport


class _Socket:
    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: bytes) -> None:
        self.writes.append(data)

    def close(self) -> None:
        self.closed = True

    def get_extra_info(self, name: str) -> str:
        return f"info:{name}"


def test_writes_of_one_iteration_go_out_together_and_none_waits_longer() -> None:
    sink = _Socket()

    async def respond() -> None:
        transport = TickBufferedTransport(sink, asyncio.get_running_loop())
        transport.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        transport.write(b"")
        transport.write(b"{}")
        assert sink.writes == []  # held until the loop gets back to its other work
        await asyncio.sleep(0)
        assert sink.writes == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}"]
        transport.write(b"HTTP/1.1 100 Continue\r\n\r\n")  # an interim answer, on its own
        await asyncio.sleep(0)
        assert sink.writes[1:] == [b"HTTP/1.1 100 Continue\r\n\r\n"]
        transport.write(b"last words")
        transport.close()  # flushes first
        assert sink.writes[2:] == [b"last words"] and sink.closed
        assert transport.get_extra_info("peername") == "info:peername"

    asyncio.run(respond())
