"""One process of a bundle run by runc under advisor's runtime spec, and its clean stop.

``runc run`` stays in the foreground: its exit status is the process's, its stdio are the
process's (pipes or files the caller gives), and the container's init is its child on the
host (so /proc shows its memory). Stopping sends SIGTERM through ``runc kill``, SIGKILL
after the grace period, and ``runc delete --force`` removes what runc kept.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import shutil
import subprocess
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any

from advisor.errors import BadInputError, SandboxError
from advisor.sandbox.bundle import Bundle, closed_directory, find_program, tool
from advisor.sandbox.limits import Limits
from advisor.sandbox.netns import Address
from advisor.sandbox.policy import DEFAULT_POLICY, Policy
from advisor.sandbox.spec import runtime_spec

STATE_DIR = "/run/advisor-runc"
_DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_ids = itertools.count(1)
Stdio = int | IO[Any] | None


def runc() -> str:
    """runc's path; ``MissingDependencyError`` (exit 7) naming the package without it."""
    return tool("runc", why="to run the image's code in a sandbox")


def image_env(bundle: Bundle, policy: Policy, extra: Mapping[str, str]) -> dict[str, str]:
    env = dict(e.split("=", 1) for e in bundle.env if "=" in e)
    env.setdefault("PATH", _DEFAULT_PATH)
    env.update(dict(policy.env))
    env.update(extra)
    return env


class Container:
    """``argv`` running in ``bundle`` (started at once); ``stop()`` ends it and cleans up."""

    def __init__(
        self,
        bundle: Bundle,
        argv: Sequence[str],
        *,
        policy: Policy = DEFAULT_POLICY,
        env: Mapping[str, str] | None = None,
        cwd: str | None = None,
        stdin: Stdio = subprocess.DEVNULL,
        stdout: Stdio = None,
        stderr: Stdio = None,
        text: bool = False,
    ) -> None:
        merged = image_env(bundle, policy, env or {})
        if not argv:
            raise BadInputError(
                "the image has no entrypoint or cmd to run", hint="give it an ENTRYPOINT or CMD"
            )
        if find_program(bundle, argv[0], merged) is None:
            raise BadInputError(
                f"the image's command {argv[0]} does not exist in the image",
                hint="fix its ENTRYPOINT/CMD (or PATH) to name a file the image holds",
            )
        if bundle.id_map is not None:
            host_root = bundle.id_map[0]
            closed = closed_directory(bundle.rootfs, host_root, host_root)
            if closed is not None:
                raise SandboxError(
                    f"the sandbox's root (host uid {host_root}) cannot enter {closed}, on the "
                    "way to the unpacked image",
                    hint=f"unpack under a directory others may enter (chmod o+x {closed}), "
                    "or leave the destination to advisor",
                )
        self.bundle = bundle
        self.limits = Limits.choose(policy.memory_bytes, policy.pids)
        self.id = f"advisor-{os.getpid()}-{next(_ids)}-{time.monotonic_ns() % 100000}"
        self.run_dir = bundle.root / "runs" / self.id
        self.run_dir.mkdir(parents=True)
        self.grace_s = policy.stop_grace_s
        spec = runtime_spec(
            rootfs=str(bundle.rootfs), argv=argv, env=[f"{k}={v}" for k, v in merged.items()],
            cwd=cwd or bundle.working_dir or "/", uid=bundle.uid, gid=bundle.gid,
            additional_gids=bundle.additional_gids, id_map=bundle.id_map, policy=policy,
            limits=self.limits, cgroups_path=f"/advisor/{self.id}",
        )  # fmt: skip
        (self.run_dir / "config.json").write_text(json.dumps(spec, indent=1))
        self._pid_file = self.run_dir / "init.pid"
        cmd = [runc(), "--root", STATE_DIR, "run", "--bundle", str(self.run_dir),
               "--pid-file", str(self._pid_file), self.id]  # fmt: skip
        self.started_at = time.time()
        try:
            self.proc = subprocess.Popen(
                cmd, stdin=stdin, stdout=stdout, stderr=stderr, text=text, start_new_session=True
            )
        except OSError as e:
            shutil.rmtree(self.run_dir, ignore_errors=True)
            raise SandboxError(f"cannot start runc: {e}", hint=" ".join(cmd)) from e
        self.returncode: int | None = None

    def init_pid(self, timeout_s: float = 30.0) -> int | None:
        """The container's first process, as the host numbers it (None once it has exited)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with contextlib.suppress(OSError, ValueError):
                return int(self._pid_file.read_text().strip())
            if self.proc.poll() is not None:
                return None
            time.sleep(0.005)
        return None

    def address(self, port: int) -> Address:
        pid = self.init_pid()
        if pid is None:
            raise SandboxError(
                f"the sandboxed process exited (status {self.proc.poll()}) before it could serve",
                hint="run the image by hand to see its output",
            )
        return Address(f"/proc/{pid}/ns/net", port)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def wait(self, timeout: float | None = None) -> int:
        return self.proc.wait(timeout=timeout)

    def _kill(self, signal_name: str) -> None:
        subprocess.run(
            [runc(), "--root", STATE_DIR, "kill", "--all", self.id, signal_name],
            capture_output=True, timeout=30, check=False,
        )  # fmt: skip

    def stop(self, grace_s: float | None = None) -> int:
        """SIGTERM, then SIGKILL after the grace period; runc's state and the run dir go."""
        if self.proc.poll() is None:
            self._kill("TERM")
            try:
                self.proc.wait(timeout=self.grace_s if grace_s is None else grace_s)
            except subprocess.TimeoutExpired:
                self._kill("KILL")
                try:
                    self.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        subprocess.run([runc(), "--root", STATE_DIR, "delete", "--force", self.id],
                       capture_output=True, timeout=30, check=False)  # fmt: skip
        shutil.rmtree(self.run_dir, ignore_errors=True)
        self.returncode = self.proc.returncode
        return self.returncode
