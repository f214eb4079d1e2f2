"""Measure both sides, alternating between them so drift on a shared machine hits both alike.

The original runs ``torch_probe.py`` in its own environment; the slim side runs its own
server (accuracy, cold start, HTTP latency, load, server RSS) and ``ort_probe.py`` (model-only
latency and throughput, like for like with the torch probe).
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.bench import client
from advisor.bench.cases import BenchCase, long_texts
from advisor.bench.data import LabelledData, accuracy, agreement
from advisor.bench.model import BenchConfig, LoadRun, ProgressFn, SideResult
from advisor.bench.probes import PROBE_FILES, PROBES_DIR
from advisor.bench.stats import LatencySummary
from advisor.errors import BenchError, SandboxError
from advisor.sandbox.environment import ProbeProcess, Sandbox, ServerProcess
from advisor.sandbox.runner import free_port

_PREDICT_BATCH = 32


@dataclass(frozen=True)
class OriginalSpec:
    """The fat side: a Hugging Face model folder, run with the sandbox's torch."""

    reference: str
    sandbox: Sandbox
    model_dir: str  # as the sandbox sees it


@dataclass(frozen=True)
class SlimSpec:
    """The slim side: its server (the sandbox's command) and its ONNX artifacts."""

    reference: str
    sandbox: Sandbox
    onnx_path: str  # as the sandbox sees it
    tokenizer_path: str
    labels: tuple[str, ...] = ()
    max_length: int = 128


@dataclass(frozen=True)
class Measured:
    original: SideResult
    slim: SideResult
    agreement: float


@dataclass
class _Steps:
    """Counts progress over a known number of steps."""

    progress: ProgressFn
    total: int
    done: int = 0

    def __call__(self, what: str) -> None:
        self.progress(self.done, self.total, what)
        self.done += 1


@dataclass
class _Latencies:
    samples: dict[str, list[float]] = field(default_factory=dict)

    def add(self, case: str, values: Sequence[float]) -> None:
        self.samples.setdefault(case, []).extend(values)

    def summaries(self) -> dict[str, LatencySummary]:
        return {case: LatencySummary.of(v) for case, v in sorted(self.samples.items()) if v}


def _write_config(sandbox: Sandbox, inner_dir: str, name: str, config: dict[str, Any]) -> str:
    inner = f"{inner_dir}/{name}"
    sandbox.host_path(inner).write_text(json.dumps(config), encoding="utf-8")
    return inner


@contextmanager
def _probe(
    sandbox: Sandbox, script: str, config: dict[str, Any], workdir: Path, timeout_s: float
) -> Iterator[ProbeProcess]:
    inner_dir = sandbox.stage_probes(workdir, PROBES_DIR, PROBE_FILES)
    config_path = _write_config(sandbox, inner_dir, f"{script}.json", config)
    probe = ProbeProcess(
        sandbox,
        f"{inner_dir}/{script}",
        config_path,
        {"HF_HUB_OFFLINE": "1", "OMP_WAIT_POLICY": "PASSIVE"},
    )
    try:
        try:
            probe.wait_ready(timeout_s)
        except SandboxError as e:
            model = config.get("model_dir") or config.get("model_path")
            raise BenchError(
                f"the {sandbox.name} image cannot run its model {model}: {e}", e.hint
            ) from e
        yield probe
    finally:
        probe.close()


@contextmanager
def _server(sandbox: Sandbox, timeout_s: float) -> Iterator[tuple[ServerProcess, float]]:
    server = ServerProcess(sandbox, free_port())
    try:
        try:
            first = client.wait_first_prediction(server.url, server.alive, timeout_s)
        except BenchError as e:
            raise server.failure(f"the slim image's server did not start: {e}") from e
        yield server, first - server.started_at
    finally:
        server.stop()


def _case_texts(
    probe: ProbeProcess, data: LabelledData, cases: Sequence[BenchCase]
) -> dict[str, list[str]]:
    """Real sentences joined and cut (by the original's tokenizer) to each case's token count."""
    raw = long_texts(data.texts, max(c.batch for c in cases), max(c.seq for c in cases))
    fitted: dict[str, list[str]] = {}
    for case in cases:
        fitted[case.name] = list(
            probe.request("fit", texts=raw[: case.batch], seq=case.seq)["texts"]
        )
    return fitted


