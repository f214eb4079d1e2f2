"""The transport: uvicorn (h11) carries HTTP; ``HardenedH11Protocol`` bounds what clients
may hold; the ``App`` answers. ``make_server`` builds it, ``Server.run`` serves until SIGTERM
or SIGINT (a graceful stop: in-flight requests finish, idle connections close, exit 0), and
``serve_in_thread`` runs one in the background for in-process callers and tests.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import socket
import sys
import threading
import time
from collections.abc import Iterator
from types import FrameType

import uvicorn

from .app import App
from .protocol import HardenedH11Protocol, Limits

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class BindError(OSError):
    """The host and port cannot be listened on."""


class Server(uvicorn.Server):
    """uvicorn's server, stopping on a signal without re-raising it afterwards (uvicorn
    re-raises it once stopped, so the process would die of the signal instead of exiting 0)."""

    app: App
    listener: socket.socket

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {sig: signal.signal(sig, self._on_signal) for sig in STOP_SIGNALS}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl+C: stop waiting for in-flight requests
        self.should_exit = True

    @property
    def server_address(self) -> tuple[str, int]:
        host, port = self.listener.getsockname()[:2]
        return str(host), int(port)

    @property
    def port(self) -> int:
        return self.server_address[1]

    def serve_forever(self) -> None:
        self.run(sockets=[self.listener])


def make_server(app: App) -> Server:
    """A server bound to ``HOST:PORT`` (listening already: the port is known, port 0 too)."""
    s = app.settings
    protocol = type("BoundH11Protocol", (HardenedH11Protocol,),
                    {"limits": Limits(s.max_connections, float(s.request_timeout_s))})
    config = uvicorn.Config(
        app, host=s.host, port=s.port, http=protocol, loop="asyncio", lifespan="off", ws="none",
        interface="asgi3", access_log=False, log_config=None, server_header=False,
        headers=[("server", "advisor-serve")], timeout_keep_alive=s.keep_alive_s,
        timeout_graceful_shutdown=s.shutdown_timeout_s, backlog=1024,
    )
    _quiet_uvicorn()
    server = Server(config)
    server.app = app
    server.listener = _bind(s.host, s.port)
    return server


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as e:
        sock.close()
        raise BindError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    sock.listen(1024)
    return sock


def _quiet_uvicorn() -> None:
    """uvicorn's own errors to stderr; its info and per-request warnings (every malformed
    request would log one) are not: the access log says what each request got."""
    log = logging.getLogger("uvicorn.error")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("advisor-serve: %(message)s"))
        log.addHandler(handler)
    log.setLevel(logging.ERROR)
    log.propagate = False


@contextlib.contextmanager
def serve_in_thread(app: App) -> Iterator[Server]:
    """Serve ``app`` on a background thread; on the way out stop it as SIGTERM would."""
    server = make_server(app)
    thread = threading.Thread(target=server.serve_forever, name="advisor-serve", daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and thread.is_alive() and time.monotonic() < deadline:
        time.sleep(0.01)
    if not server.started:
        raise RuntimeError("the server did not start")
    try:
        yield server
    finally:
        server.should_exit = True
        thread.join(60)
