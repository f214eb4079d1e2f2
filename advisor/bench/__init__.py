"""``advisor bench``: the original image against the slim one, each run in its own environment.

``run_bench(BenchConfig(original=..., slim=...), progress=...)`` returns a ``BenchReport``;
``write_reports(report, directory)`` writes report.json (the DESIGN.md contract), report.md
and a self-contained report.html. Nothing here imports torch or onnxruntime: those run
inside the images, in the probe scripts of ``advisor/bench/probes/``.
"""

from __future__ import annotations

from advisor.bench.cases import DEFAULT_CASES, BenchCase
from advisor.bench.model import BenchConfig, BenchReport, SideResult
from advisor.bench.run import run_bench
from advisor.report.bench.render import report_json, write_reports

__all__ = [
    "DEFAULT_CASES",
    "BenchCase",
    "BenchConfig",
    "BenchReport",
    "SideResult",
    "report_json",
    "run_bench",
    "write_reports",
]