def _alternating_latency(
    torch_probe: ProbeProcess,
    ort_probe: ProbeProcess,
    url: client.Endpoint,
    texts: dict[str, list[str]],
    config: BenchConfig,
    steps: _Steps,
) -> tuple[_Latencies, _Latencies, _Latencies]:
    """Rounds over every case; each round flips which side goes first."""
    original, slim, http = _Latencies(), _Latencies(), _Latencies()
    per_round = max(1, config.iterations // config.rounds)
    budget = config.max_case_seconds / config.rounds
    for r in range(config.rounds):
        steps(f"latency round {r + 1}/{config.rounds}")
        for case in config.cases:
            fields: dict[str, Any] = {
                "texts": texts[case.name],
                "seq": case.seq,
                "iterations": per_round,
                "max_seconds": budget,
            }
            order = ("original", "slim", "http") if r % 2 == 0 else ("http", "slim", "original")
            for side in order:
                if side == "original":
                    original.add(case.name, torch_probe.request("time", **fields)["samples_ms"])
                elif side == "slim":
                    slim.add(case.name, ort_probe.request("time", **fields)["samples_ms"])
                else:
                    http.add(
                        case.name, client.time_requests(url, texts[case.name], per_round, budget)
                    )
    return original, slim, http


def _throughput(probe: ProbeProcess, texts: list[str], seq: int, seconds: float) -> float:
    reply = probe.request("throughput", texts=texts, seq=seq, seconds=seconds)
    return float(reply["items"]) / float(reply["seconds"])


def _load_runs(url: client.Endpoint, texts: list[str], config: BenchConfig) -> tuple[LoadRun, ...]:
    runs = []
    for concurrency in config.concurrency:
        r = client.load_test(url, texts, concurrency, config.load_requests, config.load_seconds)
        summary = LatencySummary.of(r.latency_ms) if r.latency_ms else None
        runs.append(
            LoadRun(
                r.concurrency, r.batch, r.requests, r.errors, r.seconds, r.throughput_per_s, summary
            )
        )
    return tuple(runs)


@dataclass(frozen=True)
class _Live:
    """Both sides, started: the original's probe, the slim server and the slim probe."""

    torch_probe: ProbeProcess
    server: ServerProcess
    slim_cold_start_s: float
    ort_probe: ProbeProcess


@dataclass
class _Raw:
    """What the measurement phase collects before it becomes two ``SideResult``s."""

    original_pred: list[str] = field(default_factory=list)
    slim_pred: list[str] = field(default_factory=list)
    latency: tuple[_Latencies, _Latencies, _Latencies] = field(
        default_factory=lambda: (_Latencies(), _Latencies(), _Latencies())
    )
    throughput: tuple[float, float] = (0.0, 0.0)
    load: tuple[LoadRun, ...] = ()
    memory: tuple[dict[str, Any], dict[str, Any], int] = field(default_factory=lambda: ({}, {}, 0))


def _start(
    stack: ExitStack,
    original: OriginalSpec,
    slim: SlimSpec,
    config: BenchConfig,
    workdir: Path,
    steps: _Steps,
) -> _Live:
    """One side at a time, so neither cold start competes with the other for the cores."""
    timeout = config.startup_timeout_s
    steps("starting the original (torch)")
    torch_config = {"model_dir": original.model_dir, "threads": config.threads}
    torch_probe = stack.enter_context(
        _probe(original.sandbox, "torch_probe.py", torch_config, workdir, timeout)
    )
    steps("starting the slim server")
    server, cold = stack.enter_context(_server(slim.sandbox, timeout))
    steps("starting the slim model in-process")
    ort_config = {
        "model_path": slim.onnx_path, "tokenizer_path": slim.tokenizer_path,
        "labels": list(slim.labels), "threads": config.threads,
    }  # fmt: skip
    ort_probe = stack.enter_context(
        _probe(slim.sandbox, "ort_probe.py", ort_config, workdir, timeout)
    )
    return _Live(torch_probe, server, cold, ort_probe)


def _collect(
    live: _Live, slim: SlimSpec, data: LabelledData, config: BenchConfig, steps: _Steps
) -> _Raw:
    raw = _Raw()
    texts = list(data.texts)
    steps("scoring the original on the data")
    raw.original_pred = live.torch_probe.request(
        "predict", texts=texts, max_length=slim.max_length, batch_size=_PREDICT_BATCH
    )["labels"]
    steps("scoring the slim server on the data")
    raw.slim_pred = client.predict_all(live.server.url, texts, _PREDICT_BATCH)
    case_texts = _case_texts(live.torch_probe, data, config.cases)
    raw.latency = _alternating_latency(
        live.torch_probe, live.ort_probe, live.server.url, case_texts, config, steps
    )
    steps("throughput in-process")
    largest = max(config.cases, key=lambda c: (c.batch * c.seq, c.batch))
    big, seconds = case_texts[largest.name], config.throughput_seconds
    raw.throughput = (
        _throughput(live.torch_probe, big, largest.seq, seconds),
        _throughput(live.ort_probe, big, largest.seq, seconds),
    )
    steps("HTTP load test")
    single = min(config.cases, key=lambda c: (c.batch, -c.seq))
    raw.load = _load_runs(live.server.url, case_texts[single.name][:1], config)
    steps("reading memory")
    raw.memory = (
        live.torch_probe.request("stats"),
        live.ort_probe.request("stats"),
        live.server.peak_rss_bytes(),
    )
    return raw


def _versions(ready: dict[str, Any]) -> dict[str, str]:
    return {**ready.get("versions", {}), "python": ready.get("python", "")}


def _results(
    live: _Live, raw: _Raw, original: OriginalSpec, slim: SlimSpec, data: LabelledData
) -> Measured:
    labels = tuple(live.torch_probe.ready.get("labels") or slim.labels)
    original_result = SideResult(
        reference=original.reference, sizes=None, runtime="torch", model_path=original.model_dir,
        accuracy=accuracy(raw.original_pred, data.labels, labels),
        cold_start_s=float(live.torch_probe.ready["cold_start_s"]),
        peak_rss_bytes=int(raw.memory[0]["peak_rss_bytes"]),
        latency=raw.latency[0].summaries(), throughput_per_s=raw.throughput[0],
        predictions=tuple(raw.original_pred), versions=_versions(live.torch_probe.ready),
        notes={"load_s": live.torch_probe.ready.get("load_s")},
    )  # fmt: skip
    slim_result = SideResult(
        reference=slim.reference, sizes=None, runtime="onnxruntime", model_path=slim.onnx_path,
        accuracy=accuracy(raw.slim_pred, data.labels, labels),
        cold_start_s=live.slim_cold_start_s, peak_rss_bytes=raw.memory[2],
        latency=raw.latency[1].summaries(), throughput_per_s=raw.throughput[1],
        predictions=tuple(raw.slim_pred), versions=_versions(live.ort_probe.ready),
        http_latency=raw.latency[2].summaries(), load=raw.load,
        notes={
            "inprocess_cold_start_s": live.ort_probe.ready.get("cold_start_s"),
            "inprocess_peak_rss_bytes": raw.memory[1].get("peak_rss_bytes"),
        },
    )  # fmt: skip
    return Measured(
        original_result, slim_result, agreement(raw.original_pred, raw.slim_pred, labels)
    )


def measure(
    original: OriginalSpec,
    slim: SlimSpec,
    data: LabelledData,
    config: BenchConfig,
    workdir: Path,
    progress: ProgressFn,
) -> Measured:
    """Run every measurement of both sides; raise ``BenchError`` when a side cannot run."""
    steps = _Steps(progress, total=8 + config.rounds)
    with ExitStack() as stack:
        live = _start(stack, original, slim, config, workdir, steps)
        raw = _collect(live, slim, data, config, steps)
    steps("done")
    return _results(live, raw, original, slim, data)
