"""Measure the slim serving image: layer sizes, cold start per bytecode mode, threads.

    python benchmarks/build/measure.py --artifacts DIR [--reps 7] [--out results.json]

Everything runs on this machine: images are built from the offline Debian bases, unpacked
with umoci and started with runc (advisor.sandbox.runner); clients talk over its loopback,
bounded in count. Cold start = spawn of the entrypoint -> first /predict answered, with the
unpacked files in the page cache (a warm-disk cold start, as on a node that pulled the image).
Cases are interleaved (A B C A B C ...) so background load hits them alike.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from advisor.sandbox.runner import Bundle, Running, start, unpack_image, wait_ready
from advisor.slim.debian_base import ensure_debian_base
from advisor.slim.image import BuildConfig, BuildResult, Bytecode, build_serving_image

SENTENCE = "an engrossing, well acted drama that never quite finds its footing in the second half"


def build(artifacts: Path, base: str, bytecode: Bytecode, out: Path) -> BuildResult:
    variant = Path(base.split(":")[1]).name.split("-")[0]
    dest = f"oci:{out / ('img-' + variant + '-' + bytecode)}:v1"
    return build_serving_image(
        BuildConfig(artifacts=artifacts, base=base, destination=dest, bytecode=bytecode)
    )


def post(run: Running, body: bytes, conn: http.client.HTTPConnection | None = None) -> float:
    c = conn or run.connection(timeout=60)
    t0 = time.perf_counter()
    c.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
    resp = c.getresponse()
    resp.read()
    if resp.status != 200:
        raise RuntimeError(f"predict answered {resp.status}")
    if conn is None:
        c.close()
    return time.perf_counter() - t0


def cold_start(bundle: Bundle) -> float:
    run = start(bundle)
    run.keep = True
    try:
        wait_ready(run, timeout=120)
        post(run, json.dumps({"text": SENTENCE}).encode())
        return time.monotonic() - run.started_at
    finally:
        run.stop()


def load(
    bundle: Bundle, workers: int, intra: int, clients: int, requests: int, batch: int
) -> dict[str, Any]:
    run = start(bundle, env={"WORKERS": str(workers), "ORT_INTRA_OP_THREADS": str(intra)})
    run.keep = True
    body = json.dumps({"texts": [SENTENCE] * batch}).encode()
    latencies: list[float] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        conn = run.connection(timeout=120)
        for _ in range(n):
            dt = post(run, body, conn)
            with lock:
                latencies.append(dt)
        conn.close()

    try:
        wait_ready(run, timeout=120)
        for _ in range(3):
            post(run, body)
        per = max(1, requests // clients)
        threads = [threading.Thread(target=client, args=(per,)) for _ in range(clients)]
        t0 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t0
    finally:
        run.stop()
    latencies.sort()
    q = statistics.quantiles(latencies, n=100)
    return {
        "workers": workers, "intra_op_threads": intra, "clients": clients, "batch": batch,
        "requests": len(latencies), "texts_per_s": round(len(latencies) * batch / wall, 1),
        "p50_ms": round(q[49] * 1000, 1), "p95_ms": round(q[94] * 1000, 1),
    }  # fmt: skip


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--artifacts", type=Path, required=True)
    p.add_argument("--reps", type=int, default=7)
    p.add_argument("--requests", type=int, default=96)
    p.add_argument("--work", type=Path, default=Path("/tmp/advisor-bench-build"))
    p.add_argument("--out", type=Path, default=Path(__file__).with_name("results.json"))
    p.add_argument("--skip-load", action="store_true")
    args = p.parse_args()
    shutil.rmtree(args.work, ignore_errors=True)
    args.work.mkdir(parents=True)
    bases = {v: ensure_debian_base(v) for v in ("full", "slim")}
    results: dict[str, Any] = {
        "bases": {
            v: {"reference": b.reference, "size_bytes": b.size_bytes, "files": b.files}
            for v, b in bases.items()
        }
    }
    builds: dict[str, BuildResult] = {}
    for variant, base in bases.items():
        modes: tuple[Bytecode, ...] = ("imported", "all", "none")
        for mode in modes:
            if variant == "slim" and mode != "imported":
                continue
            t0 = time.monotonic()
            r = build(args.artifacts, base.reference, mode, args.work)
            builds[f"{variant}/{mode}"] = r
            results.setdefault("builds", {})[f"{variant}/{mode}"] = {
                "seconds": round(time.monotonic() - t0, 1), "digest": r.manifest_digest,
                "layers": {layer.name: {"size_bytes": layer.size_bytes, "compressed_size_bytes": layer.compressed_size_bytes} for layer in r.layers},
                "added_size_bytes": r.added_size_bytes, "packages_size_bytes": r.packages_size_bytes,
                "model_size_bytes": r.model_size_bytes,
                "ratio": round(r.added_size_bytes / (r.packages_size_bytes + r.model_size_bytes), 4),
                "image_size_bytes": bases[variant].size_bytes + r.added_size_bytes,
            }  # fmt: skip
            print(variant, mode, results["builds"][f"{variant}/{mode}"], flush=True)
    bundles = {k: unpack_image(r.destination) for k, r in builds.items()}
    try:
        cold: dict[str, list[float]] = {k: [] for k in bundles}
        for _ in range(args.reps):
            for k, bundle in bundles.items():
                cold[k].append(round(cold_start(bundle), 3))
        results["cold_start_s"] = {
            k: {"median": statistics.median(v), "min": min(v), "runs": v} for k, v in cold.items()
        }
        print(json.dumps(results["cold_start_s"]), flush=True)
        if not args.skip_load:
            fb = bundles["full/imported"]
            cases = [(1, 0, 1), (1, 0, 4), (2, 1, 4), (4, 1, 4), (1, 1, 4), (2, 0, 4)]
            results["load"] = [load(fb, w, i, c, args.requests, 1) for w, i, c in cases]
            results["load"] += [
                load(fb, w, i, 4, args.requests // 4, 8) for w, i in [(1, 0), (2, 1)]
            ]
            for row in results["load"]:
                print(row, flush=True)
    finally:
        for bundle in bundles.values():
            shutil.rmtree(bundle.root, ignore_errors=True)
    args.out.write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
