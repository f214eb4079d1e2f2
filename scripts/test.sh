#!/usr/bin/env bash
# Set up (if needed) and run every check: ruff, mypy, pytest (the real registry is started by
# tests/conftest.py and stopped after; heavy fixtures are cached under $ADVISOR_CACHE).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/ruff check advisor tests benchmarks sample_models scripts
.venv/bin/mypy
.venv/bin/pytest -q "$@"
