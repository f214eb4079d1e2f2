"""The bench pipeline: ``run(BenchConfig, progress=...) -> BenchReport``, the original image
against the slim one, each run in its own environment.

The report is rendered by ``advisor.report.bench`` (report.json: docs/DESIGN.md, "`bench`
report.json"; report.md and a self-contained report.html). Nothing here imports torch or
onnxruntime: those run inside the images, in the probe scripts of ``advisor/bench/probes/``.
"""

from __future__ import annotations

from advisor.bench.cases import DEFAULT_CASES, BenchCase
from advisor.bench.model import BenchConfig, BenchReport, SideResult
from advisor.bench.run import run_bench
from advisor.bench.run import run_bench as run

__all__ = [
    "DEFAULT_CASES",
    "BenchCase",
    "BenchConfig",
    "BenchReport",
    "SideResult",
    "run",
    "run_bench",
]
