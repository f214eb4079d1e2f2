"""Where one side of the benchmark runs: the host's own Python (model vs model), an image's
bundle under runc (the sandbox: its own Python and packages, no way out), or, only when the
user asks for it by name, the image's root filesystem entered with ``unshare`` on the host.

Probes are long-lived children that speak JSON lines (``probes/_protocol.py``); servers are
children reached by joining their network namespace (``Address``). Both keep their stderr in
a file so a failure can show its last lines as the error's hint.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from advisor.errors import AdvisorError, SandboxError
from advisor.sandbox.bundle import Bundle
from advisor.sandbox.container import Container
from advisor.sandbox.netns import Address
from advisor.sandbox.policy import DEFAULT_POLICY, Bind, Policy

_UNSHARE = ("unshare", "--mount", "--pid", "--fork", "--kill-child", "--mount-proc")
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
PROBES_TARGET = "/run/advisor-probes"  # where a sandbox sees the staged probe scripts


@dataclass(frozen=True)
class Sandbox:
    """An execution environment: ``bundle`` runs under runc; ``rootfs`` alone (no bundle)
    is the unsandboxed host run; neither means the host itself.

    ``env`` is the image config's environment (``KEY=VALUE`` already split), ``command`` its
    entrypoint + cmd, ``workdir`` its working directory; ``python`` the interpreter to run
    probes with inside it.
    """

    name: str
    rootfs: Path | None = None
    env: Mapping[str, str] = field(default_factory=dict)
    command: tuple[str, ...] = ()
    workdir: str = "/"
    python: str = "python3"
    user: str = ""  # "uid:gid" the image runs as; empty or 0 means root
    bundle: Bundle | None = None
    policy: Policy = DEFAULT_POLICY

    @property
    def sandboxed(self) -> bool:
        return self.bundle is not None

    def _probes_host_dir(self) -> Path:
        assert self.bundle is not None
        return self.bundle.root / "probes"

    def run_policy(self) -> Policy:
        """The policy with the staged probes bound read-only at ``PROBES_TARGET``."""
        probes = self._probes_host_dir()
        probes.mkdir(mode=0o755, exist_ok=True)  # a bind needs its source, even before staging
        binds = (*self.policy.binds, Bind(probes, PROBES_TARGET))
        return dataclasses.replace(self.policy, binds=binds)

    def argv(self, inner: Sequence[str]) -> list[str]:
        """The host command line that runs ``inner`` unsandboxed (the host, or unshare)."""
        if self.rootfs is None:
            return list(inner)
        argv = [*_UNSHARE, f"--root={self.rootfs}", f"--wd={self.workdir or '/'}"]
        uid, _, gid = self.user.partition(":")
        if uid not in ("", "0"):
            argv += ["--setuid", uid, "--setgid", gid or uid]
        return [*argv, *inner]

    def host_path(self, inner: str) -> Path:
        """Where a path of the sandbox lives on the host."""
        if self.bundle is not None and (inner + "/").startswith(PROBES_TARGET + "/"):
            return self._probes_host_dir() / inner[len(PROBES_TARGET) :].lstrip("/")
        return Path(inner) if self.rootfs is None else self.rootfs / inner.lstrip("/")

    def process_env(self, extra: Mapping[str, str]) -> dict[str, str]:
        base: dict[str, str] = dict(os.environ) if self.rootfs is None else {}
        base.update(self.env)
        base.setdefault("PATH", _DEFAULT_PATH)
        base.update(extra)
        return base

    def stage_probes(self, workdir: Path, probes: Path, files: Sequence[str]) -> str:
        """Copy the probe scripts ``files`` of folder ``probes`` where the sandbox sees them;
        return that directory (inner). The bench owns its probes: the sandbox only stages them."""
        if self.bundle is not None:
            dest, inner = self._probes_host_dir(), PROBES_TARGET
        elif self.rootfs is None:
            dest = workdir / f"probes-{self.name}"
            inner = str(dest)
        else:
            inner = f"/tmp/advisor-bench-{os.getpid()}"
            dest = self.host_path(inner)
        dest.mkdir(parents=True, exist_ok=True)
        # The image may run as a non-root user: it must read the probes (in a sandbox the
        # directory is read-only to it; elsewhere it may also write its caches there).
        dest.chmod(0o755 if self.bundle is not None else 0o1777)
        for name in files:
            shutil.copy(probes / name, dest / name)
            (dest / name).chmod(0o644)
        return inner


def _tail(path: Path, lines: int = 15) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return "\n".join(text.strip().splitlines()[-lines:])


class _Child:
    """A child process with its stderr in a temporary file and a clean, bounded stop."""

    def __init__(
        self, sandbox: Sandbox, inner: Sequence[str], extra: Mapping[str, str], what: str,
        pipes: bool,
    ) -> None:  # fmt: skip
        self.what = what
        self.started_at = time.time()
        fd, name = tempfile.mkstemp(prefix="advisor-bench-", suffix=".log")
        self.log_path = Path(name)
        self._log = os.fdopen(fd, "wb")
        pipe = subprocess.PIPE if pipes else subprocess.DEVNULL
        self.container: Container | None = None
        try:
            if sandbox.bundle is not None:
                self.container = Container(
                    sandbox.bundle, inner, policy=sandbox.run_policy(), env=extra, stdin=pipe,
                    stdout=pipe, stderr=self._log, text=pipes,
                )  # fmt: skip
                self.proc = self.container.proc
            else:
                self.proc = subprocess.Popen(
                    sandbox.argv(inner), env=sandbox.process_env(extra), stdin=pipe, stdout=pipe,
                    stderr=self._log, text=pipes, start_new_session=True,
                )  # fmt: skip
        except (OSError, AdvisorError) as e:
            self._log.close()
            self.log_path.unlink(missing_ok=True)
            if isinstance(e, AdvisorError):
                raise
            raise SandboxError(f"cannot start {what}: {e}", hint=f"command: {' '.join(inner)}") from e

    @property
    def pid(self) -> int:
        return self.proc.pid

    def last_output(self) -> str:
        return _tail(self.log_path)

    def failure(self, message: str) -> SandboxError:
        output = self.last_output()
        hint = (
            f"last output of {self.what}:\n{output}" if output else f"{self.what} printed nothing"
        )
        return SandboxError(message, hint=hint)

    def stop(self, grace_s: float = 5.0) -> None:
        if self.container is not None:
            self.container.stop(grace_s)
        elif self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(timeout=grace_s)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                _kill_group(self.proc)
        for stream in (self.proc.stdin, self.proc.stdout):
            if stream is not None:
                with contextlib.suppress(OSError):
                    stream.close()
        self._log.close()
        self.log_path.unlink(missing_ok=True)


def _kill_group(proc: subprocess.Popen[Any]) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)


class ProbeProcess(_Child):
    """A running probe: wait for its ``ready`` event, then send requests one at a time."""

    def __init__(
        self, sandbox: Sandbox, script: str, config_path: str, extra_env: Mapping[str, str]
    ) -> None:
        env = {"ADVISOR_BENCH_T0": repr(time.time()), **extra_env}
        argv = [sandbox.python, "-u", script, config_path]
        super().__init__(sandbox, argv, env, f"the {sandbox.name} probe", pipes=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._pump, args=(self.proc.stdout,), daemon=True).start()
        self.ready: dict[str, Any] = {}

    def _pump(self, stream: IO[str] | None) -> None:
        if stream is not None:
            for line in stream:
                self._lines.put(line)
        self._lines.put(None)

    def _receive(self, timeout_s: float, what: str) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout_s)
        except queue.Empty:
            raise self.failure(
                f"{self.what} did not answer {what} within {timeout_s:.0f} s"
            ) from None
        if line is None:
            raise self.failure(f"{self.what} exited (code {self.proc.wait()}) during {what}")
        reply: dict[str, Any] = json.loads(line)
        if "error" in reply:
            raise SandboxError(f"{self.what} failed during {what}", hint=str(reply["error"])[-2000:])
        return reply

    def wait_ready(self, timeout_s: float) -> dict[str, Any]:
        self.ready = self._receive(timeout_s, "model loading")
        return self.ready

    def request(self, op: str, timeout_s: float = 600.0, **fields: Any) -> dict[str, Any]:
        if self.proc.stdin is None or self.proc.poll() is not None:
            raise self.failure(f"{self.what} is not running")
        self.proc.stdin.write(json.dumps({"op": op, **fields}) + "\n")
        self.proc.stdin.flush()
        return self._receive(timeout_s, f"'{op}'")

    def close(self) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            try:
                self.proc.stdin.write('{"op": "exit"}\n')
                self.proc.stdin.flush()
                self.proc.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                pass
        self.stop()


class ServerProcess(_Child):
    """The slim image's own entrypoint, serving on a loopback port."""

    def __init__(self, sandbox: Sandbox, port: int) -> None:
        if not sandbox.command:
            raise SandboxError(
                f"the {sandbox.name} image has no entrypoint or cmd to start",
                hint="the slim image must run its server as its entrypoint (docs/DESIGN.md, 'Serving API')",
            )
        env = {"PORT": str(port), "HOST": "127.0.0.1"}
        super().__init__(sandbox, sandbox.command, env, f"the {sandbox.name} server", pipes=False)
        # In a sandbox the port is in its own network namespace: only its Address reaches it.
        self.url: str | Address = f"http://127.0.0.1:{port}"
        if self.container is not None:
            try:
                self.url = self.container.address(port)
            except AdvisorError as e:
                failure = self.failure(f"the {sandbox.name} server exited at once: {e}")
                self.stop()
                raise failure from e

    def alive(self) -> bool:
        return self.proc.poll() is None

    def peak_rss_bytes(self) -> int:
        """The largest VmHWM among the server's processes (runc and unshare fork the server)."""
        return max((_vm_hwm(pid) for pid in _descendants(self.pid)), default=0)


def _descendants(pid: int) -> list[int]:
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        # Every thread's children: runc (Go) forks the container's init from whichever OS
        # thread runs that goroutine, so the main thread's list alone misses the server.
        try:
            tasks = list(Path(f"/proc/{current}/task").iterdir())
        except OSError:
            continue
        for task in tasks:
            try:
                todo.extend(int(c) for c in (task / "children").read_text().split())
            except OSError:
                continue
    return found


def _vm_hwm(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0
