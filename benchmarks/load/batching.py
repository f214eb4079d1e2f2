"""Dynamic batching against the model in-process and against the server it replaced.

Both servers run on this machine's Python with the same artifacts and environment defaults
(today's: uvicorn, dynamic batching, access log on to a file; before: the stdlib
ThreadingHTTPServer of BASELINE_REF, its ``advisor/serve`` taken from git), each sent the
bench's held-out sentences, one per request, by closed-loop keep-alive connections from wrk
(``wrk.py``). The in-process reference is ``Model.predict`` over the same sentences in order,
at each batch size, the best one kept.

The machine is shared and its load swings within seconds, so nothing is compared across
runs: each round measures the in-process reference and both servers back to back (the
servers' order alternating), its ratios are computed within the round, and the report gives
each round (with the load average it started at) and the median of the rounds' ratios.
"""

from __future__ import annotations

import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tarfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

from benchmarks.load.wrk import run_wrk, write_bodies
from tests.security.loadgen import Mix, run_load

REPO = Path(__file__).resolve().parents[2]
BASELINE_REF = "7045d8d"  # the last commit whose advisor/serve is the stdlib server
BATCH_SIZES = (1, 8, 16, 32, 64)
NEW, OLD = "uvicorn_batching", "stdlib_baseline"
TICK = os.sysconf("SC_CLK_TCK")


def baseline_tree(dest: Path) -> Path:
    """``advisor/serve`` as of BASELINE_REF, unpacked into ``dest`` (an importable root)."""
    tar = subprocess.run(["git", "-C", str(REPO), "archive", BASELINE_REF, "advisor/serve"],
                         check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(tar)) as t:
        t.extractall(dest, filter="data")
    (dest / "advisor" / "__init__.py").write_text("")
    return dest


def in_process(models: dict[int, Any], texts: tuple[str, ...], slice_s: float) -> dict[str, dict[str, float]]:
    """Texts per second (and CPU ms per text) of ``model.predict`` over ``texts`` in order,
    by batch size and onnxruntime threads (``models``: threads -> Model), each for
    ``slice_s`` seconds (wrapping around the texts)."""
    out = {}
    for threads, model in models.items():
        for b in BATCH_SIZES:
            done, at = 0, 0
            began, cpu0 = time.perf_counter(), time.process_time()
            while done == 0 or time.perf_counter() - began < slice_s:
                batch = [texts[(at + k) % len(texts)] for k in range(b)]
                model.predict(batch)
                at, done = (at + b) % len(texts), done + b
            wall, cpu = time.perf_counter() - began, time.process_time() - cpu0
            out[f"b{b}/{threads or 'auto'}"] = {"per_s": round(done / wall, 1),
                                       "cpu_ms": round(cpu * 1000 / done, 2)}
    return out


