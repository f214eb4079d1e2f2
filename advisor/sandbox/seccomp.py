"""Docker's default seccomp profile (``data/docker-default-seccomp.json``) as an OCI spec section.

A rule of Docker's profile applies when its ``includes`` (capabilities the process holds,
the machine's architecture, a minimum kernel) all hold and none of its ``excludes`` do, as
moby's ``seccomp_linux.go`` decides; what is left is the runtime spec's ``linux.seccomp``.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Collection, Mapping
from functools import cache
from pathlib import Path
from typing import Any

PROFILE = Path(__file__).parent / "data" / "docker-default-seccomp.json"
# Docker's names for the architectures of its rules (GOARCH), from uname -m.
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64", "i686": "x86", "s390x": "s390x",
           "ppc64le": "ppc64le", "riscv64": "riscv64", "armv7l": "arm"}  # fmt: skip
_SCMP_ARCH = {"amd64": "SCMP_ARCH_X86_64", "arm64": "SCMP_ARCH_AARCH64", "x86": "SCMP_ARCH_X86",
              "s390x": "SCMP_ARCH_S390X", "ppc64le": "SCMP_ARCH_PPC64LE",
              "riscv64": "SCMP_ARCH_RISCV64", "arm": "SCMP_ARCH_ARM"}  # fmt: skip


@cache
def _profile() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(PROFILE.read_text(encoding="utf-8"))
    return doc


def _kernel() -> tuple[int, ...]:
    release = platform.release().split("-")[0]
    return tuple(int(p) for p in release.split(".")[:2] if p.isdigit())


def _holds(cond: Mapping[str, Any], caps: Collection[str], arch: str) -> tuple[bool, bool]:
    """(every listed condition holds, any listed condition holds) for one includes/excludes."""
    checks = []
    if cond.get("caps"):
        checks.append(all(c in caps for c in cond["caps"]))
    if cond.get("arches"):
        checks.append(arch in cond["arches"])
    if cond.get("minKernel"):
        wanted = tuple(int(p) for p in str(cond["minKernel"]).split("."))
        checks.append(_kernel() >= wanted)
    return all(checks), any(checks)


def _applies(rule: Mapping[str, Any], caps: Collection[str], arch: str) -> bool:
    every_include, _ = _holds(rule.get("includes") or {}, caps, arch)
    excluded = False
    excludes = rule.get("excludes") or {}
    if excludes.get("caps"):
        excluded |= any(c in caps for c in excludes["caps"])
    if excludes.get("arches"):
        excluded |= arch in excludes["arches"]
    return every_include and not excluded


def _architectures(doc: Mapping[str, Any], arch: str) -> list[str]:
    native = _SCMP_ARCH.get(arch)
    for entry in doc.get("archMap") or ():
        if entry["architecture"] == native:
            return [native, *(entry.get("subArchitectures") or ())]
    return [native] if native else []


def oci_seccomp(capabilities: Collection[str]) -> dict[str, Any]:
    """``linux.seccomp`` for a process holding ``capabilities`` (``CAP_*``), on this machine."""
    doc = _profile()
    arch = _GOARCH.get(platform.machine(), platform.machine())
    syscalls = []
    for rule in doc["syscalls"]:
        if not _applies(rule, capabilities, arch):
            continue
        entry: dict[str, Any] = {"names": list(rule["names"]), "action": rule["action"]}
        if "errnoRet" in rule:
            entry["errnoRet"] = rule["errnoRet"]
        if rule.get("args"):
            entry["args"] = [dict(a) for a in rule["args"]]
        syscalls.append(entry)
    return {
        "defaultAction": doc["defaultAction"],
        "defaultErrnoRet": doc.get("defaultErrnoRet", 1),
        "architectures": _architectures(doc, arch),
        "syscalls": syscalls,
    }
