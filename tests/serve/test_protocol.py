"""The transport under the hardened protocol: one socket write per response."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from advisor.serve.model import Model
from advisor.serve.protocol import CoalescingTransport
from advisor.serve.server import Server
from tests.serve.conftest import serve_model


@pytest.fixture(scope="module")
def server(tiny_artifacts: Path) -> Iterator[Server]:
    yield from serve_model(Model(str(tiny_artifacts), 1))


class Recording(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.closed = False

    def write(self, data: Any) -> None:
        self.writes.append(bytes(data))

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return "peer" if name == "peername" else default


def test_writes_of_one_loop_turn_leave_in_one_write() -> None:
    async def main() -> list[bytes]:
        raw = Recording()
        t = CoalescingTransport(raw, asyncio.get_running_loop())
        t.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n")
        t.write(b"{}")
        t.write(b"")  # h11's end of a sized body
        assert raw.writes == []  # nothing leaves before the loop turn ends
        await asyncio.sleep(0)
        t.write(b"next")
        await asyncio.sleep(0)
        assert t.get_extra_info("peername") == "peer"  # everything else is the transport's
        return raw.writes

    assert asyncio.run(main()) == [b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n{}", b"next"]


def test_close_sends_what_is_buffered_first() -> None:
    async def main() -> Recording:
        raw = Recording()
        t = CoalescingTransport(raw, asyncio.get_running_loop())
        t.write(b"refusal")
        t.close()
        await asyncio.sleep(0)  # the scheduled flush finds nothing left
        return raw

    raw = asyncio.run(main())
    assert raw.writes == [b"refusal"] and raw.closed


def test_a_served_response_is_one_socket_write(server: Server) -> None:
    """Through the real server: each keep-alive response reaches the socket transport in one
    write (uvicorn alone makes two: the head, then the body)."""
    with socket.create_connection(server.server_address, timeout=10) as s:
        deadline = time.monotonic() + 10
        while not server.server_state.connections and time.monotonic() < deadline:
            time.sleep(0.01)
        (proto,) = server.server_state.connections
        inner = proto.transport._transport  # type: ignore[attr-defined]
        writes: list[bytes] = []
        write = inner.write
        inner.write = lambda data: (writes.append(bytes(data)), write(data))[1]
        body = b'{"text": "one write"}'
        request = (b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                   b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        for _ in range(2):
            s.sendall(request)
            data = b""
            while b"\r\n\r\n" not in data or not data.endswith(b"}"):
                data += s.recv(65536)
        assert len(writes) == 2 and all(w.startswith(b"HTTP/1.1 200") and w.endswith(b"}")
                                        for w in writes)
