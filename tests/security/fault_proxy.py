"""A threaded HTTP proxy on loopback that forwards to a real registry and injects faults.

Faults match a method and a path regex and fire a set number of times: an HTTP status (with
headers such as ``Retry-After``), a connection reset after N body bytes, a stall after N body
bytes, or a bearer-token gate (401 until the client fetches a token from the proxy's own
``/token``). The ``Host`` header is passed through, so the registry's upload ``Location``
URLs point back at the proxy. Every request is logged with what the proxy did.
"""

from __future__ import annotations

import http.client
import json
import re
import socket
import struct
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "trailer", "upgrade",
              "proxy-authorization", "proxy-authenticate"}
TOKEN = "proxy-token-1"


@dataclass
class Fault:
    """``action``: ``status`` | ``reset`` | ``stall`` | ``drop`` | ``bearer``.

    ``times`` < 0 means always; ``skip`` lets that many matching requests through first.
    ``reset``/``stall`` forward the request, then send ``after_bytes`` of the answer and
    break or hang; ``drop`` breaks the connection without forwarding (an upload lost halfway).
    """

    action: str
    path: str = ""
    method: str = "*"
    status: int = 500
    headers: dict[str, str] = field(default_factory=dict)
    times: int = 1
    after_bytes: int = 0
    stall_s: float = 30.0
    skip: int = 0
    fired: int = 0
    seen: int = 0

    def matches(self, method: str, path: str) -> bool:
        if self.times >= 0 and self.fired >= self.times:
            return False
        if not ((self.method in ("*", method)) and re.search(self.path, path) is not None):
            return False
        self.seen += 1
        return self.seen > self.skip


@dataclass(frozen=True)
class Logged:
    method: str
    path: str
    outcome: str  # "forwarded 200", "fault status 500", "fault reset" ...
    headers: dict[str, str]


class FaultProxy(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        return  # broken connections are the point here, not news

    def __init__(self, upstream: str) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.faults: list[Fault] = []
        self.log: list[Logged] = []
        self.lock = threading.Lock()

    @property
    def host(self) -> str:
        return f"127.0.0.1:{self.server_address[1]}"

    def add(self, *faults: Fault) -> None:
        with self.lock:
            self.faults.extend(faults)

    def clear(self) -> None:
        with self.lock:
            self.faults.clear()
            self.log.clear()

    def take(self, method: str, path: str) -> Fault | None:
        with self.lock:
            for f in self.faults:
                if f.matches(method, path):
                    f.fired += 1
                    return f
        return None

    def record(self, entry: Logged) -> None:
        """Log a request *before* answering it: a client that has its answer may check the
        log at once, while this thread would still be writing."""
        with self.lock:
            self.log.append(entry)

    def outcomes(self, pattern: str = "") -> list[str]:
        with self.lock:
            return [f"{e.method} {e.outcome}" for e in self.log if re.search(pattern, e.path)]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: FaultProxy
    timeout = 60

    def do_GET(self) -> None:
        self._handle()

    def do_HEAD(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_PATCH(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def log_message(self, format: str, *args: Any) -> None:
        return

    def _body(self) -> bytes:
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def _handle(self) -> None:
        method, path = self.command, self.path
        body = self._body()
        headers = {k: v for k, v in self.headers.items()}
        if path.startswith("/token"):
            self.server.record(Logged(method, path, "token", headers))
            self._reply(200, {"Content-Type": "application/json"}, json.dumps({"token": TOKEN}).encode())
            return
        fault = self.server.take(method, path)
        if fault is not None and fault.action == "bearer":
            if self.headers.get("Authorization") != f"Bearer {TOKEN}":
                realm = f"http://{self.server.host}/token"
                challenge = f'Bearer realm="{realm}",service="proxy",scope="repository:x:pull"'
                self.server.record(Logged(method, path, "fault 401", headers))
                self._reply(401, {"WWW-Authenticate": challenge, "Content-Type": "application/json"},
                            b'{"errors":[{"code":"UNAUTHORIZED"}]}')
                return
            fault.fired -= 1  # authorised requests do not use up the gate
            fault = None
        if fault is not None and fault.action == "status":
            self.server.record(Logged(method, path, f"fault status {fault.status}", headers))
            self._reply(fault.status, {"Content-Type": "application/json", **fault.headers},
                        b'{"errors":[{"code":"INJECTED"}]}')
            return
        if fault is not None and fault.action == "drop":
            self.server.record(Logged(method, path, "fault drop", headers))
            self._reset()
            return
        status, resp_headers, data = self._forward(method, path, body)
        if fault is None:
            self.server.record(Logged(method, path, f"forwarded {status}", headers))
            self._reply(status, resp_headers, b"" if method == "HEAD" else data, head=method == "HEAD")
            return
        self.server.record(Logged(method, path, f"fault {fault.action}", headers))
        self._send_head(status, resp_headers, len(data))
        self.wfile.write(data[: fault.after_bytes])
        self.wfile.flush()
        if fault.action == "stall":
            time.sleep(fault.stall_s)
        self._reset()

    def _forward(self, method: str, path: str, body: bytes) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(self.server.upstream, timeout=60)
        try:
            fwd = {k: v for k, v in self.headers.items()
                   if k.lower() not in HOP_BY_HOP and k.lower() != "authorization"}
            conn.request(method, path, body=body if body or method in ("PUT", "POST", "PATCH") else None,
                         headers=fwd)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k: v for k, v in resp.getheaders() if k.lower() not in HOP_BY_HOP}, data
        finally:
            conn.close()

    def _send_head(self, status: int, headers: dict[str, str], length: int) -> None:
        self.send_response_only(status)
        for k, v in headers.items():
            if k.lower() != "content-length":
                self.send_header(k, v)
        self.send_header("Content-Length", str(length))
        self.end_headers()

    def _reply(self, status: int, headers: dict[str, str], data: bytes, head: bool = False) -> None:
        if head:
            self.send_response_only(status)
            for k, v in headers.items():
                self.send_header(k, v)
            self.end_headers()
            return
        self._send_head(status, headers, len(data))
        self.wfile.write(data)

    def _reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0), as a dropped link does."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


@contextmanager
def fault_proxy(upstream: str) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream)
    thread = threading.Thread(target=proxy.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield proxy
    finally:
        proxy.shutdown()
        proxy.server_close()
        thread.join(timeout=5)
