"""Run an image's entrypoint as a server in the sandbox and reach it: ``run_image``.

``run_image(ref)`` unpacks the image (``bundle.unpack``), starts its entrypoint under runc
(``container.Container``) with ``PORT`` set, and waits until ``/health`` answers 200. The
server lives in its own network namespace: ``Running.connection()`` is an HTTP connection
made inside it. ``stop()`` ends it (SIGTERM, then SIGKILL) and removes the bundle.
"""

from __future__ import annotations

import http.client
import socket
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from advisor.sandbox.bundle import Bundle, unpack
from advisor.sandbox.container import Container
from advisor.sandbox.netns import Address
from advisor.sandbox.policy import DEFAULT_POLICY, Policy
from advisor.sandbox.runtime import wait_ready as _wait_ready

DEFAULT_PORT = 8080
unpack_image = unpack


def free_port() -> int:
    """A host loopback TCP port that was free a moment ago (for servers on the host)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Running:
    """A started image: ``connection()`` reaches its port, ``logs()``, ``stop()``."""

    bundle: Bundle
    container: Container
    address: Address
    log_path: Path
    ready_s: float = -1.0
    keep: bool = False
    returncode: int | None = field(default=None)

    @property
    def port(self) -> int:
        return self.address.port

    @property
    def url(self) -> str:
        return self.address.url

    @property
    def started_at(self) -> float:
        return self.container.started_at

    def connection(self, timeout: float = 60.0) -> http.client.HTTPConnection:
        return self.address.http(timeout)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def server_pid(self) -> int | None:
        """The entrypoint's pid on the host (the container's init)."""
        return self.container.init_pid(timeout_s=1.0)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM the server (graceful), SIGKILL after ``timeout``; returns its exit status."""
        if self.returncode is None:
            self.returncode = self.container.stop(grace_s=timeout)
        if not self.keep:
            self.bundle.remove()
        return self.returncode

    def __enter__(self) -> Running:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start(
    bundle: Bundle,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    policy: Policy = DEFAULT_POLICY,
) -> Running:
    """Spawn the bundle's entrypoint (no wait) with PORT (default 8080) in its own netns."""
    port = port or DEFAULT_PORT
    merged = {"PORT": str(port), "HOST": "127.0.0.1", **(env or {})}
    log = Path(tempfile.mkstemp(prefix="server-", suffix=".log", dir=bundle.root)[1])
    with log.open("wb") as out:
        container = Container(bundle, bundle.entrypoint, policy=policy, env=merged,
                              stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        address = container.address(port)
    except BaseException:
        container.stop(grace_s=1)
        raise
    return Running(bundle, container, address, log)


def wait_ready(running: Running, timeout: float = 60.0, path: str = "/health") -> float:
    """Poll ``path`` until 200; return seconds since spawn. SandboxError with the logs otherwise."""
    running.ready_s = _wait_ready(running.container, running.address, running.log_path, path,
                                  timeout)  # fmt: skip
    return running.ready_s


def run_image(
    ref: str,
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
    policy: Policy = DEFAULT_POLICY,
) -> Running:
    """Unpack, start and wait until ``/health`` answers 200; the caller calls ``stop()``.
    On any error the bundle is removed."""
    bundle = unpack(ref)
    try:
        running = start(bundle, port, env, policy)
    except BaseException:
        bundle.remove()
        raise
    try:
        wait_ready(running, timeout)
    except BaseException:
        running.stop(timeout=5)
        raise
    return running
