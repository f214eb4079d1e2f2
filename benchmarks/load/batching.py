"""Dynamic batching against the model in-process and against the server it replaced.

Both servers run on this machine's Python with the same artifacts and environment defaults
(today's: uvicorn, dynamic batching, access log on to a file; before: the stdlib
ThreadingHTTPServer of BASELINE_REF, its ``advisor/serve`` taken from git), each sent the
bench's held-out sentences, one per request, by closed-loop keep-alive clients. The
in-process figure is ``Model.predict`` over the same sentences in order, at each batch size,
the best one kept. Rounds alternate the servers so background load hits both alike.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import tarfile
import time
from io import BytesIO
from pathlib import Path
from typing import Any

from tests.security.loadgen import Mix, run_load

REPO = Path(__file__).resolve().parents[2]
BASELINE_REF = "7045d8d"  # the last commit whose advisor/serve is the stdlib server
BATCH_SIZES = (1, 8, 16, 32, 64)


def baseline_tree(dest: Path) -> Path:
    """``advisor/serve`` as of BASELINE_REF, unpacked into ``dest`` (an importable root)."""
    tar = subprocess.run(["git", "-C", str(REPO), "archive", BASELINE_REF, "advisor/serve"],
                         check=True, capture_output=True).stdout
    with tarfile.open(fileobj=BytesIO(tar)) as t:
        t.extractall(dest, filter="data")
    (dest / "advisor" / "__init__.py").write_text("")
    return dest


def in_process(model: Any, texts: tuple[str, ...]) -> dict[str, float]:
    """Texts per second of ``model.predict`` over ``texts`` in order, by batch size."""
    rates = {}
    for b in BATCH_SIZES:
        began = time.perf_counter()
        for i in range(0, len(texts), b):
            model.predict(list(texts[i : i + b]))
        rates[f"b{b}"] = round(len(texts) / (time.perf_counter() - began), 1)
    return rates


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


def one_round(root: Path, artifacts: Path, mix: Mix, seconds: float, log: Path) -> dict[str, Any]:
    proc, port = start(root, artifacts, log)
    try:
        run_load(port, clients=8, seconds=2, mix=mix)  # warm up
        one = run_load(port, clients=1, seconds=seconds, mix=mix).summary()
        eight = run_load(port, clients=8, seconds=seconds, mix=mix).summary()
    finally:
        stop(proc)
    return {"one_client": one, "eight_clients": eight}


def measure(artifacts: Path, texts: tuple[str, ...], work: Path, seconds: float = 20,
            rounds: int = 2) -> dict[str, Any]:
    load_before = os.getloadavg()[0]
    mix = Mix(texts=texts, batches=False)
    roots = {"uvicorn_batching": REPO, "stdlib_baseline": baseline_tree(work / "baseline")}
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in roots}
    from advisor.serve.model import Model

    model = Model(str(artifacts), 0)
    model.predict(list(texts[:64]))  # warm up
    inproc_runs = []
    for _ in range(rounds):  # in-process and both servers in every round: the same noise
        inproc_runs.append(in_process(model, texts))
        for name, root in roots.items():
            runs[name].append(one_round(root, artifacts, mix, seconds, work / f"{name}.log"))
    inproc = {k: max(r[k] for r in inproc_runs) for k in inproc_runs[0]}
    best = {name: {
        "throughput_8_per_s": max(r["eight_clients"]["throughput_per_s"] for r in rs),
        "p50_1_ms": min(r["one_client"]["latency_ms"]["p50"] for r in rs),
        "p50_8_ms": min(r["eight_clients"]["latency_ms"]["p50"] for r in rs),
        "errors": sum(r[k]["connection_errors"] + sum(n for s, n in r[k]["statuses"].items()
                                                     if s != "200")
                      for r in rs for k in ("one_client", "eight_clients")),
    } for name, rs in runs.items()}
    new, old = best["uvicorn_batching"], best["stdlib_baseline"]
    top = max(inproc.values())
    return {
        "baseline_ref": BASELINE_REF, "texts": len(texts), "seconds": seconds, "rounds": rounds,
        "load_average": [round(load_before, 1), round(os.getloadavg()[0], 1), os.cpu_count()],
        "in_process_texts_per_s": inproc, "in_process_best_per_s": top,
        "in_process_runs": inproc_runs,
        "servers": best, "runs": runs,
        "throughput_8_vs_in_process_best": round(new["throughput_8_per_s"] / top, 3),
        "throughput_8_vs_baseline": round(new["throughput_8_per_s"] / old["throughput_8_per_s"], 3),
        "p50_1_vs_baseline": round(new["p50_1_ms"] / old["p50_1_ms"], 3),
    }


def render(r: dict[str, Any]) -> list[str]:
    new, old = r["servers"]["uvicorn_batching"], r["servers"]["stdlib_baseline"]
    return [
        f"## Dynamic batching: {r['texts']} held-out sentences, one per request", "",
        f"Both servers on this machine's Python, same artifacts, {r['rounds']} alternating rounds of "
        f"{r['seconds']:.0f} s per case (best round kept); baseline: `advisor/serve` at "
        f"{r['baseline_ref']} (stdlib ThreadingHTTPServer, one request per model run). "
        + ("Load average before / after: {} / {} on {} cores.".format(*r["load_average"])
           if "load_average" in r else ""), "",
        "| server | 8 clients: texts/s | 8 clients: p50 ms | 1 client: p50 ms | non-200 or errors |",
        "|---|---:|---:|---:|---:|",
        f"| uvicorn + dynamic batching | {new['throughput_8_per_s']} | {new['p50_8_ms']} | {new['p50_1_ms']} | {new['errors']} |",
        f"| stdlib (before) | {old['throughput_8_per_s']} | {old['p50_8_ms']} | {old['p50_1_ms']} | {old['errors']} |",
        "", "In-process `Model.predict` over the same sentences, texts/s by batch size: "
        + ", ".join(f"{k} {v}" for k, v in r["in_process_texts_per_s"].items())
        + f" (best {r['in_process_best_per_s']}).", "",
        f"- 8 clients vs the best in-process batch: **{r['throughput_8_vs_in_process_best']}x** (target >= 0.9)",
        f"- 8 clients vs before: {r['throughput_8_vs_baseline']}x",
        f"- p50 at one client vs before: **{r['p50_1_vs_baseline']}x** (target <= 1.1)", "",
    ]
