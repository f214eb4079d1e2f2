"""Run an image's entrypoint without a container engine, and reach it over loopback.

``unpack_image`` turns any ImageRef into a root filesystem: ``skopeo copy`` into a private
OCI layout (verifying every blob), then ``umoci unpack`` (whiteouts, modes, owners, links
exactly as a runtime applies them). ``run_image`` starts the config's entrypoint inside it
with ``unshare --mount --pid --fork --mount-proc --root=ROOTFS --wd=WORKDIR`` as the
config's user; the host network namespace is kept, so ``http://127.0.0.1:PORT`` reaches the
server. With a Docker engine answering, ``docker run`` would do the same; it is not
needed. Needs root (umoci and unshare --root), skopeo and umoci.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from advisor.errors import AdvisorError, BuildError, MissingDependencyError
from advisor.oci.refs import Transport, as_ref

DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8), "urandom": (1, 9)}
_TAG = "run"


@dataclass(frozen=True, slots=True)
class Bundle:
    """An unpacked image: its root filesystem and the runtime parts of its config."""

    root: Path  # the directory holding rootfs/ (remove it when done)
    rootfs: Path
    entrypoint: tuple[str, ...]
    env: tuple[str, ...]
    user: str
    working_dir: str
    exposed_ports: tuple[str, ...]


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scratch_dir(needed_bytes: int = 1 << 30) -> str | None:
    """Where bundles go: $ADVISOR_RUN_DIR, else /dev/shm (umoci fsyncs every file, which
    tmpfs makes free: 2x faster here) when the bundle takes at most a quarter of it (tmpfs
    is memory: a 10 GB image there would starve the machine), else the system temp dir."""
    chosen = os.environ.get("ADVISOR_RUN_DIR")
    if chosen:
        return chosen
    shm = Path("/dev/shm")
    if shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 4 * needed_bytes:
        return str(shm)
    return None


def _bundle_bytes(ref: str) -> int:
    """A generous guess of an unpacked bundle's bytes: the layout copy plus the rootfs
    (uncompressed layers run to ~3x their gzip size)."""
    from advisor.oci.loader import open_image

    try:
        with open_image(ref) as image:
            return 4 * image.compressed_size
    except AdvisorError:
        return 1 << 30  # skopeo will say what is wrong with the reference


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MissingDependencyError(f"{name} (apt-get install {name})", "dev")
    return path


def _run(cmd: Sequence[str], what: str, timeout: float = 600) -> None:
    try:
        subprocess.run(list(cmd), check=True, capture_output=True, text=True, timeout=timeout)
    except subprocess.CalledProcessError as e:
        tail = " | ".join((e.stderr or e.stdout or "").strip().splitlines()[-3:])
        raise BuildError(
            f"{what} failed: {tail}", hint="check the image reference and that you run as root"
        ) from e


def _skopeo_ref(ref: str) -> tuple[str, list[str]]:
    parsed = as_ref(ref)
    flags: list[str] = []
    if parsed.transport is Transport.REGISTRY:
        host = parsed.docker_name.registry
        if host.startswith(("127.", "localhost", "[::1]")):
            flags.append("--src-tls-verify=false")
    return str(parsed), flags


def unpack_image(ref: str, dest: Path | None = None) -> Bundle:
    """Unpack ``ref`` (any transport skopeo reads) into ``dest`` (a new temp dir by default)."""
    skopeo, umoci = _tool("skopeo"), _tool("umoci")
    root = dest or Path(tempfile.mkdtemp(prefix="advisor-run-", dir=scratch_dir(_bundle_bytes(ref))))
    layout = root / "layout"
    src, flags = _skopeo_ref(ref)
    try:
        _run([skopeo, "copy", "--quiet", *flags, src, f"oci:{layout}:{_TAG}"], f"skopeo copy {src}")
        _run([umoci, "unpack", "--image", f"{layout}:{_TAG}", str(root / "bundle")], "umoci unpack")
        shutil.rmtree(layout, ignore_errors=True)
        rootfs = root / "bundle" / "rootfs"
        _make_devices(rootfs)
        return _bundle(root, rootfs, json.loads((root / "bundle" / "config.json").read_text()))
    except BaseException:
        if dest is None:
            shutil.rmtree(root, ignore_errors=True)
        raise


def _bundle(root: Path, rootfs: Path, spec: Mapping[str, Any]) -> Bundle:
    """Read what to run from umoci's runtime spec (it derives it from the image config)."""
    process = spec.get("process") or {}
    user = process.get("user") or {}
    return Bundle(
        root=root,
        rootfs=rootfs,
        entrypoint=tuple(process.get("args") or ()),
        env=tuple(process.get("env") or ()),
        user=f"{user.get('uid', 0)}:{user.get('gid', 0)}",
        working_dir=str(process.get("cwd") or "/"),
        exposed_ports=_exposed_ports(spec),
    )


