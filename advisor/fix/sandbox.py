"""The little the proof needs from a sandbox, built on ``advisor.sandbox``.

``Session`` is an unpacked image the proof can run a command in (the image's own Python,
as its user, with its environment and working directory) and whose entrypoint it can start
on a port, reached inside the sandbox's own network namespace. ``open_session`` builds one
with ``advisor.sandbox`` (skopeo + umoci to unpack, runc to run: read-only root, no network
but ``lo``, Docker's default capabilities and seccomp profile); the proof only talks to
``Session``.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from advisor.sandbox import Bundle, Served


class Started(Protocol):
    def connect(self, port: int, timeout_s: float) -> http.client.HTTPConnection: ...
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
    served: Served
    stack: ExitStack

    def connect(self, port: int, timeout_s: float) -> http.client.HTTPConnection:
        if port == self.served.address.port:
            return self.served.address.http(timeout_s)
        return self.served.container.address(port).http(timeout_s)

    def alive(self) -> bool:
        return self.served.container.alive()

    def logs(self) -> str:
        return self.served.output()

    def stop(self) -> int:
        code = self.served.container.proc.poll()
        self.stack.close()
        return int(code if code is not None else self.served.container.proc.returncode or 0)

    @property
    def returncode(self) -> int | None:
        return self.served.container.proc.poll()


@dataclass
class _RuncSession:
    bundle: Bundle
    python: str
    exposed_ports: tuple[int, ...]
    entrypoint: tuple[str, ...]

    def run(self, argv: Sequence[str], timeout_s: float) -> tuple[int, str]:
        from advisor.sandbox import run

        done = run(self.bundle, argv, timeout_s=timeout_s)
        if done.timed_out:
            return -1, f"timed out after {timeout_s:.0f}s"
        return done.returncode, done.stdout + done.stderr

    def start(self, port: int) -> Started:
        from advisor.sandbox import serve

        stack = ExitStack()
        served = stack.enter_context(serve(self.bundle, port=port, ready_path=None))
        return _Started(served, stack)


def _ports(exposed: Sequence[str]) -> tuple[int, ...]:
    out = []
    for p in exposed:
        number = p.split("/", 1)[0]
        if number.isdigit():
            out.append(int(number))
    return tuple(out)


def _python(bundle: Bundle) -> str:
    from advisor.bench.locate import split_env
    from advisor.sandbox.bundle import find_program

    env = split_env(bundle.env)
    for name in ("python3", "python"):
        found = find_program(bundle, name, env)
        if found is not None:
            return "/" + found.relative_to(bundle.rootfs).as_posix()
    return ""


@contextmanager
def open_session(reference: str) -> Iterator[Session]:
    """Unpack ``reference`` into the sandbox and hand out a session on it; removed after."""
    from advisor.sandbox import unpack

    bundle = unpack(reference)
    try:
        yield _RuncSession(bundle, _python(bundle), _ports(bundle.exposed_ports), bundle.entrypoint)
    finally:
        bundle.remove()
