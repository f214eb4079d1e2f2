"""Memory and pids limits: cgroups where this machine lets runc set them, rlimits otherwise.

``Limits.applied`` says which, in words the bench report prints (``cgroup`` or ``rlimit``).
Without cgroups, ``RLIMIT_AS`` bounds address space (a loose stand-in for memory: torch
reserves far more than it touches, so it gets 4x the memory limit) and ``RLIMIT_NPROC`` the
processes of the sandbox's host uid.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

_CGROUP = Path("/sys/fs/cgroup")
_AS_FACTOR = 4


def cgroups_writable(root: Path = _CGROUP) -> bool:
    """Whether runc can make a cgroup with memory and pids controllers here (v2 or v1)."""
    v2 = root / "cgroup.controllers"
    if v2.is_file():
        try:
            wanted = {"memory", "pids"} <= set(v2.read_text().split())
        except OSError:
            return False
        return wanted and os.access(root, os.W_OK)
    return all(os.access(root / c, os.W_OK) for c in ("memory", "pids"))


@dataclass(frozen=True, slots=True)
class Limits:
    memory_bytes: int
    pids: int
    cgroup: bool

    @classmethod
    def choose(cls, memory_bytes: int, pids: int, root: Path = _CGROUP) -> Limits:
        return cls(memory_bytes, pids, cgroups_writable(root))

    @property
    def applied(self) -> str:
        mib = self.memory_bytes >> 20
        if self.cgroup:
            return f"cgroup (memory {mib} MiB, pids {self.pids})"
        return f"rlimit (RLIMIT_AS {_AS_FACTOR * mib} MiB, RLIMIT_NPROC {self.pids})"

    def resources(self) -> dict[str, Any]:
        if not self.cgroup:
            return {}
        return {
            # swap = memory: the limit is not dodged by swapping
            "memory": {"limit": self.memory_bytes, "swap": self.memory_bytes},
            "pids": {"limit": self.pids},
        }

    def rlimits(self) -> list[dict[str, Any]]:
        # A user namespace may lower a hard limit, never raise it: stay within the host's.
        files = min(65536, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        limits = [{"type": "RLIMIT_NOFILE", "hard": files, "soft": files}]
        if not self.cgroup:
            address = _AS_FACTOR * self.memory_bytes
            nproc = resource.getrlimit(resource.RLIMIT_NPROC)[1]
            pids = self.pids if nproc == resource.RLIM_INFINITY else min(self.pids, nproc)
            limits += [
                {"type": "RLIMIT_AS", "hard": address, "soft": address},
                {"type": "RLIMIT_NPROC", "hard": pids, "soft": pids},
            ]
        return limits
