"""``run`` a command to completion, or ``serve`` one and reach its port, in a bundle."""

from __future__ import annotations

import http.client
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from advisor.errors import SandboxError
from advisor.sandbox.bundle import Bundle
from advisor.sandbox.container import Container
from advisor.sandbox.netns import Address
from advisor.sandbox.policy import DEFAULT_POLICY, Policy


@dataclass(frozen=True, slots=True)
class Completed:
    """How a sandboxed command ended. ``limits`` says whether cgroups or rlimits applied."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float
    timed_out: bool
    limits: str


def run(
    bundle: Bundle,
    argv: Sequence[str],
    *,
    policy: Policy = DEFAULT_POLICY,
    env: Mapping[str, str] | None = None,
    input: str | None = None,
    timeout_s: float = 600.0,
) -> Completed:
    """Run ``argv`` in ``bundle`` until it exits (killed after ``timeout_s``)."""
    container = Container(
        bundle, argv, policy=policy, env=env, text=True,
        stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    timed_out = False
    try:
        out, err = container.proc.communicate(input=input, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        timed_out = True
        container.stop(grace_s=1.0)
        out, err = container.proc.communicate()
    finally:
        container.stop(grace_s=1.0)
    return Completed(
        tuple(argv), container.proc.returncode, out or "", err or "",
        time.time() - container.started_at, timed_out, container.limits.applied,
    )  # fmt: skip


@dataclass(frozen=True, slots=True)
class Served:
    """A server running in a sandbox: ``address`` reaches its port, ``log`` holds its output."""

    container: Container
    address: Address
    ready_s: float
    log: Path

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.exists() else ""


def _status(address: Address, path: str) -> int:
    try:
        conn = address.http(timeout=2)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status
    except (OSError, http.client.HTTPException):
        return 0


def wait_ready(
    container: Container, address: Address, log: Path, path: str, timeout_s: float
) -> float:
    """Poll ``path`` until it answers 200; seconds since the spawn. SandboxError otherwise."""
    deadline = container.started_at + timeout_s
    while time.time() < deadline:
        if not container.alive():
            tail = " | ".join(log.read_text(errors="replace").strip().splitlines()[-5:])
            raise SandboxError(
                f"the server exited with status {container.proc.returncode} before it was "
                f"ready: {tail}",
                hint="run the image by hand to see its full output",
            )
        if _status(address, path) == 200:
            return time.time() - container.started_at
        time.sleep(0.02)
    output = log.read_text(errors="replace").strip()[-300:]
    raise SandboxError(
        f"the server was not ready after {timeout_s:.0f}s ({path} never answered 200)",
        hint=f"its last output: {output}" if output else "it printed nothing; run the image by hand",
    )


@contextmanager
def serve(
    bundle: Bundle,
    argv: Sequence[str] | None = None,
    port: int = 8080,
    *,
    policy: Policy = DEFAULT_POLICY,
    env: Mapping[str, str] | None = None,
    ready_path: str | None = "/health",
    timeout_s: float = 60.0,
) -> Iterator[Served]:
    """Start ``argv`` (the image's entrypoint by default) with ``PORT``/``HOST`` set, wait
    until ``ready_path`` answers 200 (None: no wait), yield it, stop it on exit."""
    with tempfile.NamedTemporaryFile(
        prefix="server-", suffix=".log", dir=bundle.root, delete=False
    ) as log_file:
        log = Path(log_file.name)
        container = Container(
            bundle, tuple(argv) if argv is not None else bundle.entrypoint, policy=policy,
            env={"PORT": str(port), "HOST": "127.0.0.1", **(env or {})},
            stdout=log_file, stderr=subprocess.STDOUT,
        )  # fmt: skip
    try:
        address = container.address(port)
        ready = wait_ready(container, address, log, ready_path, timeout_s) if ready_path else 0.0
        yield Served(container, address, ready, log)
    finally:
        container.stop()
        log.unlink(missing_ok=True)
