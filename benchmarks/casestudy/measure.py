"""Measure the case study: sizes per layer, fat vs fixed, and the bytes each fix frees.

    python benchmarks/casestudy/measure.py            # builds (or reuses) both images first
    python benchmarks/casestudy/measure.py --json results.json

Each fix is priced on the fat image's own layers (files of the layer the fix touches, read
from the layer tars), and the fixed image is measured whole, so the table shows both what
each fix is worth and what all of them together really give.
"""

from __future__ import annotations

import argparse
import json
import sys
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import build  # noqa: E402

from advisor.build import dockerfile as df  # noqa: E402
from advisor.oci.pump import open_decompressed  # noqa: E402

SITE = "usr/local/lib/python3.11/dist-packages/"
VENV_SITE = "opt/venv/lib/python3.11/site-packages/"
ARTICLE = {"total": 2_540_000_000, "pip_layer": 1_510_000_000, "base": 560_000_000}

Predicate = Callable[[str], bool]


def _cuda_wheel(path: str) -> bool:
    if not path.startswith(SITE):
        return False
    top = path[len(SITE) :].split("/", 1)[0].lower()
    return top in ("nvidia", "triton", "cuda") or top.startswith(
        ("nvidia_", "triton-", "cuda_", "cuda-")
    )


# What each fix removes, as paths of the fat image (its layer index is found by created_by).
FIXES: dict[str, tuple[str, Predicate]] = {
    "apt lists and archives cleaned in the same RUN": (
        "apt-get",
        lambda p: p.startswith(("var/lib/apt/lists/", "var/cache/apt/")),
    ),
    "pip --no-cache-dir": ("pip install", lambda p: p.startswith("root/.cache/pip/")),
    "CUDA wheels (nvidia-*, triton, cuda-*) not installed": (
        "pip install",
        lambda p: _cuda_wheel(p),
    ),
    "CUDA kernels inside torch (libtorch_cuda*, cudnn/cublas stubs)": (
        "pip install",
        lambda p: p.startswith(SITE + "torch/lib/") and "cuda" in p.rsplit("/", 1)[-1],
    ),
    ".dockerignore: .git": ("COPY dir:", lambda p: p.startswith("app/.git/")),
    ".dockerignore: notebooks": ("COPY dir:", lambda p: p.startswith("app/notebooks/")),
    ".dockerignore: data": ("COPY dir:", lambda p: p.startswith("app/data/")),
}


def layer_files(layout: Path, layer: df.LayerInfo) -> dict[str, int]:
    """Regular files of one layer tar and their sizes (streamed, nothing extracted)."""
    sizes: dict[str, int] = {}
    blob = layout / "blobs" / "sha256" / layer.digest.split(":")[1]
    with (
        blob.open("rb") as raw,
        open_decompressed(raw) as stream,
        tarfile.open(fileobj=stream, mode="r|") as tar,
    ):
        for member in tar:
            if member.isreg():
                sizes[member.name.lstrip("./")] = member.size
    return sizes


def _layer_for(result: df.BuildResult, needle: str) -> int:
    for i, layer in enumerate(result.layers):
        if needle in layer.created_by:
            return i
    raise SystemExit(f"no layer made by a line containing {needle!r}")


def price_fixes(fat: df.BuildResult) -> list[dict[str, object]]:
    cache: dict[int, dict[str, int]] = {}
    rows = []
    for name, (needle, predicate) in FIXES.items():
        index = _layer_for(fat, needle)
        if index not in cache:
            cache[index] = layer_files(fat.layout, fat.layers[index])
        files = cache[index]
        freed = sum(size for path, size in files.items() if predicate(path))
        rows.append({"fix": name, "layer": index, "bytes": freed})
    return rows


def layer_rows(result: df.BuildResult) -> list[dict[str, object]]:
    return [
        {
            "index": i,
            "created_by": layer.created_by or "(base)",
            "size_bytes": layer.tar_size,
            "compressed_size_bytes": layer.size,
        }
        for i, layer in enumerate(result.layers)
    ]


def _timed_build(fixed: bool) -> tuple[df.BuildResult, float]:
    started = time.monotonic()
    result = build.build(fixed, None, use_cache=True, quiet=True)
    return result, time.monotonic() - started


def measure() -> dict[str, object]:
    fat, _ = _timed_build(False)
    fixed, _ = _timed_build(True)
    _, fat_hit = _timed_build(False)
    base_full = df.load_result(Path(build.ensure_base(build.FULL)[4:].rsplit(":", 1)[0]))
    base_slim = df.load_result(Path(build.ensure_base(build.SLIM)[4:].rsplit(":", 1)[0]))
    return {
        "article": ARTICLE,
        "fat": {
            "reference": fat.reference,
            "digest": fat.digest,
            "size_bytes": fat.tar_size,
            "compressed_size_bytes": fat.compressed_size,
            "build_seconds": _recorded_seconds(fat),
            "cache_hit_seconds": round(fat_hit, 2),
            "layers": layer_rows(fat),
        },
        "fixed": {
            "reference": fixed.reference,
            "digest": fixed.digest,
            "size_bytes": fixed.tar_size,
            "compressed_size_bytes": fixed.compressed_size,
            "build_seconds": _recorded_seconds(fixed),
            "layers": layer_rows(fixed),
        },
        "bases": {"full": base_full.tar_size, "slim": base_slim.tar_size},
        "fixes": price_fixes(fat),
    }


def _recorded_seconds(result: df.BuildResult) -> float:
    return round(result.build_seconds, 1)


def markdown(data: dict[str, object]) -> str:
    fat: dict[str, object] = data["fat"]  # type: ignore[assignment]
    fixed: dict[str, object] = data["fixed"]  # type: ignore[assignment]
    lines = ["| image | layer | created_by | size | compressed |", "|---|---|---|---:|---:|"]
    for name, info in (("fat", fat), ("fixed", fixed)):
        for row in info["layers"]:  # type: ignore[attr-defined]
            shown = str(row["created_by"])[:90].replace("|", "\\|")
            lines.append(
                f"| {name} | {row['index']} | `{shown}` | {mb(row['size_bytes'])} | {mb(row['compressed_size_bytes'])} |"
            )
        lines.append(
            f"| {name} | total | | **{mb(info['size_bytes'])}** | {mb(info['compressed_size_bytes'])} |"
        )
    lines += ["", "| fix | bytes freed (measured in the fat image) |", "|---|---:|"]
    for row in data["fixes"]:  # type: ignore[attr-defined]
        lines.append(f"| {row['fix']} | {mb(row['bytes'])} |")
    return "\n".join(lines)


def mb(n: object) -> str:
    return f"{int(n) / 1e6:,.0f} MB"  # type: ignore[call-overload]


def main() -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    a = p.parse_args()
    data = measure()
    print(markdown(data))
    if a.json:
        a.json.write_text(json.dumps(data, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