def start(root: Path, artifacts: Path, log: Path) -> tuple[subprocess.Popen[bytes], int]:
    env = os.environ | {"MODEL_DIR": str(artifacts), "PORT": "0", "HOST": "127.0.0.1",
                        "PYTHONPATH": str(root), "PYTHONDONTWRITEBYTECODE": "1"}
    out = log.open("wb")
    proc = subprocess.Popen([sys.executable, "-m", "advisor.serve"], env=env, stdout=out,
                            stderr=subprocess.PIPE, cwd="/")
    assert proc.stderr is not None
    for raw in proc.stderr:
        m = re.search(r"on http://[0-9.]+:(\d+) ", raw.decode(errors="replace"))
        if m:
            return proc, int(m.group(1))
    raise SystemExit(f"{root}: the server did not start")


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _cpu(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK


def _served(pid: int, port: int, clients: int, seconds: float, bodies: Path) -> dict[str, Any]:
    cpu0 = _cpu(pid)
    load = run_wrk(port, clients, seconds, bodies)
    if load["requests"]:
        load["server_cpu_ms_per_request"] = round((_cpu(pid) - cpu0) * 1000 / load["requests"], 2)
    return load


def one_round(servers: dict[str, tuple[subprocess.Popen[bytes], int]], models: dict[int, Any],
              texts: tuple[str, ...], bodies: Path, seconds: float, flip: bool) -> dict[str, Any]:
    slice_s = seconds / len(BATCH_SIZES) / len(models)
    r: dict[str, Any] = {"load_average": round(os.getloadavg()[0], 1),
                         "in_process": in_process(models, texts, slice_s)}
    for name in sorted(servers, reverse=flip):
        proc, port = servers[name]
        r[name] = {"eight_clients": _served(proc.pid, port, 8, seconds, bodies),
                   "one_client": _served(proc.pid, port, 1, seconds, bodies)}
    best = max(v["per_s"] for v in r["in_process"].values())
    new, old = r[NEW], r[OLD]
    r["in_process_best_per_s"] = best
    r["throughput_8_vs_in_process_best"] = round(new["eight_clients"]["throughput_per_s"] / best, 3)
    r["throughput_8_vs_baseline"] = round(new["eight_clients"]["throughput_per_s"]
                                          / old["eight_clients"]["throughput_per_s"], 3)
    r["p50_1_vs_baseline"] = round(new["one_client"]["latency_ms"]["p50"]
                                   / old["one_client"]["latency_ms"]["p50"], 3)
    # CPU per text, what a shared machine blurs least: the server's and wrk's per request
    # against the cheapest in-process batch (>1: the server spends less CPU per text).
    eight = new["eight_clients"]
    if "server_cpu_ms_per_request" in eight:
        cheapest = min(v["cpu_ms"] for v in r["in_process"].values())
        r["cpu_per_text_in_process_cheapest_vs_8"] = round(
            cheapest / (eight["server_cpu_ms_per_request"] + eight["client_cpu_ms_per_request"]), 3)
    return r


def python_client(port: int, texts: tuple[str, ...], seconds: float) -> dict[str, Any]:
    """The same 8-client load from tests/security/loadgen.py's Python threads, with the CPU
    they used: what the load generator takes from a 2-core machine."""
    cpu0, began = time.process_time(), time.monotonic()
    s = run_load(port, clients=8, seconds=seconds, mix=Mix(texts=texts, batches=False)).summary()
    s["client_cpu_share"] = round((time.process_time() - cpu0) / (time.monotonic() - began), 3)
    return s


def measure(artifacts: Path, texts: tuple[str, ...], work: Path, seconds: float = 10,
            rounds: int = 5) -> dict[str, Any]:
    from advisor.serve.model import Model

    bodies = write_bodies(texts, work / "bodies.jsonl")
    roots = {NEW: REPO, OLD: baseline_tree(work / "baseline")}
    # onnxruntime's default threads (the old server's) and one: the reference is the best of both
    models = {n: Model(str(artifacts), n) for n in (0, 1)}
    for model in models.values():
        model.predict(list(texts[:64]))  # warm up
    servers: dict[str, tuple[subprocess.Popen[bytes], int]] = {}
    try:
        for name, root in roots.items():
            servers[name] = start(root, artifacts, work / f"{name}.log")
            run_wrk(servers[name][1], 8, 2, bodies)  # warm up
        runs = [one_round(servers, models, texts, bodies, seconds, flip=i % 2 == 1)
                for i in range(rounds)]
        py = python_client(servers[NEW][1], texts, seconds)
    finally:
        for proc, _ in servers.values():
            stop(proc)
    serving = json.loads((artifacts / "serving.json").read_text())
    graph = {k: serving.get(k) for k in ("onnx_sha256", "optimization", "quantization")}
    return summarise(runs, py, seconds) | {"texts": len(texts), "cpus": os.cpu_count(), "graph": graph}


def summarise(runs: list[dict[str, Any]], py: dict[str, Any], seconds: float) -> dict[str, Any]:
    def med(key: str) -> float:
        return round(statistics.median(r[key] for r in runs), 3)

    def errors(name: str) -> int:
        return sum(load["connection_errors"] + sum(n for s, n in load["statuses"].items() if s != "200")
                   for r in runs for load in r[name].values())

    return {
        "baseline_ref": BASELINE_REF, "seconds": seconds, "rounds": len(runs), "runs": runs,
        "load_generator": "wrk (one thread, closed-loop keep-alive connections)",
        "python_client_8": py,
        "errors": {NEW: errors(NEW), OLD: errors(OLD)},
        "throughput_8_vs_in_process_best": med("throughput_8_vs_in_process_best"),
        "throughput_8_vs_baseline": med("throughput_8_vs_baseline"),
        "p50_1_vs_baseline": med("p50_1_vs_baseline"),
        "cpu_per_text_in_process_cheapest_vs_8": med("cpu_per_text_in_process_cheapest_vs_8"),
    }


def render(r: dict[str, Any]) -> list[str]:
    rows = []
    for i, run in enumerate(r["runs"], 1):
        new, old = run[NEW], run[OLD]
        ip = run["in_process"]
        best = max(ip, key=lambda k: ip[k]["per_s"])
        cheapest = min(ip, key=lambda k: ip[k]["cpu_ms"])
        eight = new["eight_clients"]
        rows.append(
            f"| {i} | {run['load_average']} | {best} {ip[best]['per_s']} | {cheapest} {ip[cheapest]['cpu_ms']} "
            f"| {eight['throughput_per_s']} | {eight.get('server_cpu_ms_per_request', '-')} + "
            f"{eight['client_cpu_ms_per_request']} | {old['eight_clients']['throughput_per_s']} "
            f"| {new['one_client']['latency_ms']['p50']} | {old['one_client']['latency_ms']['p50']} "
            f"| **{run['throughput_8_vs_in_process_best']}** | {run.get('cpu_per_text_in_process_cheapest_vs_8', '-')} "
            f"| {run['throughput_8_vs_baseline']} | **{run['p50_1_vs_baseline']}** |")
    py = r["python_client_8"]
    wrk_share = statistics.median(run[NEW]["eight_clients"]["client_cpu_share"] for run in r["runs"])
    configs = len(r["runs"][0]["in_process"])
    return [
        f"## Dynamic batching: {r['texts']} held-out sentences, one per request", "",
        f"{r['rounds']} rounds on {r['cpus']} shared cores; each round: `Model.predict` in-process at "
        f"batch {', '.join(str(b) for b in BATCH_SIZES)}, each with onnxruntime's default threads "
        f"(`auto`, the old server's) and with one thread ({r['seconds'] / configs:g} s each; the best "
        f"kept), then each server (order alternating) under {r['load_generator']}: 8 connections for "
        f"{r['seconds']:g} s, 1 connection for {r['seconds']:g} s. Baseline: `advisor/serve` at "
        f"{r['baseline_ref']} (stdlib ThreadingHTTPServer, one request per model run). Both servers "
        "with their own defaults. Graph: "
        f"{r['graph']['quantization']}, {r['graph']['optimization']} (`{r['graph']['onnx_sha256'][:12]}`). Load average: "
        "the machine's 1-minute load when the round began (2 would fill both cores). CPU per text "
        "(ms): in-process, the process's; the new server's, its process's plus wrk's.", "",
        "| round | load | in-process best: texts/s | in-process cheapest: CPU ms/text "
        "| new, 8 clients: texts/s | new, 8: CPU ms server + wrk | old, 8 clients: texts/s "
        "| new, 1 client: p50 ms | old, 1 client: p50 ms | 8 clients / in-process best "
        "| CPU/text cheapest in-process / new 8 | new / old, 8 clients | p50 new / old, 1 client |",
        "|---:|---:|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        *rows, "",
        f"Medians of the rounds' ratios: 8 clients vs the best in-process batch "
        f"**{r['throughput_8_vs_in_process_best']}x** (target >= 0.9); CPU per text, the cheapest "
        f"in-process batch vs the server at 8 clients with wrk's CPU counted "
        f"{r.get('cpu_per_text_in_process_cheapest_vs_8', '-')}x; 8 clients vs before "
        f"{r['throughput_8_vs_baseline']}x; p50 at one client vs before **{r['p50_1_vs_baseline']}x** "
        f"(target <= 1.1). Non-200 answers or connection errors: {r['errors'][NEW]} (new), "
        f"{r['errors'][OLD]} (old).", "",
        f"The load generator's own CPU: wrk used {wrk_share:.0%} of a core at 8 connections; the "
        f"Python client of tests/security/loadgen.py, driving the new server the same way once at "
        f"the end, used {py['client_cpu_share']:.0%} of a core and got "
        f"{py['throughput_per_s']} texts/s (p50 {py['latency_ms']['p50']} ms).", "",
    ]
