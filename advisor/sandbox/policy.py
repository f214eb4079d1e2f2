"""What a sandboxed process may do: limits, extra read-only mounts and the user namespace."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

# Docker's default capability set (moby's oci/caps/defaults.go), without the four the
# issue names: CAP_MKNOD and CAP_NET_RAW are in Docker's set and dropped here;
# CAP_SYS_ADMIN and CAP_SYS_PTRACE never are.
DOCKER_DEFAULT_CAPS = (
    "CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
    "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE",
)  # fmt: skip
NEVER_CAPS = ("CAP_SYS_ADMIN", "CAP_NET_RAW", "CAP_MKNOD", "CAP_SYS_PTRACE")
ROOT_CAPS = tuple(c for c in DOCKER_DEFAULT_CAPS if c not in NEVER_CAPS)


@dataclass(frozen=True, slots=True)
class Bind:
    """A host directory or file the sandbox sees read-only (or writable) at ``target``."""

    source: Path
    target: str
    writable: bool = False


@dataclass(frozen=True, slots=True)
class Policy:
    """Limits of one sandboxed run. The defaults fit the benchmark's torch side (~1.2 GB).

    ``userns``: ``None`` uses a user namespace where the kernel allows one (the bundle must
    then be unpacked with the same choice: ``unpack(..., userns=...)`` maps its owners).
    """

    memory_bytes: int = 6 << 30
    pids: int = 1024
    tmp_bytes: int = 512 << 20
    binds: tuple[Bind, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    userns: bool | None = None
    stop_grace_s: float = 10.0
    hostname: str = "sandbox"


DEFAULT_POLICY = Policy()
