"""``export_model``: a model folder in, validated ONNX artifacts out, as a list of named steps.

inspect -> load (torch, eager attention) -> export (legacy TorchScript exporter, see
``advisor.export.exporter``) -> fp32 parity -> fuse + parity -> int8 -> accuracy and the
``max_accuracy_drop`` gate -> artifacts (atomic). Any failed check raises ``ExportError``
(exit 5) and nothing is published.

The shipped graph, fp32 or int8, is the fused one (Attention / QAttention), the unfused one
(MatMul / MatMulInteger everywhere; onnxruntime still applies its own fusions at load) or, by
default, the faster of the two: a candidate 1.25x bigger than the other is dropped, the rest
are timed in turns at batch 1 and 8 (sequence 128) in this process, and for int8 the faster
one that passes the accuracy gate ships. Which wins depends on the model and the CPU (on the
sample model the unfused graph is ~10 % faster at batch 8 and even at batch 1, in fp32 and
int8); the choice and the timings are in validation.json under ``graph``.
"""

from __future__ import annotations

import math
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from advisor.errors import ExportError, MissingDependencyError, UsageError
from advisor.export import artifacts, optimize, validation
from advisor.export.config import ExportConfig, ExportResult
from advisor.export.exporter import Exporter, export_onnx
from advisor.export.source import ModelSource, inspect_model, load_torch_model
from advisor.export.tokenizer import encode, load_serving_tokenizer

STEPS = ("inspect", "load", "export", "validate", "optimize", "quantize", "accuracy", "write")
EXPORTER: Exporter = "legacy"
ACCURACY_BATCH = 32
TIMING_SHAPES = ((1, 128), (8, 128))
TIMING_RUNS = 9
TIMING_SECONDS = 1.0  # per shape, all candidates together
# A candidate this much bigger than the smallest is not shipped, however fast: fusing ALBERT
# copies its shared weights per layer (fp32 2x), quantising its unfused graph leaves them fp32.
SIZE_SLACK = 1.25


@dataclass
class _Candidate:
    """A graph that could ship (fused or unfused, at the shipped precision), its timing, verdict."""

    graph: str  # "fused" | "unfused"
    path: Path
    size_bytes: int
    latency_ms: dict[str, float] = field(default_factory=dict)
    accuracy: float | None = None
    rejected: str = ""

    @property
    def score(self) -> float:
        """Geometric mean of the per-shape fastest runs: each shape weighs the same."""
        values = list(self.latency_ms.values())
        return math.prod(values) ** (1.0 / len(values)) if values else 0.0

    def as_dict(self, chosen: bool) -> dict[str, Any]:
        return {"graph": self.graph, "chosen": chosen, "size_bytes": self.size_bytes,
                "latency_ms": self.latency_ms,
                "accuracy": self.accuracy, "rejected": self.rejected or None}


@dataclass
class _Run:
    """Mutable state of one export while its steps run (never leaves this module)."""

    config: ExportConfig
    work: Path
    source: ModelSource | None = None
    model: Any = None
    tokenizer: Any = None
    raw: Path | None = None
    fused: Path | None = None
    fp32: Path | None = None
    int8: Path | None = None
    candidates: list[_Candidate] = field(default_factory=list)
    graph: str = "unfused"  # the shipped graph
    fused_operators: dict[str, int] = field(default_factory=dict)
    parity: list[validation.ParityReport] = field(default_factory=list)
    accuracy: validation.AccuracyReport | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    onnx_path: Path | None = None
    digest: str = ""

    @property
    def src(self) -> ModelSource:
        assert self.source is not None
        return self.source

    @property
    def max_length(self) -> int:
        return min(self.config.max_length, self.src.max_positions)

    @property
    def vocab(self) -> int:
        return int(self.src.config.get("vocab_size", 1000))

    @property
    def final(self) -> Path:
        final = self.int8 or self.fp32
        assert final is not None
        return final

    @property
    def optimization(self) -> Literal["fused", "none"]:
        """Whether the shipped graph holds the transformer fusions."""
        return "fused" if self.graph == "fused" else "none"


def export_model(config: ExportConfig) -> ExportResult:
    """Export, validate, optimise and quantise ``config.model_dir`` into ``config.artifacts_dir``."""
    if config.quantize not in ("int8", "none"):
        raise ExportError(f"unknown quantisation '{config.quantize}'", hint="use int8 or none")
    if config.graph not in ("auto", "fused", "unfused"):
        raise UsageError(f"unknown graph '{config.graph}'", hint="use auto, fused or unfused")
    if config.graph == "fused" and not config.optimize:
        raise UsageError("--graph fused needs the fused graph, and --no-optimize skips it",
                         hint="drop --no-optimize, or use --graph auto or unfused")
    with tempfile.TemporaryDirectory(prefix="advisor-export-") as work:
        run = _Run(config, Path(work))
        for index, name in enumerate(STEPS):
            config.progress(name, index, len(STEPS))
            started = time.monotonic()
            _STEP_FUNCS[name](run)
            run.timings[name] = round(time.monotonic() - started, 3)
        config.progress("done", len(STEPS), len(STEPS))
        return _result(run)


