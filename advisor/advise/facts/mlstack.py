"""The ML stack: which torch build the image ships, its GPU baggage, and what CPU-only weighs.

CPU wheel sizes are a small table of **measured** data points (not guesses); versions not in
it fall back to the nearest measured one, flagged as an estimate.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

from advisor.advise.facts.depgraph import DepGraph
from advisor.advise.facts.distributions import Distribution
from advisor.oci.filetree import FileTree


@dataclass(frozen=True, slots=True)
class WheelSize:
    version: str
    architecture: str
    wheel_bytes: int
    installed_bytes: int
    source: str


# Measured on this project's build machine (2026-11):
# - the wheel file /opt/wheels/torch-2.13.0+cpu-cp311-cp311-manylinux_2_28_x86_64.whl;
# - installed: the sum of the file sizes of every RECORD entry after `pip install` of that
#   wheel into a Python 3.11 venv (bytecode included), i.e. `du -b --apparent-size`.
CPU_TORCH_SIZES: tuple[WheelSize, ...] = (
    WheelSize("2.13.0", "amd64", 191_794_682, 756_592_469, "measured: torch 2.13.0+cpu cp311 manylinux_2_28_x86_64"),
)

# The ONNX serving stack, measured here from RECORD sizes (no bytecode): onnxruntime 1.32.0
# (75,639,189) with flatbuffers, protobuf and packaging (2,000,719), numpy 2.4.6 (57,263,145),
# tokenizers 0.23.3 installed --no-deps (11,696,536). ENVIRONMENT.md rounds it to ~145 MB.
ONNX_SERVING_STACK = ("onnxruntime", "flatbuffers", "protobuf", "packaging", "numpy", "tokenizers")
ONNX_SERVING_STACK_BYTES = 146_599_589
# python:3.11-slim-bookworm unpacked (Debian 12 slim + CPython 3.11), rounded measured figure.
SLIM_BASE_BYTES = 125_000_000

GPU_DIST_PATTERNS = (r"nvidia-.*", r"triton", r"pytorch-triton.*", r"cuda-.*", r"cupy-cuda.*", r"nccl.*")
WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.onnx", "tf_model.h5")
TRAINING_DISTS = frozenset({"accelerate", "deepspeed", "peft", "trl", "lightning", "pytorch-lightning", "datasets"})


@dataclass(frozen=True, slots=True)
class TorchBuild:
    distribution: Distribution
    cuda: str  # e.g. "cu130", "cuda" when only the libraries tell, "" for a CPU build
    evidence: tuple[str, ...]


def _base_version(version: str) -> str:
    return version.split("+", 1)[0]


def cpu_torch_size(version: str, architecture: str = "amd64") -> tuple[WheelSize, bool]:
    """The CPU build's measured size for ``version``, or the nearest one (exact=False)."""
    base = _base_version(version)
    same_arch = [w for w in CPU_TORCH_SIZES if w.architecture == architecture] or list(CPU_TORCH_SIZES)
    for w in same_arch:
        if w.version == base:
            return w, True

    def distance(w: WheelSize) -> tuple[int, ...]:
        a = [int(x) for x in re.findall(r"\d+", w.version)[:3]]
        b = [int(x) for x in re.findall(r"\d+", base)[:3]] or [0]
        return tuple(abs(x - y) for x, y in zip(a, b, strict=False))

    return min(same_arch, key=distance), False


def is_gpu_dist(key: str) -> bool:
    return any(re.fullmatch(p, key) for p in GPU_DIST_PATTERNS)


def detect_torch(tree: FileTree, dists: Mapping[str, Distribution]) -> TorchBuild | None:
    torch = dists.get("torch")
    if torch is None:
        return None
    evidence: list[str] = []
    m = re.search(r"\+(cu\d+|rocm[\d.]+)", torch.version)
    cuda = m.group(1) if m else ""
    if cuda:
        evidence.append(f"{torch.metadata_path} (version {torch.version})")
    libs = [p for p in torch.files if re.search(r"/lib/libtorch_cuda[^/]*\.so|/lib/libc10_cuda\.so", p)]
    evidence.extend(libs[:3])
    if libs and not cuda:
        cuda = "cuda"
    gpu = sorted(k for k in dists if is_gpu_dist(k))
    if gpu and not cuda and ".cpu" not in torch.version and "+cpu" not in torch.version:
        cuda = "cuda"
    evidence.extend(dists[k].metadata_path for k in gpu[:5])
    return TorchBuild(torch, cuda, tuple(evidence)) if cuda else TorchBuild(torch, "", ())


def gpu_removable(graph: DepGraph) -> set[str]:
    """GPU-only distributions freed when torch is swapped for a CPU build (torch stays)."""
    gpu = {k for k in graph.sizes if is_gpu_dist(k)}
    cpu_torch = DepGraph(
        graph.sizes,
        tuple(e for e in graph.edges if not (e.source == "torch" and e.target in gpu)),
    )
    return cpu_torch.removable_with_deps(gpu)


@dataclass(frozen=True, slots=True)
class ModelConfig:
    path: str  # the config.json
    model_type: str
    architectures: tuple[str, ...]
    custom_code: bool = False  # config.json names code shipped with the model (auto_map)

    @property
    def folder(self) -> str:
        return self.path.rsplit("/", 1)[0] if "/" in self.path else ""

    def config(self) -> dict[str, object]:
        """The config.json keys that decide whether the model exports (``export.specs.judge``)."""
        return {"model_type": self.model_type, "architectures": list(self.architectures),
                "auto_map": self.custom_code}


def find_model_configs(tree: FileTree) -> list[ModelConfig]:
    """Hugging Face model folders: a config.json with a ``model_type``, outside site-packages."""
    import json

    out = []
    for info in tree.glob_names(["config.json"]):
        folder = info.path.rsplit("/", 1)[0] if "/" in info.path else ""
        if "-packages/" in info.path and not any(f"{folder}/{w}" in tree for w in WEIGHT_FILES):
            continue  # a library's bundled config, not a model
        raw = tree.read(info.path) or tree.read(tree.resolve(info.path))
        if raw is None:
            continue
        try:
            data = json.loads(raw)
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("model_type"), str):
            archs = data.get("architectures") or []
            out.append(ModelConfig(info.path, data["model_type"], tuple(str(a) for a in archs),
                                   bool(data.get("auto_map"))))
    return sorted(out, key=lambda m: m.path)
