"""Turn an image reference into a root filesystem the probes and the server can run in.

umoci unpacks (whiteouts, modes, ownership, device nodes: a proven tool, as the Dockerfile
builder uses); skopeo first copies any other transport into an OCI layout.
"""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from advisor.errors import BuildError
from advisor.image.refs import ImageRef, Transport, as_ref

_LOOPBACK = ("localhost", "127.0.0.1", "[::1]")


def _run(argv: Sequence[str], what: str) -> None:
    try:
        proc = subprocess.run(list(argv), capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
        raise BuildError(
            f"{what}: {argv[0]} is not installed", hint=f"apt-get install -y {argv[0]}"
        ) from e
    if proc.returncode != 0:
        tail = "\n".join((proc.stderr or proc.stdout).strip().splitlines()[-10:])
        raise BuildError(f"{what} failed (exit {proc.returncode})", hint=tail or "no output")


def skopeo_ref(ref: ImageRef) -> str:
    """The same image in skopeo's syntax (advisor's references mirror it, except bare names)."""
    if ref.transport is Transport.NAME:
        return f"docker://{ref.docker_name}"
    return str(ref)


def _tls_flags(ref: ImageRef, insecure: bool) -> list[str]:
    if ref.transport not in (Transport.REGISTRY, Transport.NAME):
        return []
    loopback = ref.docker_name.registry.split(":")[
        0
    ] in _LOOPBACK or ref.docker_name.registry.startswith("[::1]")
    return ["--src-tls-verify=false"] if insecure or loopback else []


def unpack_image(reference: str, dest: Path, *, insecure: bool = False) -> Path:
    """Unpack ``reference`` under ``dest`` and return the root filesystem's path."""
    ref = as_ref(reference)
    dest.mkdir(parents=True, exist_ok=True)
    if ref.transport is Transport.OCI:
        layout = f"{ref.path}:{ref.tag}" if ref.tag else ref.path
    else:
        local = dest / "layout"
        argv = [
            "skopeo",
            "copy",
            "--quiet",
            *_tls_flags(ref, insecure),
            skopeo_ref(ref),
            f"oci:{local}:bench",
        ]
        _run(argv, f"copy {reference}")
        layout = f"{local}:bench"
    bundle = dest / "bundle"
    _run(["umoci", "unpack", "--image", layout, str(bundle)], f"unpack {reference}")
    return bundle / "rootfs"


def require_tools() -> None:
    """Fail early, before minutes of work, when the unpack or run tools are missing."""
    missing = [tool for tool in ("umoci", "skopeo", "unshare") if shutil.which(tool) is None]
    if missing:
        raise BuildError(
            f"advisor bench needs {', '.join(missing)} to run images without a Docker daemon",
            hint=f"apt-get install -y {' '.join(missing)}",
        )
