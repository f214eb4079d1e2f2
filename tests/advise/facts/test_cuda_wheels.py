"""The CUDA rule on the real thing: the layout of PyPI's torch 2.14.1 (a CUDA build with no
``+cu`` in its version) and every nvidia-*/triton/cuda-* wheel it pulls, as pip would
install them, read from the real wheels on this machine (file lists, sizes and metadata;
the multi-GB contents themselves are not written, sizes stand for them)."""

from __future__ import annotations

import json
import posixpath
import zipfile
from pathlib import Path

import pytest

from advisor.advise.advice import build_advice
from advisor.advise.facts.capture import capture_for
from advisor.advise.facts.context import Context, ImageFacts
from advisor.advise.facts.mlstack import cpu_torch_size
from advisor.oci.filetree import LayerTree, merge_layers
from advisor.oci.model import Entry, EntryKind
from tests.advise.rules import fixtures as fx

WHEELS = [Path("/opt/pypi-more/files"), Path("/opt/pypi/files")]
TORCH = "torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl"
GPU_WHEELS = ("nvidia_*", "triton-3.8.0-*", "cuda_*")
SITE = fx.SITE


def _find(pattern: str) -> list[Path]:
    return sorted(p for d in WHEELS if d.is_dir() for p in d.glob(pattern))


def _install(layer: LayerTree, wheel: Path) -> int:
    """Lay a wheel's files out like pip does (sizes and captured metadata), return its bytes."""
    total = 0
    with zipfile.ZipFile(wheel) as z:
        for info in z.infolist():
            if info.is_dir():
                continue
            name = info.filename
            if ".data/" in name:
                _data, _, rest = name.partition(".data/")
                kind, _, rest = rest.partition("/")
                name = rest if kind in ("purelib", "platlib") else f"../../../{kind}/{rest}"
            path = posixpath.normpath(posixpath.join(SITE, name))
            entry = Entry(path, EntryKind.FILE, info.file_size)
            layer.entries[path] = entry
            cap = capture_for(entry)
            if cap is not None and cap.tail == 0 and info.file_size <= cap.head:
                layer.heads[path] = z.read(info)
            total += info.file_size
    return total


@pytest.fixture(scope="module")
def cuda_image() -> tuple[Context, int]:
    torch = _find(TORCH)
    gpu = [w for pat in GPU_WHEELS for w in _find(pat)]
    if not torch or len(gpu) < 10:
        pytest.skip("the local CUDA torch 2.14.1 and nvidia-* wheels (ENVIRONMENT.md) are not on this machine")
    base = LayerTree(0)
    for path, spec in fx.python_base().items():
        assert isinstance(spec, int | str)
        base.entries[path] = Entry(path, EntryKind.FILE, spec if isinstance(spec, int) else len(spec))
    layer = LayerTree(1)
    total = _install(layer, torch[0])
    for wheel in gpu:
        if "nvcc" in wheel.name or "crt" in wheel.name or "nvvm" in wheel.name or "cccl" in wheel.name:
            continue  # not pulled by torch (cuda-toolkit extras it does not ask for)
        total += _install(layer, wheel)
    for name, version, files, reqs in (("filelock", "3.16", {"filelock/__init__.py": 2000}, ()),
                                       ("sympy", "1.14.0", {"sympy/__init__.py": 75_000_000}, ("mpmath",)),
                                       ("mpmath", "1.3.0", {"mpmath/__init__.py": 3_000_000}, ())):
        for path, spec in fx.dist(name, version, files, reqs).items():
            data = spec.encode() if isinstance(spec, str) else None
            layer.entries[path] = Entry(path, EntryKind.FILE, len(data) if data is not None else int(spec))  # type: ignore[arg-type]
            if data is not None:
                layer.heads[path] = data
    ctx = Context(ImageFacts(reference="test:cuda"), (base, layer), merge_layers([base, layer]).tree)
    return ctx, total


def test_pypi_torch_without_cu_suffix_is_cuda(cuda_image: tuple[Context, int]) -> None:
    ctx, total = cuda_image
    assert ctx.dists["torch"].version == "2.14.1"
    assert ctx.torch is not None and ctx.torch.cuda == "cuda"
    advice = build_advice(ctx)
    (f,) = [x for x in advice.findings if x.rule == "ml-cuda-torch"]
    gpu = set(f.data["gpu_distributions"])
    # nvidia-curand and friends come only through cuda-toolkit's extras: the graph follows them.
    assert {"nvidia-cublas", "nvidia-cudnn-cu13", "nvidia-nccl-cu13", "nvidia-curand", "triton", "cuda-toolkit"} <= gpu
    assert not gpu & {"sympy", "mpmath", "filelock"}
    # Every byte of torch and of the GPU wheels, each once (the shared nvidia/ namespace too).
    freed = f.data["installed_bytes"]
    assert abs(freed - total) <= 0.01 * total, (freed, total)
    assert freed > 4_000_000_000
    cpu, _exact = cpu_torch_size("2.14.1")
    assert f.bytes == freed - cpu.installed_bytes
    assert advice.categories["gpu"] > 3_000_000_000
    data = json.loads(__import__("advisor.report.advise", fromlist=["render"]).render(advice, "json"))
    assert data["torch"]["cuda"] == "cuda"
