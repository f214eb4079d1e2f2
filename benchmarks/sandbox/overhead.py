"""What runc costs the benchmark: the slim serving image run under advisor's sandbox vs the
old unsandboxed host run (``unshare`` as root, the host's loopback), interleaved.

    .venv/bin/python benchmarks/sandbox/overhead.py [--reps 5] [--requests 300] [--out DIR]

Builds the serving image of the tiny test model onto the cached offline Debian slim base,
unpacks it twice (for runc with the user namespace's owners, for unshare with the image's
own), then per rep: starts the server each way and times spawn -> first ``/health`` 200
(cold start) and ``--requests`` sequential ``POST /predict`` of one sentence on one
keep-alive connection (latency p50/p95). Writes ``results.json`` and ``report.md``.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from advisor.bench.locate import split_env  # noqa: E402
from advisor.sandbox.bundle import Bundle, make_host_run_devices, unpack  # noqa: E402
from advisor.sandbox.environment import Sandbox  # noqa: E402
from advisor.sandbox.overhead import runc_version  # noqa: E402
from advisor.sandbox.runner import free_port, start, wait_ready  # noqa: E402
from advisor.slim.debian_base import ensure_debian_base  # noqa: E402
from advisor.slim.image import BuildConfig, build_serving_image  # noqa: E402

BODY = json.dumps({"text": "a gripping, beautifully shot film"}).encode()


def _ready(connect: Any, t0: float, alive: Any, timeout: float = 120) -> float:
    while time.time() - t0 < timeout:
        if not alive():
            raise RuntimeError("the server died")
        try:
            conn = connect()
            conn.request("GET", "/health")
            if conn.getresponse().status == 200:
                conn.close()
                return time.time() - t0
        except (OSError, http.client.HTTPException):
            pass
        time.sleep(0.01)
    raise RuntimeError("not ready")


def _latencies(conn: http.client.HTTPConnection, n: int) -> list[float]:
    out = []
    for _ in range(n):
        t = time.perf_counter()
        conn.request("POST", "/predict", body=BODY, headers={"Content-Type": "application/json"})
        resp = conn.getresponse()
        resp.read()
        assert resp.status == 200
        out.append(1000 * (time.perf_counter() - t))
    return out


def runc_rep(bundle: Bundle, requests: int) -> tuple[float, list[float]]:
    run = start(bundle, env={"WORKERS": "1"})
    run.keep = True  # the bundle serves every rep
    try:
        cold = wait_ready(run, timeout=120)
        conn = run.connection(timeout=60)
        lat = _latencies(conn, requests)
        conn.close()
        return cold, lat
    finally:
        run.stop()


def unshare_rep(bundle: Bundle, requests: int) -> tuple[float, list[float]]:
    env = split_env(bundle.env)
    box = Sandbox("host-run", rootfs=bundle.rootfs, env=env, workdir=bundle.working_dir, user=bundle.user)
    port = free_port()
    t0 = time.time()
    proc = subprocess.Popen(box.argv(bundle.entrypoint), start_new_session=True,
                            env=box.process_env({"PORT": str(port), "HOST": "127.0.0.1", "WORKERS": "1"}),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def connect() -> http.client.HTTPConnection:
            return http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        cold = _ready(connect, t0, lambda: proc.poll() is None)
        conn = connect()
        lat = _latencies(conn, requests)
        conn.close()
        return cold, lat
    finally:
        os.killpg(proc.pid, 9)
        proc.wait()


def _summary(colds: list[float], lats: list[float]) -> dict[str, float]:
    lats = sorted(lats)
    return {"cold_start_s_p50": round(statistics.median(colds), 3),
            "latency_ms_p50": round(statistics.median(lats), 2),
            "latency_ms_p95": round(lats[int(0.95 * (len(lats) - 1))], 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--reps", type=int, default=5)
    p.add_argument("--requests", type=int, default=300)
    p.add_argument("--out", type=Path, default=Path(__file__).parent)
    a = p.parse_args()
    from tests.serve.tiny_artifacts import make_tiny_artifacts

    with tempfile.TemporaryDirectory(prefix="advisor-overhead-") as tmp:
        artifacts = make_tiny_artifacts(Path(tmp) / "art")
        dest = f"oci:{Path(tmp) / 'img'}:v1"
        build_serving_image(BuildConfig(artifacts=artifacts, base=ensure_debian_base("slim").reference,
                                        destination=dest))
        boxed, bare = unpack(dest), unpack(dest, userns=False)
        make_host_run_devices(bare)
        try:
            sides: dict[str, tuple[list[float], list[float]]] = {"runc": ([], []), "unshare": ([], [])}
            for rep in range(a.reps):
                order = ("runc", "unshare") if rep % 2 == 0 else ("unshare", "runc")
                for side in order:
                    cold, lat = (runc_rep(boxed, a.requests) if side == "runc"
                                 else unshare_rep(bare, a.requests))
                    sides[side][0].append(cold)
                    sides[side][1].extend(lat)
        finally:
            boxed.remove()
            bare.remove()
    results = {"date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "runc_version": runc_version(),
               "kernel": platform.release(), "loadavg": [round(x, 2) for x in os.getloadavg()],
               "reps": a.reps, "requests": a.requests,
               **{side: _summary(*v) for side, v in sides.items()}}
    r, u = results["runc"], results["unshare"]
    a.out.mkdir(parents=True, exist_ok=True)
    (a.out / "results.json").write_text(json.dumps(results, indent=2) + "\n")
    (a.out / "report.md").write_text(
        "# runc's own overhead on the slim serving image\n\n"
        f"{results['date']}, runc {results['runc_version']}, kernel {results['kernel']}, "
        f"load average {results['loadavg']} (2 cores shared), {a.reps} interleaved reps, "
        f"{a.requests} sequential single-text requests per rep.\n\n"
        "| | runc (sandbox) | unshare (host run) | runc - unshare |\n|---|---|---|---|\n"
        f"| cold start to /health, p50 | {r['cold_start_s_p50']} s | {u['cold_start_s_p50']} s | "
        f"{1000 * (r['cold_start_s_p50'] - u['cold_start_s_p50']):+.0f} ms |\n"
        f"| /predict latency p50 | {r['latency_ms_p50']} ms | {u['latency_ms_p50']} ms | "
        f"{r['latency_ms_p50'] - u['latency_ms_p50']:+.2f} ms |\n"
        f"| /predict latency p95 | {r['latency_ms_p95']} ms | {u['latency_ms_p95']} ms | "
        f"{r['latency_ms_p95'] - u['latency_ms_p95']:+.2f} ms |\n")
    print(json.dumps(results))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
