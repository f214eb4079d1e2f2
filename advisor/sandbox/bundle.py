"""Unpack an image into a runc bundle: ``skopeo copy`` to a private layout, ``umoci unpack``.

skopeo reads every transport advisor accepts and verifies each blob; umoci applies the
layers exactly as a runtime does (whiteouts, modes, owners, links) and resolves the image's
``User`` against its own ``/etc/passwd``. With a user namespace the owners are shifted into
the sandbox's host id range while unpacking (``--uid-map``), so the image sees its own ids.
"""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from advisor.errors import AdvisorError, BadInputError, MissingToolError
from advisor.oci.refs import Transport, as_ref

_TAG = "run"
ID_BASE = 100_000_000  # host uid/gid of the sandbox's root when a user namespace maps it
ID_SIZE = 65536
_LINK_HOPS = 40


@dataclass(frozen=True, slots=True)
class Bundle:
    """An unpacked image: its root filesystem and the runtime parts of its config.

    ``root`` holds ``rootfs/`` and everything a run writes; remove it with ``remove()``.
    ``id_map`` is (host id of the image's root, size) when unpacked for a user namespace.
    """

    root: Path
    rootfs: Path
    entrypoint: tuple[str, ...]
    env: tuple[str, ...]
    user: str  # "uid:gid", as umoci resolved the image's User
    working_dir: str
    exposed_ports: tuple[str, ...]
    uid: int = 0
    gid: int = 0
    additional_gids: tuple[int, ...] = ()
    id_map: tuple[int, int] | None = None

    def host_path(self, inner: str) -> Path:
        """Where a path of the image lives on the host (no symlink is followed)."""
        return self.rootfs / inner.lstrip("/")

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)


def tool(name: str, package: str | None = None, why: str = "") -> str:
    path = shutil.which(name)  # runc is in /usr/sbin: on root's PATH, as on Debian's
    if path is None:
        raise MissingToolError(name, package or name, why)
    return path


def userns_available() -> bool:
    """A user namespace can be made here (ADVISOR_SANDBOX_USERNS=0 turns it off)."""
    if os.environ.get("ADVISOR_SANDBOX_USERNS", "") == "0":
        return False
    try:
        return int(Path("/proc/sys/user/max_user_namespaces").read_text()) > 0
    except (OSError, ValueError):
        return False


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


def _run(cmd: Sequence[str], what: str, hint: str, timeout: float = 3600) -> None:
    try:
        subprocess.run(list(cmd), check=True, capture_output=True, text=True, timeout=timeout)
    except subprocess.CalledProcessError as e:
        lines = (e.stderr or e.stdout or "").strip().splitlines()
        tail = " | ".join(ln.strip() for ln in lines[-2:])
        raise BadInputError(f"{what} failed: {tail}", hint=hint) from e


def _skopeo_ref(ref: str) -> tuple[str, list[str]]:
    parsed = as_ref(ref)
    flags: list[str] = []
    if parsed.transport is Transport.REGISTRY:
        host = parsed.docker_name.registry
        if host.startswith(("127.", "localhost", "[::1]")):
            flags.append("--src-tls-verify=false")
    return str(parsed), flags


def unpack(ref: str, dest: Path | None = None, *, userns: bool | None = None) -> Bundle:
    """Unpack ``ref`` into ``dest`` (a new directory by default); on any error nothing it
    wrote is left.

    Raises ``BadInputError`` for an image that cannot run (a user it does not define, an
    absolute symlink as its working directory), ``MissingDependencyError`` without the tools.
    """
    skopeo, umoci = tool("skopeo"), tool("umoci")
    mapped = userns_available() if userns is None else userns
    created = dest is None or not dest.exists()
    root = dest or Path(
        tempfile.mkdtemp(prefix="advisor-run-", dir=scratch_dir(_bundle_bytes(ref)))
    )
    root.mkdir(parents=True, exist_ok=True)
    root.chmod(0o711)  # a mapped root must reach rootfs/; nobody may list it
    layout = root / "layout"
    src, flags = _skopeo_ref(ref)
    maps = (
        [f"--uid-map=0:{ID_BASE}:{ID_SIZE}", f"--gid-map=0:{ID_BASE}:{ID_SIZE}"] if mapped else []
    )
    try:
        hint = "check the image reference (skopeo inspect it)"
        # umoci 0.4 (Debian 12's) refuses zstd layers: skopeo recompresses only those to gzip
        # (gzip layers are copied as they are, uncompressed ones were gzipped anyway).
        _run([skopeo, "copy", "--quiet", "--dest-compress-format", "gzip", *flags, src,
              f"oci:{layout}:{_TAG}"], f"reading {src}", hint)  # fmt: skip
        _run([umoci, "unpack", *maps, "--image", f"{layout}:{_TAG}", str(root / "bundle")],
             f"unpacking {src}", "the image's config or layers are not runnable (umoci unpack)")  # fmt: skip
        shutil.rmtree(layout, ignore_errors=True)
        (root / "bundle").chmod(0o711)
        spec = json.loads((root / "bundle" / "config.json").read_text())
        bundle = _bundle(root, root / "bundle" / "rootfs", spec, mapped)
        _check(bundle)
        return bundle
    except BaseException:
        # A directory the caller made stays; only what this call wrote in it goes.
        for path in [root] if created else [layout, root / "bundle"]:
            shutil.rmtree(path, ignore_errors=True)
        raise


