"""The little the proof needs from a sandbox, and today's implementation of it.

``Session`` is an unpacked image the proof can run a command in (the image's own Python,
as its user, with its environment and working directory) and whose entrypoint it can start
on a loopback port. ``open_session`` builds one on ``advisor.sandbox.runner`` (skopeo +
umoci to unpack, ``unshare`` to enter); the proof only talks to ``Session``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from advisor.errors import BuildError

if TYPE_CHECKING:
    from advisor.sandbox.environment import Sandbox
    from advisor.sandbox.runner import Bundle, Running


class Started(Protocol):
    def alive(self) -> bool: ...
    def logs(self) -> str: ...
    def stop(self) -> int: ...
    @property
    def returncode(self) -> int | None: ...


class Session(Protocol):
    python: str  # the image's interpreter ("" when it has none)
    exposed_ports: tuple[int, ...]
    entrypoint: tuple[str, ...]

    def run(self, argv: Sequence[str], timeout_s: float) -> tuple[int, str]: ...
    def start(self, port: int) -> Started: ...


@dataclass
class _Started:
    running: Running

    def alive(self) -> bool:
        return self.running.container.alive()

    def logs(self) -> str:
        return self.running.logs()

    def stop(self) -> int:
        return self.running.stop(timeout=5)

    @property
    def returncode(self) -> int | None:
        c = self.running.container
        return None if c.alive() else c.wait(0)


@dataclass
class _UnshareSession:
    bundle: Bundle
    python: str
    exposed_ports: tuple[int, ...]
    entrypoint: tuple[str, ...]

    def _sandbox(self) -> Sandbox:
        from advisor.bench.locate import split_env
        from advisor.sandbox.environment import Sandbox

        b = self.bundle
        return Sandbox(name="fix", rootfs=b.rootfs, env=split_env(b.env),
                       workdir=b.working_dir or "/", user=b.user)

    def run(self, argv: Sequence[str], timeout_s: float) -> tuple[int, str]:
        sandbox = self._sandbox()
        try:
            done = subprocess.run(
                sandbox.argv(argv), env=sandbox.process_env({}),
                capture_output=True, text=True, timeout=timeout_s, check=False,
            )
        except subprocess.TimeoutExpired:
            return -1, f"timed out after {timeout_s:.0f}s"
        return done.returncode, (done.stdout or "") + (done.stderr or "")

    def start(self, port: int) -> Started:
        from advisor.sandbox.runner import start

        running = start(self.bundle, port)
        running.keep = True  # the bundle is the session's: stopping the entrypoint keeps it
        return _Started(running)


def _ports(exposed: Sequence[str]) -> tuple[int, ...]:
    out = []
    for p in exposed:
        number = p.split("/", 1)[0]
        if number.isdigit():
            out.append(int(number))
    return tuple(out)


@contextmanager
def open_session(reference: str) -> Iterator[Session]:
    """Unpack ``reference`` and hand out a session on it; everything is removed after."""
    from advisor.bench.locate import find_python, split_env
    from advisor.sandbox.runner import unpack_image

    if os.geteuid() != 0:
        raise BuildError("the proof runs the image as root (umoci unpack, unshare --root)",
                         hint="run as root, or pass --no-verify to skip the proof")
    bundle = unpack_image(reference)
    try:
        try:
            python = find_python(bundle.rootfs, split_env(bundle.env))
        except BuildError:
            python = ""
        yield _UnshareSession(bundle, python, _ports(bundle.exposed_ports), bundle.entrypoint)
    finally:
        shutil.rmtree(bundle.root, ignore_errors=True)
