#!/usr/bin/env bash
# The main job on a fresh machine: set up, then the seed case study end to end
# (fat image built or reused, advised, exported to a slim image, both benchmarked).
# Reports land in out/casestudy/ (override with --out DIR); --quick tells the same story in
# minutes on a smaller fat image (benchmarks/casestudy/README.md, "The quick case study").
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python scripts/casestudy.py "$@"
