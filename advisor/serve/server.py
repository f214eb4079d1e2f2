"""The HTTP API of DESIGN.md ("Serving API"), on the standard library's ThreadingHTTPServer.

One thread per connection parses and validates requests; a semaphore lets at most
``workers`` inferences run at once, each using ``intra_op_threads`` onnxruntime threads
(numbers behind the defaults: benchmarks/build/report.md).
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
from collections.abc import Callable
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from .model import Model
from .settings import Settings

ROUTES: dict[str, tuple[str, ...]] = {
    "/predict": ("POST",),
    "/health": ("GET",),
    "/metadata": ("GET",),
}


DRAIN_LIMIT = 16 << 20  # bytes of a refused body read and dropped before answering


class RequestError(Exception):
    """A client error that becomes a JSON ``{"error": ...}`` response."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def parse_texts(body: bytes, settings: Settings) -> list[str]:
    """Validate a /predict body: ``{"text": str}`` or ``{"texts": [str, ...]}``."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as e:
        # ValueError covers bad UTF-8, bad JSON and integers past Python's 4,300-digit limit;
        # RecursionError, nesting deeper than the parser's stack.
        raise RequestError(HTTPStatus.BAD_REQUEST, f"body is not valid JSON: {e}"[:200]) from e
    if not isinstance(doc, dict) or ("text" in doc) == ("texts" in doc):
        raise RequestError(HTTPStatus.BAD_REQUEST, 'expected an object with "text" or "texts"')
    texts = [doc["text"]] if "text" in doc else doc["texts"]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        raise RequestError(
            HTTPStatus.BAD_REQUEST, '"text" must be a string, "texts" a list of strings'
        )
    if not texts:
        raise RequestError(HTTPStatus.BAD_REQUEST, '"texts" is empty')
    if len(texts) > settings.max_batch:
        raise RequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"{len(texts)} texts exceed the batch limit of {settings.max_batch}",
        )
    if any(len(t) > settings.max_text_chars for t in texts):
        raise RequestError(
            HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
            f"a text exceeds {settings.max_text_chars} characters",
        )
    return texts


class App:
    """Routes and the inference gate; the handler class only moves bytes."""

    def __init__(self, model: Model, settings: Settings) -> None:
        self.model = model
        self.settings = settings
        self._gate = threading.BoundedSemaphore(settings.workers)
        info = model.info
        self.metadata = {
            "model_name": info.model_name,
            "task": info.task,
            "architecture": info.architecture,
            "labels": list(info.labels),
            **model.head.metadata,  # e.g. feature-extraction's pooling and dim
            "onnx_file": info.onnx_file,
            "onnx_sha256": info.onnx_sha256,
            "quantization": info.quantization,
            "max_length": info.max_length,
            "advisor_version": settings.advisor_version or info.advisor_version,
            "limits": {"max_body_bytes": settings.max_body_bytes, "max_batch": settings.max_batch},
        }

    def predict(self, body: bytes) -> dict[str, Any]:
        texts = parse_texts(body, self.settings)
        with self._gate:
            results = self.model.predict(texts)
        return {"predictions": [r.as_json() for r in results]}


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "advisor-serve"
    app: App  # set on the subclass made by make_server
    server: Server
    _headers_buffer: list[bytes]  # BaseHTTPRequestHandler's, filled by send_header
    raw_requestline: bytes  # BaseHTTPRequestHandler's, read by handle_one_request
    timeout = 75  # seconds an idle keep-alive connection may hold its thread

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def handle_one_request(self) -> None:
        # NEW until the first request is served, IDLE between keep-alive requests after it.
        self.server.mark(self.request, IDLE if getattr(self, "_served", False) else NEW)
        if self.server.stopping:
            # close_idle() ran while this connection was still answering: it is idle only now,
            # after that sweep, and would block a stop for the keep-alive timeout. Marking
            # first and checking after means one of the two always sees the other.
            self.close_connection = True
            return
        super().handle_one_request()
        self._served = True

    def parse_request(self) -> bool:
        self.server.mark(self.request, READING)
        if self.server.stopping:
            self.close_connection = True
        if len(self.raw_requestline.split()) == 2:
            # "GET /path" alone is HTTP/0.9: the stdlib would wait for headers that never come,
            # then answer without a status line. Refuse it now, in HTTP/1.0.
            self.command, self.request_version = "", "HTTP/1.0"
            self.requestline = self.raw_requestline.decode("latin-1").rstrip("\r\n")
            self.send_error(HTTPStatus.HTTP_VERSION_NOT_SUPPORTED, "HTTP/0.9 is not supported")
            return False
        return super().parse_request()

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def _dispatch(self, method: str) -> None:
        path = self.path.split("?", 1)[0]
        try:
            self._send(HTTPStatus.OK, self._route(method, path))
        except RequestError as e:
            self._send(e.status, {"error": e.message})
        except Exception as e:  # the server must answer, whatever the model does
            self.log_error("predict failed: %r", e)
            self._send(HTTPStatus.INTERNAL_SERVER_ERROR, {"error": "internal error"})

    def _route(self, method: str, path: str) -> dict[str, Any]:
        allowed = ROUTES.get(path)
        if allowed is None:
            self._discard_body()
            raise RequestError(HTTPStatus.NOT_FOUND, f"no route {path}")
        if method not in allowed:
            self._discard_body()
            raise RequestError(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} not allowed on {path}")
        if path == "/health":
            return {"status": "ok"}
        if path == "/metadata":
            return self.app.metadata
        body = self._read_body()
        self.server.mark(self.request, WORKING)
        return self.app.predict(body)

    def _content_length(self) -> int:
        raw = self.headers.get("Content-Length")
        if raw is None:
            if self.headers.get("Transfer-Encoding"):
                self.close_connection = True
            raise RequestError(HTTPStatus.LENGTH_REQUIRED, "Content-Length is required")
        try:
            n = int(raw)
        except ValueError as e:
            raise RequestError(HTTPStatus.BAD_REQUEST, "bad Content-Length") from e
        if n < 0:
            raise RequestError(HTTPStatus.BAD_REQUEST, "bad Content-Length")
        return n

    def _read_body(self) -> bytes:
        n = self._content_length()
        if n > self.app.settings.max_body_bytes:
            self._drain_or_close(n)
            raise RequestError(
                HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
                f"body of {n} bytes exceeds the limit of {self.app.settings.max_body_bytes}",
            )
        return self.rfile.read(n)

    def _drain_or_close(self, n: int) -> None:
        """Read a refused body away (bounded) so the client, still sending, gets our 413
        instead of a broken pipe; a body past DRAIN_LIMIT is not read: close instead."""
        if n > DRAIN_LIMIT:
            self.close_connection = True
            return
        while n > 0:
            chunk = self.rfile.read(min(n, 1 << 16))
            if not chunk:
                self.close_connection = True
                return
            n -= len(chunk)

    def _discard_body(self) -> None:
        raw = self.headers.get("Content-Length")
        if raw and raw.isdigit() and int(raw) <= self.app.settings.max_body_bytes:
            self.rfile.read(int(raw))
        elif raw:
            self.close_connection = True

    def _send(self, status: HTTPStatus, doc: dict[str, Any]) -> None:
        body = json.dumps(doc, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == HTTPStatus.METHOD_NOT_ALLOWED:
            self.send_header("Allow", ", ".join(ROUTES.get(self.path.split("?", 1)[0], ())))
        if self.server.stopping:
            self.close_connection = True
        if self.close_connection:
            self.send_header("Connection", "close")
        # Headers and body leave in one write: two small writes on a keep-alive connection
        # meet the client's delayed ACK (Nagle) and cost ~40 ms per request.
        self._headers_buffer.append(b"\r\n" + body)
        self.flush_headers()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own refusals (bad request line 400, URI too long 414, header lines too
        long or too many 431, unknown method 501, HTTP version 505) as JSON like every other
        answer, not its HTML page; the connection closes, as the stdlib does."""
        try:
            status = HTTPStatus(code)
        except ValueError:
            status = HTTPStatus.BAD_REQUEST
        self.close_connection = True
        if getattr(self, "request_version", "HTTP/0.9") == "HTTP/0.9":
            self.request_version = "HTTP/1.0"  # else send_response writes no status line
        self._send(status, {"error": message or status.phrase})

    def log_message(self, format: str, *args: Any) -> None:
        # Access logs cost a syscall per request under load; errors still go to stderr.
        return


