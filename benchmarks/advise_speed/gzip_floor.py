"""Where the floor of a gzip layer's walk lies on this machine, and how close advisor's walk is.

    .venv/bin/python benchmarks/advise_speed/gzip_floor.py oci:DIR:TAG [--out FILE.json]

For the largest gzip blob of the image, each in its own process, CPU seconds and wall:

* ``gzip -dc`` (zlib, one thread): issue 17's floor;
* ISA-L alone (``isal.igzip``, one thread): what inflating one gzip stream costs at best with
  the decoder advisor uses (a gzip member cannot be split without its window);
* rapidgzip, when installed, with one thread per core: the parallel decoder that guesses
  block boundaries and windows (its first pass decodes twice, so it pays from more cores);
* advisor's walk of the layer (``walk_layer`` with the diff_id check, as with the layer
  cache on), with the CPU of each of its threads: the inflate thread is the critical path.

The ratios to ``gzip -dc`` are CPU ratios (wall times on a shared machine measure the load).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

_ISAL = """
import sys
from isal import igzip
with igzip.open(sys.argv[1], "rb") as f:
    while f.read(4 << 20):
        pass
"""

_RAPID = """
import os, sys, rapidgzip
with rapidgzip.open(sys.argv[1], parallelization=os.cpu_count() or 1) as f:
    while f.read(4 << 20):
        pass
"""

_WALK = """
import json, sys, threading, time
from advisor.oci import pump
from advisor.oci.loader import open_image
from advisor.oci.layers import _walk_one
from advisor.advise.facts.capture import capture_for
threads = {}
run = pump.Pump._run
def timed(self):
    run(self)
    threads[threading.current_thread().name.rsplit("-", 1)[1]] = time.thread_time()
pump.Pump._run = timed
with open_image(sys.argv[1]) as image:
    layer = max(image.layers, key=lambda layer: layer.blob.size)
    main = time.thread_time()
    _walk_one(image, layer, capture_for, lambda n: None, verify_diff_id=True)
    threads["parse+diff_id"] = time.thread_time() - main
print(json.dumps(threads))
"""


def measure(argv: list[str]) -> dict[str, float | str]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.monotonic()
    proc = subprocess.run(argv, capture_output=True, text=True, check=True, cwd=ROOT)
    wall = time.monotonic() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {"wall_s": round(wall, 2), "cpu_s": round(cpu, 2), "stdout": proc.stdout.strip()}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("image", help="oci:DIR[:TAG] with gzip layers")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    from advisor.oci.loader import open_image

    with open_image(args.image) as image:
        layer = max(image.layers, key=lambda layer: layer.blob.size)
        blob = Path(image.source.files.root) / image.source.blob_name(layer.blob.digest)  # type: ignore[attr-defined]
    py = sys.executable
    runs: dict[str, dict[str, float | str]] = {
        "gzip_dc": measure(["sh", "-c", f"gzip -dc '{blob}' > /dev/null"]),
        "isal_one_thread": measure([py, "-c", _ISAL, str(blob)]),
    }
    try:
        import rapidgzip  # noqa: F401

        runs[f"rapidgzip_{os.cpu_count()}_threads"] = measure([py, "-c", _RAPID, str(blob)])
    except ImportError:
        pass
    runs["advisor_walk"] = measure([py, "-c", _WALK, args.image])
    floor = float(runs["gzip_dc"]["cpu_s"])
    threads = json.loads(str(runs["advisor_walk"]["stdout"]))
    result = {
        "blob_bytes": layer.blob.size, "cores": os.cpu_count(), "load_average": os.getloadavg()[0],
        "runs": runs, "advisor_threads_cpu_s": threads,
        "cpu_ratio_to_gzip_dc": {k: round(float(v["cpu_s"]) / floor, 3) for k, v in runs.items()},
        "advisor_critical_path_ratio": round(max(threads.values()) / floor, 3),
    }
    print(json.dumps(result, indent=2))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
