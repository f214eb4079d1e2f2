"""The CUDA torch swap: a CUDA-shaped torch and its GPU-only package out of their layer, the
CPU wheel of the same version in, installed by pypa's installer; the app still imports it."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisor.fix import FixConfig, FixResult, run
from advisor.oci.filetree import FileTree, merge_layers
from advisor.oci.layers import read_layers
from advisor.oci.loader import open_image
from tests.fix.torch_images import build_torch_image, cpu_wheel
from tests.slim.fixtures import NEEDS_ROOT_TOOLS

SITE = "usr/local/lib/python3.11/dist-packages"
ONLY = frozenset({"cpu-torch"})


@pytest.fixture(scope="module")
def torch_image(tmp_path_factory: pytest.TempPathFactory, debian_base: str) -> str:
    return build_torch_image(f"oci:{tmp_path_factory.mktemp('torch') / 'img'}:v1", debian_base)


def _tree(ref: str) -> tuple[FileTree, int]:
    with open_image(ref) as image:
        return merge_layers(read_layers(image)).tree, len(image.layers)


def _torch(result: FixResult) -> tuple[bool, str]:
    f = next(f for f in result.fixes if f.id == "cpu-torch")
    return f.applied, f.reason


@NEEDS_ROOT_TOOLS
def test_cuda_torch_becomes_the_cpu_build_and_the_app_still_imports_it(torch_image: str, tmp_path: Path) -> None:
    wheels = cpu_wheel(tmp_path / "wheels").parent
    dest = f"oci:{tmp_path / 'fixed'}:v1"
    result = run(FixConfig(torch_image, dest, only=ONLY, wheels=wheels))
    assert _torch(result) == (True, "")
    assert result.proof is not None and result.proof.passed, result.proof
    assert "2 modules import" in result.proof.checks[0].detail  # torch, filelock
    before, n_before = _tree(torch_image)
    after, n_after = _tree(dest)
    assert n_after == n_before + 1  # the CPU build's own layer
    gone = {p.path for p in before} - {p.path for p in after}
    assert f"{SITE}/torch/lib/libtorch_cuda.so" in gone
    assert f"{SITE}/nvidia/cublas/lib/libcublas.so.13" in gone and f"{SITE}/torch-2.13.0+cu130.dist-info/RECORD" in gone
    assert f"{SITE}/torch-2.13.0+cpu.dist-info/RECORD" in after
    assert f"{SITE}/torch/lib/libtorch_cpu.so" in after and "usr/local/bin/torchrun" in after
    new = {p.path for p in after} - {p.path for p in before}
    assert all("torch" in p for p in new), new  # nothing else about the environment changed
    for info in before:
        if "torch" not in info.path and "nvidia" not in info.path and "cuda" not in info.path:
            assert info.path in after
    with open_image(dest) as image:
        assert image.config.raw["history"][-1]["created_by"].startswith("advisor fix: torch 2.13.0+cu130 -> 2.13.0+cpu")


@NEEDS_ROOT_TOOLS
def test_without_a_wheel_source_the_swap_is_skipped_and_says_why(torch_image: str, tmp_path: Path) -> None:
    none = run(FixConfig(torch_image, f"oci:{tmp_path / 'a'}", only=ONLY, verify=False))
    assert _torch(none) == (False, "no CPU torch wheel source: pass --wheels DIR or --index-url URL")
    keep = run(FixConfig(torch_image, f"oci:{tmp_path / 'b'}", only=ONLY, verify=False, torch="keep",
                         wheels=cpu_wheel(tmp_path / "w").parent))
    assert _torch(keep) == (False, "--torch keep")
    (tmp_path / "empty").mkdir()
    wrong = run(FixConfig(torch_image, f"oci:{tmp_path / 'c'}", only=ONLY, verify=False, wheels=tmp_path / "empty"))
    assert _torch(wrong)[1].startswith("no torch-2.13.0+cpu wheel for cp311")
    assert none.manifest_digest == wrong.manifest_digest  # nothing applied: the same image
