"""A layer of a million tiny files, generated as a stream, through the walk and the merge.

    .venv/bin/python benchmarks/fuzz/million_files.py [--files 1000000] [--gzip]

Prints (and appends to ``million_files.json`` next to this script) the wall time and peak RSS
of ``walk_layer`` plus ``merge_layers`` over it: the tests run 200k, this is the full size.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import time
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from advisor.advise.facts.capture import capture_for  # noqa: E402
from advisor.oci.filetree import merge_layers  # noqa: E402
from advisor.oci.walk import walk_layer  # noqa: E402
from tests.security.craft import IterStream, many_files_tar  # noqa: E402


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
    began = time.monotonic()
    tree = walk_layer(IterStream(chunks), 0, capture=capture_for)  # type: ignore[arg-type]
    walked = time.monotonic() - began
    merged = merge_layers([tree]).tree
    total = time.monotonic() - began
    result = {
        "files": args.files, "gzip": args.gzip, "entries": len(tree.entries),
        "merged_paths": len(list(merged.iter_under(""))),
        "walk_seconds": round(walked, 1), "walk_and_merge_seconds": round(total, 1),
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
        "tar_bytes": args.files * 512 + 1024,
    }
    print(json.dumps(result))
    out = Path(__file__).with_name("million_files.json")
    runs = json.loads(out.read_text()) if out.exists() else []
    out.write_text(json.dumps([*runs, result], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
