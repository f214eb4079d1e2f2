"""uvicorn's h11 protocol, hardened for a server that faces clients directly.

uvicorn parses HTTP (with h11), runs the ASGI app, handles keep-alive, pipelining, flow
control and a graceful stop. What this subclass adds, per connection:

- a cap on open connections: past ``max_connections`` a new one gets a JSON 503 and is
  closed, and idle keep-alive connections are closed to make room for the next client;
- a request deadline: a new connection must send its first request, and every request must
  arrive whole (line, headers, body), within ``request_timeout_s``, or it is closed (uvicorn
  alone waits forever for a half-sent request: slowloris);
- refusals as JSON, like every other answer, with the status that says why: 400 for a bad
  request, 414 for a request line past the limit, 431 for headers past it (size or count),
  505 for an HTTP/0.9 request line (which h11 would wait on for headers that never come);
- one socket write per response: uvicorn writes a response's head, body and end apart, each
  a ``send`` syscall that wakes the client (which then waits for the rest); what one turn of
  the event loop writes goes out together (``CoalescingTransport``).
"""

from __future__ import annotations

import asyncio
import json
import socket
from dataclasses import dataclass
from typing import Any, ClassVar

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_LINE = 65_536  # bytes of a request line (the stdlib's limit too)
MAX_HEAD = 65_536  # bytes of a request's line and headers together
MAX_HEADERS = 100  # header lines (the stdlib's limit too)


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int = 64
    request_timeout_s: float = 10.0


def refusal(status: int, reason: str, message: str) -> bytes:
    """A complete HTTP/1.1 JSON error response that closes the connection."""
    body = json.dumps({"error": message}).encode()
    head = (
        f"HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


BUSY = refusal(503, "Service Unavailable", "too many open connections")


class CoalescingTransport:
    """A transport whose writes within one event-loop turn leave in one ``write``.

    Everything else is the wrapped transport's; ``close`` (and ``abort``'s callers never
    wanting the buffered bytes) flush first, so a refusal written just before a close is sent.
    """

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []

    def write(self, data: bytes) -> None:
        if not data:
            return
        if not self._pending:
            self._loop.call_soon(self.flush)
        self._pending.append(data)

    def flush(self) -> None:
        if self._pending:
            data = b"".join(self._pending)
            self._pending.clear()
            if not self._transport.is_closing():
                self._transport.write(data)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class _Connection(h11.Connection):
    """h11's connection, remembering the protocol error it raised (uvicorn drops it)."""

    last_error: h11.RemoteProtocolError | None = None

    def next_event(self) -> Any:
        try:
            return super().next_event()
        except h11.RemoteProtocolError as e:
            self.last_error = e
            raise


class HardenedH11Protocol(H11Protocol):
    limits: ClassVar[Limits] = Limits()  # set on the subclass server.make_server builds

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # h11's own limit sits past ours: ours decides, with the status that says why.
        self.conn = _Connection(h11.SERVER, max_incomplete_event_size=MAX_LINE + MAX_HEAD + 4)
        self._served = False  # a response has completed on this connection
        self._eof = False  # the client half-closed: no more requests will come
        self._deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.transport = CoalescingTransport(transport, self.loop)  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # uvicorn writes a response's head and body apart: without NODELAY the body waits
            # for the client's delayed ACK of the head (~40 ms per keep-alive request).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if len(self.connections) > self.limits.max_connections:
            self.connections.discard(self)
            for other in list(self.connections):
                if other is not self and isinstance(other, HardenedH11Protocol) and other.idle:
                    other.shutdown()
            transport.write(BUSY)
            transport.close()
            return
        self._track()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._unset_keepalive_if_required()
        self.conn.receive_data(data)
        if self.conn.their_state is h11.IDLE and self._refuse_bad_head():
            return
        self.handle_events()
        self._track()

    def eof_received(self) -> bool:  # type: ignore[override]
        """The client has sent all it will (a half-close): answer what it sent, then close.
        uvicorn returns None here, which makes asyncio close the socket before the answers
        to requests already received are written."""
        self._eof = True
        self._close_if_done()
        return True

    def on_response_complete(self) -> None:
        self._served = True
        super().on_response_complete()
        self._track()
        self._close_if_done()

    def _close_if_done(self) -> None:
        if self._eof and not self.transport.is_closing():
            answering = self.cycle is not None and not self.cycle.response_complete
            if not answering and self.conn.their_state is not h11.SEND_BODY:
                pending, _closed = self.conn.trailing_data
                if not pending or self._reading():  # a half-sent request never completes
                    self.transport.close()

    def send_400_response(self, msg: str) -> None:
        err = self.conn.last_error if isinstance(self.conn, _Connection) else None
        status = err.error_status_hint if err is not None else 400
        if status == 431 and b"\n" not in self.conn.trailing_data[0]:
            status = 414  # the buffer filled before the request line ended
        reasons = {400: "Bad Request", 414: "URI Too Long", 431: "Request Header Fields Too Large"}
        detail = str(err) if err is not None and str(err) else msg
        self._refuse(status, reasons.get(status, "Bad Request"), f"invalid HTTP request: {detail}")

    @property
    def idle(self) -> bool:
        """Between requests on a keep-alive connection, with nothing of the next one received."""
        return self._served and not self._reading() and (
            self.cycle is None or self.cycle.response_complete
        )

    # -- what h11 does not refuse early enough ---------------------------------------

    def _refuse_bad_head(self) -> bool:
        buf = self.conn.trailing_data[0].lstrip(b"\r\n")
        line, newline, rest = buf.partition(b"\n")
        if not newline:
            if len(buf) > MAX_LINE:
                self._refuse(414, "URI Too Long", f"request line longer than {MAX_LINE} bytes")
                return True
            return False
        if len(line) > MAX_LINE:
            self._refuse(414, "URI Too Long", f"request line longer than {MAX_LINE} bytes")
            return True
        if len(line.split()) == 2:
            self._refuse(505, "HTTP Version Not Supported", "HTTP/0.9 is not supported")
            return True
        head, end, _ = rest.partition(b"\r\n\r\n")
        lines = head.count(b"\n") + 1 if end else rest.count(b"\n")
        if lines > MAX_HEADERS or len(head) > MAX_HEAD:
            self._refuse(431, "Request Header Fields Too Large",
                         f"headers past {MAX_HEADERS} lines or {MAX_HEAD} bytes")
            return True
        return False

    def _refuse(self, status: int, reason: str, message: str) -> None:
        self._disarm()
        if not self.transport.is_closing():
            self.transport.write(refusal(status, reason, message))
            self.transport.close()

    # -- the request deadline ---------------------------------------------------------

    def _reading(self) -> bool:
        """A request has begun (or the connection is new) and has not arrived whole."""
        if self.cycle is not None and not self.cycle.response_complete:
            return self.cycle.more_body
        data, _closed = self.conn.trailing_data
        return not self._served or self.conn.their_state is h11.SEND_BODY or bool(data)

    def _track(self) -> None:
        if self.transport is None or self.transport.is_closing():
            self._disarm()
        elif self._reading():
            if self._deadline is None:
                self._deadline = self.loop.call_later(self.limits.request_timeout_s, self._expire)
        else:
            self._disarm()

    def _disarm(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expire(self) -> None:
        self._deadline = None
        if self._reading() and not self.transport.is_closing():
            self.transport.close()
