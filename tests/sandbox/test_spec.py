"""The runtime spec and seccomp profile advisor gives runc, read as data (no root needed)."""

from __future__ import annotations

import json
import platform

import pytest

from advisor.sandbox.limits import Limits
from advisor.sandbox.policy import NEVER_CAPS, ROOT_CAPS, Bind, Policy
from advisor.sandbox.seccomp import PROFILE, oci_seccomp
from advisor.sandbox.spec import runtime_spec


def _allowed(seccomp: dict, name: str) -> list[dict]:
    return [r for r in seccomp["syscalls"] if name in r["names"] and r["action"] == "SCMP_ACT_ALLOW"]


def test_the_profile_is_dockers_as_committed() -> None:
    doc = json.loads(PROFILE.read_text())
    assert doc["defaultAction"] == "SCMP_ACT_ERRNO" and doc["defaultErrnoRet"] == 1
    assert len(doc["syscalls"]) == 31 and "mount" not in doc["syscalls"][0]["names"]


def test_without_sys_admin_mount_and_namespaces_are_refused() -> None:
    seccomp = oci_seccomp(ROOT_CAPS)
    for name in ("mount", "umount2", "unshare", "setns", "bpf", "kexec_load"):
        assert not _allowed(seccomp, name), name
    assert _allowed(seccomp, "read") and _allowed(seccomp, "socket")[0]["args"]
    clone3 = next(r for r in seccomp["syscalls"] if r["names"] == ["clone3"])
    assert clone3["action"] == "SCMP_ACT_ERRNO" and clone3["errnoRet"] == 38  # ENOSYS: glibc falls back


def test_includes_follow_the_capabilities_held() -> None:
    with_admin = oci_seccomp([*ROOT_CAPS, "CAP_SYS_ADMIN"])
    assert _allowed(with_admin, "mount")
    assert not any(r["names"] == ["clone3"] for r in with_admin["syscalls"])


@pytest.mark.skipif(platform.machine() != "x86_64", reason="architecture names of x86_64")
def test_architectures_of_this_machine() -> None:
    seccomp = oci_seccomp(())
    assert seccomp["architectures"] == ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"]
    assert _allowed(seccomp, "arch_prctl") and not _allowed(seccomp, "s390_runtime_instr")


def _spec(uid: int, id_map: tuple[int, int] | None, cgroup: bool = True) -> dict:
    policy = Policy(tmp_bytes=1 << 20, binds=(Bind(PROFILE.parent, "/probe"),))
    return runtime_spec(
        rootfs="/r", argv=["python3"], env=["A=1"], cwd="/app", uid=uid, gid=uid,
        additional_gids=(), id_map=id_map, policy=policy,
        limits=Limits(1 << 30, 64, cgroup), cgroups_path="/advisor/x",
    )  # fmt: skip


def test_root_gets_dockers_caps_minus_four_a_user_gets_none() -> None:
    root = _spec(0, None)["process"]["capabilities"]
    assert root["effective"] == root["bounding"] == list(ROOT_CAPS)
    assert not set(NEVER_CAPS) & set(root["bounding"]) and len(ROOT_CAPS) == 12
    user = _spec(10001, None)["process"]["capabilities"]
    assert user["effective"] == user["permitted"] == user["ambient"] == []


def test_read_only_root_tmpfs_tmp_own_namespaces() -> None:
    spec = _spec(0, (100_000_000, 65536))
    assert spec["root"] == {"path": "/r", "readonly": True}
    assert spec["process"]["noNewPrivileges"] is True
    mounts = {m["destination"]: m for m in spec["mounts"]}
    assert mounts["/tmp"]["type"] == "tmpfs" and "size=1048576" in mounts["/tmp"]["options"]
    assert mounts["/probe"]["options"][-1] == "ro" and "/sys/fs/cgroup" not in mounts
    kinds = {n["type"] for n in spec["linux"]["namespaces"]}
    assert kinds == {"pid", "network", "ipc", "uts", "mount", "user"}
    assert all("path" not in n for n in spec["linux"]["namespaces"])  # nothing shared with the host
    assert spec["linux"]["uidMappings"] == [{"containerID": 0, "hostID": 100_000_000, "size": 65536}]
    assert "/proc/kcore" in spec["linux"]["maskedPaths"] and "/proc/sys" in spec["linux"]["readonlyPaths"]
    assert "user" not in {n["type"] for n in _spec(0, None)["linux"]["namespaces"]}


def test_limits_as_cgroups_or_rlimits() -> None:
    cg = _spec(0, None, cgroup=True)
    assert cg["linux"]["resources"]["memory"]["limit"] == 1 << 30
    assert cg["linux"]["resources"]["pids"] == {"limit": 64}
    rl = _spec(0, None, cgroup=False)
    assert "memory" not in rl["linux"]["resources"] and "cgroupsPath" not in rl["linux"]
    kinds = {r["type"]: r["hard"] for r in rl["process"]["rlimits"]}
    assert kinds["RLIMIT_AS"] == 4 << 30 and kinds["RLIMIT_NPROC"] <= 64
    assert Limits(1 << 30, 64, False).applied.startswith("rlimit")
    assert Limits(1 << 30, 64, True).applied == "cgroup (memory 1024 MiB, pids 64)"
