from __future__ import annotations

import os
from pathlib import Path

import pytest

from advisor.serve.settings import Settings, SettingsError, usable_cores


def test_defaults_match_the_image_contract() -> None:
    s = Settings.from_env({})
    assert (s.port, s.host, s.model_dir) == (8080, "0.0.0.0", "/app/model")
    # a worker per usable core, one onnxruntime thread each (benchmarks/load/README.md)
    assert (s.workers, s.intra_op_threads) == (len(os.sched_getaffinity(0)), 1)
    assert s.max_wait_ms == 0  # a free worker does not wait for company


def test_env_overrides() -> None:
    s = Settings.from_env(
        {"PORT": "9001", "MAX_BATCH": "4", "WORKERS": "2", "MAX_BODY_BYTES": "10"}
    )
    assert (s.port, s.max_batch, s.workers, s.max_body_bytes) == (9001, 4, 2, 10)


@pytest.mark.parametrize(
    "env", [{"PORT": "x"}, {"PORT": "70000"}, {"MAX_BATCH": "0"}, {"WORKERS": "-1"}]
)
def test_bad_values_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(env)


def _cgroups(tmp_path: Path, own: str, limits: dict[str, str]) -> tuple[str, str]:
    """A cgroup v2 tree under tmp_path: ``limits`` maps a cgroup path to its cpu.max."""
    fs = tmp_path / "cgroup"
    for group, text in limits.items():
        (fs / group).mkdir(parents=True, exist_ok=True)
        (fs / group / "cpu.max").write_text(text + "\n")
    (fs / own.strip("/")).mkdir(parents=True, exist_ok=True)
    proc = tmp_path / "self-cgroup"
    proc.write_text(f"0::{own}\n")
    return str(fs), str(proc)


@pytest.mark.parametrize(("own", "limits", "cap"), [
    ("/", {"": "max 100000"}, None),  # no quota: the affinity mask
    ("/", {"": "150000 100000"}, 2),  # 1.5 CPUs: 2 workers
    ("/", {"": "50000 100000"}, 1),
    ("/kubepods/pod1/ctr", {"kubepods/pod1": "100000 100000", "kubepods/pod1/ctr": "max 100000"}, 1),
    ("/kubepods/pod1/ctr", {"kubepods/pod1/ctr": "300000 100000", "kubepods": "200000 100000"}, 2),
    ("/", {"": "garbage"}, None),
])  # fmt: skip
def test_usable_cores_honours_a_cgroup_cpu_quota(
    tmp_path: Path, own: str, limits: dict[str, str], cap: int | None
) -> None:
    affinity = len(os.sched_getaffinity(0))
    got = usable_cores(*_cgroups(tmp_path, own, {k.strip("/"): v for k, v in limits.items()}))
    assert got == (min(affinity, cap) if cap is not None else affinity)


def test_usable_cores_without_cgroup_v2_is_the_affinity_mask(tmp_path: Path) -> None:
    v1 = tmp_path / "self-cgroup"
    v1.write_text("12:cpu,cpuacct:/docker/abc\n")  # cgroup v1 only
    assert usable_cores(str(tmp_path), str(v1)) == len(os.sched_getaffinity(0))
    assert usable_cores(str(tmp_path), str(tmp_path / "missing")) == len(os.sched_getaffinity(0))
