"""A layer of a million tiny files, generated as a stream, through the walk and the merge.

    .venv/bin/python benchmarks/fuzz/million_files.py [--files 1000000] [--gzip]

Prints (and appends to ``million_files.json`` next to this script) the wall time, CPU time and
peak RSS of ``walk_layer`` plus ``merge_layers`` over it: the tests run 200k, this is the full
size. The layer is generated into a temporary file first and walked from there, as advisor
walks a layout's blob: generating a million tar headers in Python takes longer than walking
them, and on the reading thread it used to be timed as part of the walk (runs before
2026-12-02 01:30 UTC measured that way).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from advisor.advise.facts.capture import capture_for  # noqa: E402
from advisor.oci.filetree import merge_layers  # noqa: E402
from advisor.oci.walk import walk_layer  # noqa: E402
from tests.security.craft import many_files_tar  # noqa: E402


def gzipped(chunks: Iterable[bytes]) -> Iterator[bytes]:
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    for chunk in chunks:
        yield c.compress(chunk)
    yield c.flush()


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--files", type=int, default=1_000_000)
    ap.add_argument("--gzip", action="store_true")
    args = ap.parse_args()
    chunks: Iterable[bytes] = many_files_tar(args.files)
    if args.gzip:
        chunks = gzipped(chunks)
    with tempfile.TemporaryFile(prefix="million-files-") as layer:
        began = time.monotonic()
        for chunk in chunks:
            layer.write(chunk)
        generated = time.monotonic() - began
        layer.seek(0)
        began, cpu = time.monotonic(), time.process_time()
        tree = walk_layer(layer, 0, capture=capture_for)
        walked = time.monotonic() - began
        merged = merge_layers([tree]).tree
        total, cpu = time.monotonic() - began, time.process_time() - cpu
    result = {
        "files": args.files, "gzip": args.gzip, "entries": len(tree.entries),
        "merged_paths": len(list(merged.iter_under(""))),
        "generate_seconds": round(generated, 1),
        "walk_seconds": round(walked, 1), "walk_and_merge_seconds": round(total, 1),
        "walk_and_merge_cpu_seconds": round(cpu, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "load_average": round(os.getloadavg()[0], 1),
        "tar_bytes": args.files * 512 + 1024,
    }
    print(json.dumps(result))
    out = Path(__file__).with_name("million_files.json")
    runs = json.loads(out.read_text()) if out.exists() else []
    out.write_text(json.dumps([*runs, result], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