def _inspect(run: _Run) -> None:
    run.source = inspect_model(run.config.model_dir, run.config.task)
    run.sizes["source_weights"] = sum(
        p.stat().st_size for p in run.config.model_dir.iterdir()
        if p.suffix in (".safetensors", ".bin") and p.is_file())


def _load(run: _Run) -> None:
    try:
        import torch
    except ImportError as e:
        raise MissingDependencyError("torch", "export") from e
    torch.set_num_threads(run.config.threads)
    run.tokenizer = load_serving_tokenizer(run.config.model_dir, run.max_length)
    run.model = load_torch_model(run.src)


def _export(run: _Run) -> None:
    raw = run.work / "raw" / "model.onnx"
    raw.parent.mkdir()
    run.fp32 = run.raw = export_onnx(run.model, run.src.arch, run.src.task, raw, run.config.opset,
                                     run.vocab, EXPORTER)
    run.sizes["onnx_raw"] = _onnx_size(raw)


def _validate(run: _Run) -> None:
    _check(run, "fp32", run.final, enforced=True)


def _optimize(run: _Run) -> None:
    if not run.config.optimize:
        return
    fused = run.work / "fused" / "model.onnx"
    fused.parent.mkdir()
    run.fused_operators = optimize.fuse(run.final, fused, run.src.config, run.src.arch.ort_model_type)
    run.fp32 = run.fused = fused
    run.sizes["onnx_fused"] = _onnx_size(fused)
    _check(run, "fp32-fused", fused, enforced=True)
    if run.config.quantize == "none":
        _race(run, _graphs(run))


def _quantize(run: _Run) -> None:
    if run.config.quantize != "int8":
        return
    quantized = {}
    for graph, src in _graphs(run).items():
        dest = run.work / f"int8-{graph}" / "model.onnx"
        dest.parent.mkdir()
        optimize.quantize_int8(src, dest)
        _check(run, f"int8-{graph}", dest, enforced=False)
        quantized[graph] = dest
    _race(run, quantized)


def _graphs(run: _Run) -> dict[str, Path]:
    """The fp32 graphs the shipped model may come from, as ``--graph`` allows."""
    wanted = run.config.graph
    assert run.raw is not None
    sources = {}
    if wanted in ("auto", "fused") and run.fused is not None:
        sources["fused"] = run.fused
    if wanted in ("auto", "unfused"):
        sources["unfused"] = run.raw
    return sources


def _race(run: _Run, paths: Mapping[str, Path]) -> None:
    """Drop the much bigger candidates, time the rest in turns, ship the fastest (for int8,
    ``_accuracy`` passes over it to the next one if it breaks the gate)."""
    candidates = [_Candidate(graph, path, _onnx_size(path)) for graph, path in paths.items()]
    smallest = min(c.size_bytes for c in candidates)
    for c in candidates:
        if c.size_bytes > SIZE_SLACK * smallest:
            c.rejected = f"{c.size_bytes / smallest:.2f}x the size of the smallest candidate"
    eligible = [c for c in candidates if not c.rejected]
    if len(eligible) > 1:
        _time_candidates(run, eligible)
        eligible.sort(key=lambda c: c.score)
    run.candidates = eligible + [c for c in candidates if c.rejected]
    _choose(run, eligible[0])


def _time_candidates(run: _Run, candidates: list[_Candidate]) -> None:
    sessions = [validation.open_session(c.path, run.config.threads) for c in candidates]
    for batch, seq in TIMING_SHAPES:
        seq = min(seq, run.max_length)
        feeds = validation.full_feeds(run.src.arch, batch, seq, run.vocab)
        fastest = validation.interleaved_ms(sessions, feeds, TIMING_RUNS, TIMING_SECONDS)
        for candidate, ms in zip(candidates, fastest, strict=True):
            candidate.latency_ms[f"b{batch}_s{seq}"] = round(ms, 3)


def _choose(run: _Run, candidate: _Candidate) -> None:
    run.graph = candidate.graph
    if run.config.quantize == "int8":
        run.int8 = candidate.path
        run.sizes["onnx_int8"] = candidate.size_bytes
    else:
        run.fp32 = candidate.path


def _check(run: _Run, variant: str, path: Path, enforced: bool) -> None:
    atol = run.config.atol if run.config.atol is not None else run.src.arch.atol
    session = validation.open_session(path, run.config.threads)
    shapes = [(b, min(s, run.max_length)) for b, s in run.config.shapes]
    report = validation.check_parity(run.model, session, run.src.arch, run.src.task, variant,
                                     shapes, run.vocab, atol, enforced)
    run.parity.append(report)
    if not report.ok:
        failures = report.failures
        more = f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""
        raise ExportError(f"ONNX output parity failed: {'; '.join(failures[:3])}{more}",
                          hint="the exported graph disagrees with torch; re-run with --no-optimize "
                               "or a looser --atol, or report the model")