def _exposed_ports(spec: Mapping[str, Any]) -> tuple[str, ...]:
    raw = (spec.get("annotations") or {}).get("org.opencontainers.image.exposedPorts", "")
    return tuple(sorted(p for p in str(raw).split(",") if p))


def _make_devices(rootfs: Path) -> None:
    """The few character devices a runtime would bind in (Python and onnxruntime open them)."""
    dev = rootfs / "dev"
    if dev.is_symlink() or (dev.exists() and not dev.is_dir()):
        # A runtime mounts its own /dev over whatever the image has; in our private unpacked
        # copy the image's /dev (a link that may point at the host's dirs) simply goes.
        dev.unlink()
    dev.mkdir(exist_ok=True)
    for name, (major, minor) in DEVICES.items():
        node = dev / name
        if not node.exists() and not node.is_symlink():
            try:
                os.mknod(node, 0o20666, os.makedev(major, minor))
                os.chmod(node, 0o666)
            except PermissionError as e:
                raise BuildError(
                    "cannot create device nodes in the unpacked image", hint="run as root"
                ) from e


@dataclass
class Running:
    """A started image: ``url`` on loopback, ``logs()``, ``stop()`` (SIGTERM, then SIGKILL)."""

    bundle: Bundle
    process: subprocess.Popen[bytes]
    url: str
    port: int
    log_path: Path
    started_at: float  # time.monotonic() just before the process was spawned
    ready_s: float = -1.0
    keep: bool = False
    returncode: int | None = field(default=None)

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def server_pid(self) -> int | None:
        """The entrypoint's pid on the host (unshare's forked child)."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        try:
            pids = children.read_text().split()
        except OSError:
            return None
        return int(pids[0]) if pids else None

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM the server (graceful), SIGKILL after ``timeout``; returns its exit status."""
        if self.process.poll() is None:
            pid = self.server_pid()
            if pid is not None:
                os.kill(pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                # The entrypoint is its pid namespace's init: SIGKILL from outside ends it and
                # every process in the namespace. --kill-child alone is not enough: the kernel
                # drops that death signal once the child switches to the image's user.
                if pid is not None:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self.process.kill()
                self.process.wait(timeout=timeout)
        self.returncode = self.process.returncode
        if not self.keep:
            shutil.rmtree(self.bundle.root, ignore_errors=True)
        return self.returncode

    def __enter__(self) -> Running:
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def start(bundle: Bundle, port: int | None = None, env: Mapping[str, str] | None = None) -> Running:
    """Spawn the bundle's entrypoint (no wait); PORT is set to a free loopback port."""
    if not bundle.entrypoint:
        raise BuildError(
            "the image has no entrypoint or cmd to run", hint="build it with advisor export"
        )
    port = port or free_port()
    uid, _, gid = bundle.user.partition(":")
    merged = (
        dict(e.split("=", 1) for e in bundle.env if "=" in e)
        | {"PORT": str(port)}
        | dict(env or {})
    )
    cmd = [_tool("unshare"), "--mount", "--pid", "--fork", "--kill-child", "--mount-proc"]
    cmd += [f"--root={bundle.rootfs}", f"--wd={bundle.working_dir}"]
    if uid not in ("", "0"):
        cmd += ["--setuid", uid, "--setgid", gid or uid]
    log_path = bundle.root / "server.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [*cmd, *bundle.entrypoint], env=merged, stdout=log, stderr=subprocess.STDOUT
        )
    return Running(bundle, proc, f"http://127.0.0.1:{port}", port, log_path, started)


def wait_ready(running: Running, timeout: float = 60.0, path: str = "/health") -> float:
    """Poll ``path`` until 200; return seconds since spawn. BuildError with the logs otherwise."""
    deadline = running.started_at + timeout
    while time.monotonic() < deadline:
        if running.process.poll() is not None:
            raise BuildError(
                f"the server exited with status {running.process.returncode} before it was ready: "
                + " | ".join(running.logs().strip().splitlines()[-5:]),
                hint="run the image by hand to see its full output",
            )
        if _status(running.port, path) == 200:
            running.ready_s = time.monotonic() - running.started_at
            return running.ready_s
        time.sleep(0.02)
    raise BuildError(f"the server was not ready after {timeout:.0f}s", hint=running.logs()[-300:])


def _status(port: int, path: str) -> int:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
        conn.request("GET", path)
        status = conn.getresponse().status
        conn.close()
        return status
    except OSError:
        return 0


def run_image(
    ref: str,
    *,
    port: int | None = None,
    env: Mapping[str, str] | None = None,
    timeout: float = 60.0,
) -> Running:
    """Unpack, start and wait until ``/health`` answers 200; the caller calls ``stop()``."""
    bundle = unpack_image(ref)
    running = start(bundle, port, env)
    try:
        wait_ready(running, timeout)
    except BaseException:
        running.stop(timeout=5)
        raise
    return running
