"""Where the server's CPU goes, per request: each thread's CPU under wrk's 8 connections.

    .venv/bin/python benchmarks/load/threads.py ARTIFACTS_DIR [--seconds 10] [--connections 8]

Serves ARTIFACTS_DIR in this process (the settings of the environment, access log to a
file), drives it with wrk (wrk.py) and prints the CPU milliseconds per request of every
thread: the event loop (HTTP, JSON, metrics, logging), the batch workers (tokenizer, the
calling thread of onnxruntime, the task head) and the threads onnxruntime and the tokenizer
start themselves (named ``native-TID``). CPU time, unlike throughput, is read per thread and
is what a shared, loaded machine blurs least.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from advisor.bench.data import default_data_path, load_csv  # noqa: E402
from advisor.serve.app import App  # noqa: E402
from advisor.serve.model import Model  # noqa: E402
from advisor.serve.server import make_server  # noqa: E402
from advisor.serve.settings import Settings  # noqa: E402
from benchmarks.load.wrk import run_wrk, write_bodies  # noqa: E402

TICK = os.sysconf("SC_CLK_TCK")


def thread_cpu() -> dict[int, float]:
    out = {}
    for tid in os.listdir("/proc/self/task"):
        try:
            fields = Path(f"/proc/self/task/{tid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        out[int(tid)] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("artifacts", type=Path)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=8)
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="advisor-threads-"))
    bodies = write_bodies(load_csv(default_data_path()).texts, work / "bodies.jsonl")
    settings = Settings.from_env({**os.environ, "MODEL_DIR": str(args.artifacts), "HOST": "127.0.0.1",
                                  "PORT": "0"})
    model = Model(settings.model_dir, settings.intra_op_threads)
    app = App(model, settings)
    log = (work / "access.log").open("w")
    app.log._stream = log  # the access log's lines to a file, as the bench's servers do
    server = make_server(app)
    result: dict[str, object] = {}

    def drive() -> None:
        try:
            while not server.started:
                time.sleep(0.05)
            run_wrk(server.port, args.connections, 2, bodies)  # warm up
            before = thread_cpu()
            result["load"] = run_wrk(server.port, args.connections, args.seconds, bodies)
            result["cpu"] = {t: c - before.get(t, 0.0) for t, c in thread_cpu().items()}
        finally:
            server.should_exit = True

    threading.Thread(target=drive, name="drive").start()
    load_before = os.getloadavg()[0]
    server.serve_forever()
    names = {t.native_id: t.name for t in threading.enumerate() if t.native_id is not None}
    names[os.getpid()] = "event-loop"
    app.close()
    log.close()
    shutil.rmtree(work, ignore_errors=True)
    load = result["load"]
    assert isinstance(load, dict)
    n = load["requests"]
    cpu = result["cpu"]
    assert isinstance(cpu, dict)
    rows = sorted(((c * 1000 / n, names.get(t, f"native-{t}")) for t, c in cpu.items()), reverse=True)
    print(f"{n} requests, {load['throughput_per_s']} /s, p50 {load['latency_ms']['p50']} ms; "
          f"load average {load_before:.1f} -> {os.getloadavg()[0]:.1f}")
    print("CPU ms per request: " + ", ".join(f"{name} {ms:.2f}" for ms, name in rows if ms >= 0.01)
          + f"; total {sum(ms for ms, _ in rows):.2f}; wrk {load['client_cpu_ms_per_request']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
