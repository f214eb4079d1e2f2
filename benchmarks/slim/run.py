"""The slim image with and without pruning: sizes, what pruning removed, identical answers.

    .venv/bin/python benchmarks/slim/run.py [--model DIR] [--limit 1000] [--out benchmarks/slim]

Exports the sample sentiment model (the case study's MiniLM; ``--model`` for another) to
int8 artifacts once, builds the serving image twice onto the cached offline Debian slim base
(``benchmarks/base/``): pruned (the default: only what the traced server loads) and
``prune=False``; reads each image's unpacked and compressed size as ``advisor advise``
does; runs both images (unpacked, own PID namespace) and sends every held-out sentence to
each, one per request; the answers must be equal, byte for byte. Writes ``results.json``
and ``report.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from advisor.bench.data import default_data_path, load_csv  # noqa: E402
from advisor.bench.sizes import measure_sizes  # noqa: E402
from advisor.sandbox.runner import run_image  # noqa: E402
from advisor.slim.debian_base import cache_root, ensure_debian_base  # noqa: E402
from advisor.slim.image import BuildConfig, build_serving_image  # noqa: E402


def sample_model() -> Path:
    found = sorted((cache_root() / "models").glob("sentiment-minilm-*"))
    if not found:
        raise SystemExit("no sample model: run python sample_models/build_sentiment.py --quick")
    return found[-1]


def export(model: Path, dest: Path) -> Path:
    from advisor.export.config import ExportConfig
    from advisor.export.pipeline import export_model

    return export_model(ExportConfig(model_dir=model, artifacts_dir=dest, quantize="int8",
                                     max_length=128)).artifacts_dir


def build(artifacts: Path, base: str, dest: Path, prune: bool) -> dict[str, Any]:
    ref = f"oci:{dest}:v1"
    began = time.monotonic()
    res = build_serving_image(BuildConfig(artifacts=artifacts, destination=ref, base=base, prune=prune))
    sizes = measure_sizes(ref)  # what bench reports: the merged filesystem, the blobs
    size, compressed = sizes.size_bytes, sizes.compressed_size_bytes
    return {"reference": ref, "build_seconds": round(time.monotonic() - began, 1),
            "size_bytes": size, "compressed_size_bytes": compressed,
            "manifest_digest": res.manifest_digest, "pruned": res.pruned,
            "pruned_bytes": res.pruned_bytes, "packages_size_bytes": res.packages_size_bytes,
            "layers": {x.name: {"size_bytes": x.size_bytes, "compressed_size_bytes": x.compressed_size_bytes}
                       for x in res.layers}}


def answers(ref: str, texts: tuple[str, ...]) -> list[bytes]:
    out = []
    with run_image(ref, timeout=120) as run:
        conn = run.connection(timeout=60)
        for text in texts:
            conn.request("POST", "/predict", body=json.dumps({"text": text}))
            out.append(conn.getresponse().read())
        conn.close()
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", type=Path, default=None)
    ap.add_argument("--limit", type=int, default=1000)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    args = ap.parse_args()
    model = args.model or sample_model()
    data = load_csv(default_data_path(), args.limit)
    base = ensure_debian_base("slim").reference
    with tempfile.TemporaryDirectory(prefix="advisor-slim-bench-") as tmp:
        work = Path(tmp)
        artifacts = export(model, work / "artifacts")
        images = {"pruned": build(artifacts, base, work / "pruned", True),
                  "unpruned": build(artifacts, base, work / "unpruned", False)}
        got = {k: answers(v["reference"], data.texts) for k, v in images.items()}
    same = sum(a == b for a, b in zip(got["pruned"], got["unpruned"], strict=True))
    b = measure_sizes(base)
    base_size = {"size_bytes": b.size_bytes, "compressed_size_bytes": b.compressed_size_bytes}
    results = {"date": time.strftime("%Y-%m-%d"), "model": str(model), "base": base,
               "base_size": base_size, "images": images, "texts": len(data.texts),
               "identical_answers": same}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (args.out / "report.md").write_text(render(results))
    print(json.dumps({k: {"size_mb": round(v["size_bytes"] / 1e6, 1),
                          "compressed_mb": round(v["compressed_size_bytes"] / 1e6, 1)}
                      for k, v in images.items()} | {"identical": f"{same}/{len(data.texts)}"}))
    return 0 if same == len(data.texts) else 1


def render(r: dict[str, Any]) -> str:
    mb = 1e6
    p, u = r["images"]["pruned"], r["images"]["unpruned"]
    rows = [f"| {name} | {v['size_bytes'] / mb:.1f} MB | {v['compressed_size_bytes'] / mb:.1f} MB | "
            f"{v['layers']['deps']['size_bytes'] / mb:.1f} MB | {v['layers']['deps']['compressed_size_bytes'] / mb:.1f} MB |"
            for name, v in (("pruned (default)", p), ("--no-prune", u))]
    return "\n".join([
        "# The slim serving image: only what the server loads", "",
        f"{r['date']}, `benchmarks/slim/run.py`; model `{r['model']}` exported int8; base "
        f"`{r['base']}` ({r['base_size']['size_bytes'] / mb:.1f} MB, "
        f"{r['base_size']['compressed_size_bytes'] / mb:.1f} MB compressed).", "",
        "| image | unpacked | compressed | deps layer | deps compressed |", "|---|---:|---:|---:|---:|",
        *rows, "",
        f"Pruned {p['pruned_bytes'] / mb:.1f} MB of the {p['packages_size_bytes'] / mb:.1f} MB of installed "
        f"serving packages. Answers to {r['texts']} held-out sentences, one request each: "
        f"{r['identical_answers']}/{r['texts']} byte-identical between the two images.", "",
        f"Ratios: unpacked {p['size_bytes'] / u['size_bytes']:.3f}x, compressed "
        f"{p['compressed_size_bytes'] / u['compressed_size_bytes']:.3f}x.", "",
    ])


if __name__ == "__main__":
    sys.exit(main())
