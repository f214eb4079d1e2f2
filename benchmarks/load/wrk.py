"""Closed-loop load with wrk (Debian's ``wrk`` package) and ``wrk_predict.lua``.

wrk drives every connection from one epoll thread in C: ~0.1 ms of CPU per request here,
where the Python client of tests/security/loadgen.py spends ~0.3 ms and a thread per
connection that contends for the GIL. On a 2-core machine the load generator's CPU is taken
from the server it measures, so the lighter one measures the server, not the client.
"""

from __future__ import annotations

import json
import resource
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("wrk_predict.lua")


def write_bodies(texts: Sequence[str], path: Path) -> Path:
    """One ``/predict`` body per line, ``{"text": ...}``, in the order given."""
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def _children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_wrk(port: int, clients: int, seconds: float, bodies: Path,
            netns: str | None = None) -> dict[str, Any]:
    """``clients`` keep-alive connections posting ``bodies`` in turn for ``seconds``: the
    summary in tests/security/loadgen.py's shape, plus the CPU wrk itself used. ``netns``
    (``/proc/PID/ns/net`` of a sandbox, an ``Address``'s): wrk runs inside that network
    namespace (``nsenter --net``), where the sandboxed server's loopback port is."""
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed\nhint: apt-get install wrk")
    enter = ["nsenter", f"--net={netns}"] if netns else []
    cpu0, began = _children_cpu(), time.monotonic()
    proc = subprocess.run(
        [*enter, "wrk", "-t1", f"-c{clients}", f"-d{max(1, round(seconds))}s", "--timeout", "30s",
         "-s", str(SCRIPT), f"http://127.0.0.1:{port}", "--", str(bodies)],
        capture_output=True, text=True, timeout=seconds + 60)
    wall, cpu = time.monotonic() - began, _children_cpu() - cpu0
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise SystemExit(f"wrk failed ({proc.returncode}): {(proc.stderr or proc.stdout)[-500:]}")
    d = json.loads(lines[-1])
    n, secs = d["requests"], d["duration_us"] / 1e6
    lat = d["latency_us"]
    return {
        "requests": n, "seconds": round(secs, 2),
        "throughput_per_s": round(n / secs, 1) if secs else 0.0,
        "statuses": d["statuses"], "connection_errors": sum(d["errors"].values()),
        "latency_ms": {k: round(lat[k] / 1000, 2) for k in ("p50", "p95", "p99")},
        "max_ms": round(lat["max"] / 1000, 2),
        "client_cpu_ms_per_request": round(cpu * 1000 / n, 3) if n else None,
        "client_cpu_share": round(cpu / wall, 3),
    }