def _bundle(root: Path, rootfs: Path, spec: Mapping[str, Any], mapped: bool) -> Bundle:
    """Read what to run from umoci's runtime spec (it derives it from the image config)."""
    process = spec.get("process") or {}
    user = process.get("user") or {}
    uid, gid = int(user.get("uid", 0)), int(user.get("gid", 0))
    return Bundle(
        root=root,
        rootfs=rootfs,
        entrypoint=tuple(process.get("args") or ()),
        env=tuple(e for e in process.get("env") or () if not e.startswith("TERM=")),
        user=f"{uid}:{gid}",
        working_dir=str(process.get("cwd") or "/"),
        exposed_ports=_exposed_ports(spec),
        uid=uid,
        gid=gid,
        additional_gids=tuple(int(g) for g in user.get("additionalGids") or ()),
        id_map=(ID_BASE, ID_SIZE) if mapped else None,
    )


def _exposed_ports(spec: Mapping[str, Any]) -> tuple[str, ...]:
    raw = (spec.get("annotations") or {}).get("org.opencontainers.image.exposedPorts", "")
    return tuple(sorted(p for p in str(raw).split(",") if p))


def _check(bundle: Bundle) -> None:
    if bundle.id_map is not None and max(bundle.uid, bundle.gid) >= bundle.id_map[1]:
        raise BadInputError(
            f"the image runs as {bundle.user}, beyond the {bundle.id_map[1]} ids the sandbox maps",
            hint="run the image as a user below 65536",
        )
    link = absolute_link(bundle.rootfs, bundle.working_dir)
    if link is not None:
        raise BadInputError(
            f"the image's working directory {bundle.working_dir} is a symlink to the absolute "
            f"path {link}",
            hint="set WORKDIR to a real directory of the image",
        )


def closed_directory(path: Path, uid: int, gid: int) -> Path | None:
    """The first directory on the way down to ``path`` (itself included) that host user
    ``uid:gid`` may not enter, or None. A user namespace's root is such a user: the kernel
    grants it nothing on directories whose owner it does not map (``mkdtemp``'s 0700 ones)."""
    path = path.absolute()
    for directory in (*reversed(path.parents), path):
        try:
            st = directory.stat()
        except OSError:
            return directory
        if st.st_uid == uid:
            bit = stat.S_IXUSR
        elif st.st_gid == gid:
            bit = stat.S_IXGRP
        else:
            bit = stat.S_IXOTH
        if not st.st_mode & bit:
            return directory
    return None


def absolute_link(rootfs: Path, inner: str) -> str | None:
    """The absolute target of the first symlink on ``inner``'s path, if there is one."""
    current = rootfs
    for part in PurePosixPath("/" + inner.lstrip("/")).parts[1:]:
        current = current / part
        if current.is_symlink():
            target = os.readlink(current)
            if target.startswith("/"):
                return target
            return None  # relative links resolve inside the image; runc confines them
    return None


def resolve(rootfs: Path, inner: str) -> Path | None:
    """``inner`` resolved inside ``rootfs`` (absolute links restart at its root), or None."""
    parts = list(PurePosixPath("/" + inner.lstrip("/")).parts[1:])
    current, hops = rootfs, 0
    while parts:
        part = parts.pop(0)
        if part in ("", "."):
            continue
        if part == "..":
            current = current.parent if current != rootfs else rootfs
            continue
        candidate = current / part
        if candidate.is_symlink():
            hops += 1
            if hops > _LINK_HOPS:
                return None
            target = PurePosixPath(os.readlink(candidate))
            if target.is_absolute():
                current = rootfs
            parts = [*target.parts[1 if target.is_absolute() else 0 :], *parts]
            continue
        if not candidate.exists():
            return None
        current = candidate
    return current


def find_program(bundle: Bundle, program: str, env: Mapping[str, str]) -> Path | None:
    """Where ``program`` (a path, or a name looked up on the image's PATH) is in the image."""
    if "/" in program:
        found = resolve(bundle.rootfs, program if program.startswith("/") else
                        f"{bundle.working_dir}/{program}")  # fmt: skip
        return found if found is not None and found.is_file() else None
    for directory in env.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":"):
        found = resolve(bundle.rootfs, f"{directory}/{program}")
        if found is not None and found.is_file():
            return found
    return None


HOST_RUN_DEVICES = {"null": (1, 3), "zero": (1, 5), "full": (1, 7), "random": (1, 8),
                    "urandom": (1, 9)}  # fmt: skip


def make_host_run_devices(bundle: Bundle) -> None:
    """The device nodes an unsandboxed host run (``unshare --root``) needs in the rootfs;
    runc makes its own and never needs these."""
    dev = bundle.rootfs / "dev"
    if dev.is_symlink() or (dev.exists() and not dev.is_dir()):
        dev.unlink()  # our private copy: the image's /dev link (maybe to host dirs) goes
    dev.mkdir(exist_ok=True)
    for name, (major, minor) in HOST_RUN_DEVICES.items():
        node = dev / name
        if not node.exists() and not node.is_symlink():
            try:
                os.mknod(node, 0o20666, os.makedev(major, minor))
                os.chmod(node, 0o666)
            except PermissionError as e:
                raise BadInputError(
                    "cannot create device nodes in the unpacked image", hint="run as root"
                ) from e
