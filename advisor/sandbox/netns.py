"""Reach a server inside a sandbox's own network namespace, never through the host's.

``setns(2)`` moves only the calling thread, and a socket keeps the namespace it was made in:
so a short-lived thread joins the sandbox's namespace (as ``nsenter --net`` would), makes
and connects the socket there, and hands it back to the caller's thread. Requests then cost
what loopback costs; nothing listens on the host's network for the sandbox.
"""

from __future__ import annotations

import ctypes
import http.client
import os
import socket
import threading
from dataclasses import dataclass

_CLONE_NEWNET = 0x40000000
_libc = ctypes.CDLL(None, use_errno=True)


def _setns(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        if _libc.setns(fd, _CLONE_NEWNET) != 0:
            err = ctypes.get_errno()
            raise OSError(err, f"setns({path}): {os.strerror(err)}")
    finally:
        os.close(fd)


def connect_in(netns: str, host: str, port: int, timeout: float | None) -> socket.socket:
    """A TCP socket made in the namespace ``netns`` (``/proc/PID/ns/net``), connected."""
    box: dict[str, object] = {}

    def dial() -> None:
        try:
            _setns(netns)
            box["sock"] = socket.create_connection((host, port), timeout=timeout)
        except OSError as e:
            box["error"] = e

    thread = threading.Thread(target=dial, name="advisor-netns-dial", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    sock = box["sock"]
    assert isinstance(sock, socket.socket)
    return sock


@dataclass(frozen=True, slots=True)
class Address:
    """A port inside a sandbox: ``connect()`` for a socket, ``http()`` for a connection.

    ``url`` names it for messages and reports; only ``connect`` reaches it.
    """

    netns: str
    port: int
    host: str = "127.0.0.1"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def connect(self, timeout: float | None = None) -> socket.socket:
        return connect_in(self.netns, self.host, self.port, timeout)

    def http(self, timeout: float = 60.0) -> http.client.HTTPConnection:
        return _NetnsHTTPConnection(self, timeout)


class _NetnsHTTPConnection(http.client.HTTPConnection):
    def __init__(self, address: Address, timeout: float) -> None:
        super().__init__(address.host, address.port, timeout=timeout)
        self._address = address

    def connect(self) -> None:
        self.sock = self._address.connect(self.timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
