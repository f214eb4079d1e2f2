"""Where the bytes go, by category: gpu, ml, dev-tools, caches, models, python, os, app."""

from __future__ import annotations

from collections.abc import Sequence

from advisor.advise.facts.capture import is_shared_object
from advisor.advise.facts.context import Context
from advisor.advise.facts.mlstack import is_gpu_dist
from advisor.advise.rules.base import Finding
from advisor.units import WEIGHT_SUFFIXES

CATEGORIES = ("gpu", "ml", "dev-tools", "caches", "models", "python", "os", "app")
ML_DISTS = frozenset({"torch", "transformers", "tensorflow", "jax", "jaxlib", "onnxruntime", "onnx",
                      "tokenizers", "safetensors", "sentence-transformers", "accelerate", "triton"})
_GPU_LIB_MARKERS = ("cuda", "cudnn", "cublas", "nccl", "cufft", "cusparse", "curand", "nvrtc", "cupti")
_OS_ROOTS = ("usr", "lib", "lib64", "bin", "sbin", "etc", "var", "opt/conda/pkgs")


def _category_of_dist(key: str) -> str:
    if is_gpu_dist(key):
        return "gpu"
    return "ml" if key in ML_DISTS else "python"


def categorize(ctx: Context, findings: Sequence[Finding]) -> dict[str, int]:
    """Bytes of the merged filesystem per category (each file in exactly one)."""
    cat: dict[str, str] = {}
    for f in findings:
        if f.category in ("caches", "dev-tools", "models"):
            for p in f.frees:
                cat.setdefault(p, f.category)
    for d in ctx.scan.distributions:
        c = _category_of_dist(d.key)
        for p in d.files:
            name = p.rsplit("/", 1)[-1]
            if c == "ml" and d.key == "torch" and is_shared_object(name) and any(m in name for m in _GPU_LIB_MARKERS):
                cat.setdefault(p, "gpu")
            else:
                cat.setdefault(p, c)
    site_dirs = [e.path + "/" for e in ctx.environments]
    totals = dict.fromkeys(CATEGORIES, 0)
    for info in ctx.tree:
        if info.size == 0:
            continue
        c = cat.get(info.path) or _fallback(info.path, site_dirs)
        totals[c] += info.size
    return totals


def _fallback(path: str, site_dirs: list[str]) -> str:
    if path.endswith(WEIGHT_SUFFIXES) or "/.cache/huggingface/" in "/" + path:
        return "models"
    if any(path.startswith(s) for s in site_dirs) or "/lib/python" in path:
        return "python"
    if (path.split("/", 1)[0] in _OS_ROOTS and not path.startswith("opt/")) or path.startswith("var/"):
        return "os"
    return "app"
