"""What the sandbox itself costs: runc's start and teardown around a trivial process.

The same one-line Python (print the time) runs in the sandbox and, as the baseline, with the
host's own interpreter (never the image's code outside the sandbox). Start = spawn to the
first line of Python; teardown = that line to runc's exit (namespaces, cgroup, state).
"""

from __future__ import annotations

import statistics
import subprocess
import sys
import time
from typing import Any

from advisor.sandbox.bundle import Bundle
from advisor.sandbox.container import runc
from advisor.sandbox.runtime import run

_SCRIPT = "import time; print(repr(time.time()))"


def _once(argv: list[str], sandboxed: Bundle | None) -> tuple[float, float]:
    t0 = time.time()
    if sandboxed is not None:
        out = run(sandboxed, argv, timeout_s=60).stdout
    else:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=True).stdout
    end = time.time()
    first = float(out.strip().splitlines()[-1])
    return first - t0, end - first


def _p50_ms(values: list[float]) -> float:
    return round(1000 * statistics.median(values), 1)


def runc_version() -> str:
    out = subprocess.run([runc(), "--version"], capture_output=True, text=True, check=False)
    return out.stdout.splitlines()[0].removeprefix("runc version ").strip() if out.stdout else ""


def start_overhead(bundle: Bundle, python: str, runs: int = 5) -> dict[str, Any]:
    """Median start/teardown in the sandbox vs the host's Python, interleaved, in ms."""
    boxed: list[tuple[float, float]] = []
    bare: list[tuple[float, float]] = []
    for _ in range(runs):
        boxed.append(_once([python, "-S", "-c", _SCRIPT], bundle))
        bare.append(_once([sys.executable, "-S", "-I", "-c", _SCRIPT], None))
    start = _p50_ms([b[0] for b in boxed])
    host = _p50_ms([b[0] for b in bare])
    return {
        "runs": runs,
        "start_ms_p50": start,
        "host_start_ms_p50": host,
        "start_overhead_ms_p50": round(start - host, 1),
        "teardown_ms_p50": _p50_ms([b[1] for b in boxed]),
    }