_BUSY_BODY = b'{"error":"too many open connections"}'
BUSY = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: application/json\r\n"
    + f"Content-Length: {len(_BUSY_BODY)}\r\nConnection: close\r\n\r\n".encode()
    + _BUSY_BODY
)


NEW, IDLE, READING, WORKING = "new", "idle", "reading", "working"


def _stuck_since_before(cutoff: float) -> Callable[[str, float], bool]:
    """A connection that has been opening or sending one request since before ``cutoff``."""
    return lambda state, since: state in (NEW, READING) and since < cutoff


class Server(ThreadingHTTPServer):
    """A thread per connection, at most ``max_connections`` of them; a stop that waits for
    in-flight requests but not for idle keep-alive clients.

    Slow clients cannot hold the slots: a new connection must send its first request, and
    every request must arrive whole (line, headers, body), within ``request_timeout_s``, or a
    reaper thread cuts the connection; and when every slot is taken, keep-alive connections
    idle between requests are closed to make room for the next client.
    """

    daemon_threads = False  # server_close() joins the request threads
    block_on_close = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(
        self,
        address: tuple[str, int],
        handler: Callable[..., BaseHTTPRequestHandler],
        max_connections: int,
        request_timeout_s: float = 10.0,
    ) -> None:
        super().__init__(address, handler)
        self.stopping = False
        self.request_timeout_s = request_timeout_s
        self._slots = threading.BoundedSemaphore(max_connections)
        self._lock = threading.Lock()
        self._state: dict[socket.socket, tuple[str, float]] = {}
        self._closed = threading.Event()
        self._reaper = threading.Thread(target=self._reap, name="advisor-reaper", daemon=True)
        self._reaper.start()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self._shutdown_where(lambda state, _since: state == IDLE)
            with contextlib.suppress(OSError):
                request.sendall(BUSY)
            self.shutdown_request(request)
            return
        with self._lock:
            self._state[request] = (NEW, time.monotonic())
        super().process_request(request, client_address)

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._lock:
                self._state.pop(request, None)
            self._slots.release()

    def mark(self, request: socket.socket, state: str) -> None:
        with self._lock:
            if request in self._state:
                self._state[request] = (state, time.monotonic())

    def _shutdown_where(self, doomed: Callable[[str, float], bool]) -> None:
        with self._lock:
            socks = [s for s, (state, since) in self._state.items() if doomed(state, since)]
        for sock in socks:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)

    def _reap(self) -> None:
        while not self._closed.wait(min(1.0, self.request_timeout_s / 4)):
            self._shutdown_where(_stuck_since_before(time.monotonic() - self.request_timeout_s))

    def close_idle(self) -> None:
        """Stop reading from connections that wait for their next request (keep-alive)."""
        self.stopping = True
        with self._lock:
            idle = [s for s, (state, _since) in self._state.items() if state in (NEW, IDLE)]
        for sock in idle:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RD)

    def server_close(self) -> None:
        self._closed.set()
        super().server_close()


def make_server(app: App) -> Server:
    handler: Callable[..., BaseHTTPRequestHandler] = type("BoundHandler", (Handler,), {"app": app})
    settings = app.settings
    return Server((settings.host, settings.port), handler, settings.max_connections,
                  settings.request_timeout_s)
