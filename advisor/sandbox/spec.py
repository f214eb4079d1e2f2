"""The OCI runtime spec advisor gives runc: at least as tight as ``docker run``'s defaults.

Own PID, mount, IPC, UTS and network namespaces (runc brings up ``lo`` and nothing else), a
user namespace when the bundle was unpacked with one; the image's user; Docker's default
capabilities minus NET_RAW and MKNOD (none at all for a non-root user); ``noNewPrivileges``;
a read-only root with a tmpfs ``/tmp``; Docker's masked and read-only ``/proc`` paths; the
device cgroup denying all but null/zero/full/random/urandom/tty and the pty pair; Docker's
default seccomp profile; memory and pids limits as cgroups or, where those cannot be set,
as rlimits.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from advisor.sandbox.limits import Limits
from advisor.sandbox.policy import ROOT_CAPS, Policy
from advisor.sandbox.seccomp import oci_seccomp

MASKED = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi",
    "/sys/firmware", "/sys/devices/virtual/powercap",
)  # fmt: skip
READONLY = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
# (type, major, minor): what the device cgroup lets the container open.
_DEVICES = (("c", 1, 3), ("c", 1, 5), ("c", 1, 7), ("c", 1, 8), ("c", 1, 9), ("c", 5, 0),
            ("c", 5, 2), ("c", 136, None))  # fmt: skip
_NOSUID = ["nosuid", "nodev", "noexec"]


def _mounts(policy: Policy) -> list[dict[str, Any]]:
    mounts: list[dict[str, Any]] = [
        {"destination": "/proc", "type": "proc", "source": "proc", "options": _NOSUID},
        {"destination": "/dev", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]},
        {"destination": "/dev/pts", "type": "devpts", "source": "devpts",
         "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620"]},
        {"destination": "/dev/shm", "type": "tmpfs", "source": "shm",
         "options": [*_NOSUID, "mode=1777", "size=65536k"]},
        {"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": _NOSUID},
        {"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": [*_NOSUID, "ro"]},
        {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs",
         "options": ["nosuid", "nodev", "mode=1777", f"size={policy.tmp_bytes}"]},
    ]  # fmt: skip
    for bind in policy.binds:
        options = ["rbind", "nosuid", "nodev", "rw" if bind.writable else "ro"]
        mounts.append(
            {"destination": bind.target, "type": "bind", "source": str(bind.source),
             "options": options}
        )  # fmt: skip
    return mounts


def _capabilities(uid: int) -> dict[str, list[str]]:
    held = list(ROOT_CAPS) if uid == 0 else []
    return {"bounding": list(ROOT_CAPS), "effective": held, "permitted": held,
            "inheritable": [], "ambient": []}  # fmt: skip


def _device_rules() -> list[dict[str, Any]]:
    rules: list[dict[str, Any]] = [{"allow": False, "access": "rwm"}]
    for kind, major, minor in _DEVICES:
        rule: dict[str, Any] = {"allow": True, "type": kind, "major": major, "access": "rwm"}
        if minor is not None:
            rule["minor"] = minor
        rules.append(rule)
    return rules


def _namespaces(userns: bool) -> list[dict[str, str]]:
    kinds = ["pid", "network", "ipc", "uts", "mount", *(["user"] if userns else [])]
    return [{"type": k} for k in kinds]


def runtime_spec(
    *,
    rootfs: str,
    argv: Sequence[str],
    env: Sequence[str],
    cwd: str,
    uid: int,
    gid: int,
    additional_gids: Sequence[int],
    id_map: tuple[int, int] | None,
    policy: Policy,
    limits: Limits,
    cgroups_path: str,
) -> dict[str, Any]:
    """The ``config.json`` of one run; ``id_map`` is (host id of container root, size)."""
    caps = _capabilities(uid)
    linux: dict[str, Any] = {
        "namespaces": _namespaces(id_map is not None),
        "maskedPaths": list(MASKED),
        "readonlyPaths": list(READONLY),
        "resources": {"devices": _device_rules(), **limits.resources()},
        "seccomp": oci_seccomp(caps["effective"]),
    }
    if limits.cgroup:
        linux["cgroupsPath"] = cgroups_path
    if id_map is not None:
        mapping = [{"containerID": 0, "hostID": id_map[0], "size": id_map[1]}]
        linux["uidMappings"], linux["gidMappings"] = mapping, mapping
    process = {
        "terminal": False,
        "user": {"uid": uid, "gid": gid, "additionalGids": list(additional_gids)},
        "args": list(argv),
        "env": list(env),
        "cwd": cwd,
        "capabilities": caps,
        "rlimits": limits.rlimits(),
        "noNewPrivileges": True,
        "oomScoreAdj": 500,
    }
    return {
        "ociVersion": "1.0.2-dev",
        "process": process,
        "root": {"path": rootfs, "readonly": True},
        "hostname": policy.hostname,
        "mounts": _mounts(policy),
        "linux": linux,
    }
