"""Build (or find in the cache) the offline Debian bases and print their references and sizes.

    python benchmarks/base/build_debian_base.py [--variant full|slim|both]

``full``: mmdebstrap --variant=minbase --include=python3 bookworm (a python:3.11-slim
stand-in); ``slim``: the same without apt, dpkg, a shell, docs, locales and every package
Python 3 and the wheels' native code do not load. Cached under
${ADVISOR_CACHE:-~/.cache/advisor}/bases/<key>/ (see advisor/slim/debian_base.py).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from advisor.slim.debian_base import ensure_debian_base


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", choices=["full", "slim", "both"], default="both")
    args = parser.parse_args()
    variants = ["full", "slim"] if args.variant == "both" else [args.variant]
    for variant in variants:
        started = time.monotonic()
        base = ensure_debian_base(variant)
        print(json.dumps({
            "variant": variant, "reference": base.reference, "size_bytes": base.size_bytes,
            "files": base.files, "seconds": round(time.monotonic() - started, 1),
        }))  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
