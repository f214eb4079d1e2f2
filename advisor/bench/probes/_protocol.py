"""JSON-lines protocol shared by the probes. Standard library only: it runs in any image.

The probe loads its model, makes one prediction, then prints ``{"event": "ready", ...}`` with
the cold start (from ``ADVISOR_BENCH_T0``, the host's wall clock when it spawned the process,
else this process's start time) and answers one JSON request per stdin line:

- ``{"op": "predict", "texts": [...], "max_length": N, "batch_size": B}`` -> ``{"labels": [...]}``
- ``{"op": "fit", "texts": [...], "seq": S}`` -> ``{"texts": [...]}`` cut to at most S tokens
- ``{"op": "time", "texts": [...], "seq": S, "iterations": N, "max_seconds": T, "warmup": W}``
  -> ``{"samples_ms": [...]}`` (each sample: one forward pass of all texts padded to S)
- ``{"op": "throughput", "texts": [...], "seq": S, "seconds": T}`` -> ``{"items", "seconds"}``
- ``{"op": "stats"}`` -> ``{"peak_rss_bytes", "rss_bytes"}``
- ``{"op": "exit"}``

Errors answer ``{"error": "..."}``; a failure before ready prints ``{"event": "error", ...}``
and exits 1. Libraries that print to stdout cannot corrupt the stream: fd 1 is pointed at
stderr and the protocol writes to a private duplicate of the original stdout.
"""

from __future__ import annotations

import json
import os
import resource
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from typing import IO, Any, Protocol


class Backend(Protocol):
    """What a probe implements over its own ML stack."""

    def classify(self, texts: list[str], max_length: int, pad_to_max: bool) -> list[str]: ...

    def fit(self, texts: list[str], seq: int) -> list[str]: ...

    def label_names(self) -> list[str]: ...

    def versions(self) -> dict[str, str]: ...


def process_start_wall_time() -> float:
    """Wall-clock time this process started, from /proc (clock-tick resolution)."""
    with open("/proc/self/stat") as f:
        start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/uptime") as f:
        uptime = float(f.read().split()[0])
    return time.time() - uptime + start_ticks / os.sysconf("SC_CLK_TCK")


def memory() -> dict[str, int]:
    """Peak and current resident set size in bytes (VmHWM/VmRSS, else getrusage)."""
    out: dict[str, int] = {
        "peak_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    }
    try:
        with open("/proc/self/status") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key in ("VmHWM", "VmRSS"):
                    name = "peak_rss_bytes" if key == "VmHWM" else "rss_bytes"
                    out[name] = int(value.split()[0]) * 1024
    except OSError:
        pass
    return out


def _chunks(items: list[str], size: int) -> Iterator[list[str]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _predict(backend: Backend, req: dict[str, Any]) -> dict[str, Any]:
    labels: list[str] = []
    for chunk in _chunks(req["texts"], int(req.get("batch_size", 32))):
        labels.extend(backend.classify(chunk, int(req.get("max_length", 128)), False))
    return {"labels": labels}


def _time(backend: Backend, req: dict[str, Any]) -> dict[str, Any]:
    texts, seq = req["texts"], int(req["seq"])
    deadline = time.perf_counter() + float(req.get("max_seconds", 60.0))
    samples: list[float] = []
    for _ in range(int(req.get("warmup", 1))):
        backend.classify(texts, seq, True)
    for _ in range(int(req["iterations"])):
        start = time.perf_counter()
        backend.classify(texts, seq, True)
        samples.append((time.perf_counter() - start) * 1000.0)
        if time.perf_counter() > deadline:
            break
    return {"samples_ms": samples}


def _throughput(backend: Backend, req: dict[str, Any]) -> dict[str, Any]:
    texts, seq = req["texts"], int(req["seq"])
    start = time.perf_counter()
    items = 0
    while True:
        backend.classify(texts, seq, True)
        items += len(texts)
        elapsed = time.perf_counter() - start
        if elapsed >= float(req.get("seconds", 2.0)):
            return {"items": items, "seconds": elapsed}


def _dispatch(backend: Backend, req: dict[str, Any]) -> dict[str, Any]:
    op = req.get("op")
    if op == "predict":
        return _predict(backend, req)
    if op == "fit":
        return {"texts": backend.fit(req["texts"], int(req["seq"]))}
    if op == "time":
        return _time(backend, req)
    if op == "throughput":
        return _throughput(backend, req)
    if op == "stats":
        return memory()
    return {"error": f"unknown op {op!r}"}


def _send(stream: IO[str], obj: dict[str, Any]) -> None:
    stream.write(json.dumps(obj) + "\n")
    stream.flush()


def _tail(limit: int = 20) -> str:
    return "".join(traceback.format_exc().splitlines(keepends=True)[-limit:])


def serve(make_backend: Callable[[dict[str, Any]], Backend]) -> None:
    """Load the backend from the request in argv[1], report ready, answer requests until EOF."""
    out = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    t0 = float(os.environ.get("ADVISOR_BENCH_T0") or process_start_wall_time())
    try:
        with open(sys.argv[1]) as f:
            config = json.load(f)
        load_start = time.time()
        backend = make_backend(config)
        backend.classify([config.get("warmup_text") or "hello world"], 128, False)
        ready = {"event": "ready", "cold_start_s": time.time() - t0}
        ready.update(load_s=time.time() - load_start, labels=backend.label_names())
        ready.update(versions=backend.versions(), python=sys.version.split()[0])
        _send(out, ready)
    except BaseException:
        _send(out, {"event": "error", "error": _tail()})
        sys.exit(1)
    for line in sys.stdin:
        if not line.strip():
            continue
        req = json.loads(line)
        if req.get("op") == "exit":
            break
        try:
            _send(out, _dispatch(backend, req))
        except Exception:
            _send(out, {"error": _tail()})