def _accuracy(run: _Run) -> None:
    data = run.config.data_csv
    if data is None or run.src.task.name != "text-classification":
        return
    texts, golds = validation.read_labelled_csv(data, run.src.labels, run.config.limit)
    # Batch texts of similar length together: padding, not the model, dominates otherwise.
    order = sorted(range(len(texts)), key=lambda i: len(run.tokenizer.encode(texts[i]).ids))
    texts, golds = [texts[i] for i in order], [golds[i] for i in order]
    batches = [encode(run.tokenizer, texts[i : i + ACCURACY_BATCH], run.src.arch.inputs)
               for i in range(0, len(texts), ACCURACY_BATCH)]
    preds = {"torch": validation.predict_torch(run.model, run.src.task, batches)}
    assert run.fp32 is not None
    preds["fp32"] = validation.predict_onnx(validation.open_session(run.fp32, run.config.threads), batches)
    run.accuracy = validation.score(preds, golds, str(data))
    # fastest first: ship the first int8 candidate within the gate, refuse if none is
    eligible = [c for c in run.candidates if not c.rejected] if run.int8 is not None else []
    for candidate in eligible:
        preds["int8"] = validation.predict_onnx(
            validation.open_session(candidate.path, run.config.threads), batches)
        report = validation.score(preds, golds, str(data))
        candidate.accuracy = report.accuracy["int8"]
        drop = 100.0 * (report.accuracy["fp32"] - candidate.accuracy)
        if drop <= run.config.max_accuracy_drop:
            run.accuracy = report
            _choose(run, candidate)
            return
        candidate.rejected = f"{drop:.2f} points below fp32"
    if eligible:
        best = max(eligible, key=lambda c: c.accuracy or 0.0)
        fp32 = run.accuracy.accuracy["fp32"]
        raise ExportError(
            f"int8 accuracy {best.accuracy:.1%} is {100.0 * (fp32 - (best.accuracy or 0.0)):.2f} "
            f"points below fp32 {fp32:.1%} (allowed: {run.config.max_accuracy_drop:g})",
            hint="ship fp32 with --quantize none, or allow more with --max-accuracy-drop")


def _write(run: _Run) -> None:
    cfg = run.config
    info = artifacts.ServingInfo(
        task=run.src.task.name, model_name=cfg.model_name or cfg.model_dir.resolve().name,
        architecture=run.src.arch.model_type, max_length=run.max_length,
        inputs=tuple(run.src.arch.inputs), outputs=(run.src.task.output,),
        quantization=cfg.quantize, optimization=run.optimization)
    run.report = _report(run)
    run.onnx_path, run.digest = artifacts.write_artifacts(
        cfg.artifacts_dir, run.final, run.tokenizer, run.src.labels, info, run.report)


def _report(run: _Run) -> dict[str, Any]:
    """The validation.json document (also ``ExportResult.validation``)."""
    cfg = run.config
    return {
        "schema_version": 1,
        "model": str(cfg.model_dir),
        "task": run.src.task.name,
        "architecture": run.src.arch.model_type,
        "exporter": EXPORTER,
        "opset": cfg.opset,
        "max_length": run.max_length,
        "quantization": cfg.quantize,
        "optimization": run.optimization,
        "graph": _graph_dict(run),
        "parity": [p.as_dict() for p in run.parity],
        "accuracy": run.accuracy.as_dict() if run.accuracy else None,
        "gate": _gate_dict(run),
        "fused_operators": run.fused_operators,
        "operators": optimize.count_ops(run.final),
        "sizes_bytes": dict(sorted(run.sizes.items())),
        "timings_s": dict(run.timings),
    }


def _graph_dict(run: _Run) -> dict[str, Any]:
    return {"shipped": run.graph, "precision": "int8" if run.int8 is not None else "fp32",
            "selection": run.config.graph,
            "candidates": [c.as_dict(c.graph == run.graph) for c in run.candidates]}


def _gate_dict(run: _Run) -> dict[str, Any]:
    acc = run.accuracy.accuracy if run.accuracy else {}
    drop = 100.0 * (acc["fp32"] - acc["int8"]) if "int8" in acc else None
    return {"max_accuracy_drop_points": run.config.max_accuracy_drop,
            "drop_points": None if drop is None else round(drop, 3),
            "checked": drop is not None}


def _onnx_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.parent.iterdir() if p.is_file())


def _result(run: _Run) -> ExportResult:
    assert run.onnx_path is not None
    acc: Mapping[str, float] = run.accuracy.accuracy if run.accuracy else {}
    return ExportResult(
        artifacts_dir=run.onnx_path.parent, onnx_path=run.onnx_path, onnx_sha256=run.digest,
        task=run.src.task.name, architecture=run.src.arch.model_type,
        quantization=run.config.quantize, optimization=run.optimization,
        size_bytes=artifacts.artifact_size(run.onnx_path.parent),
        fp32_accuracy=acc.get("fp32"), int8_accuracy=acc.get("int8"),
        fused_operators=dict(run.fused_operators), validation=run.report)


_STEP_FUNCS = {
    "inspect": _inspect, "load": _load, "export": _export, "validate": _validate,
    "optimize": _optimize, "quantize": _quantize, "accuracy": _accuracy, "write": _write,
}

