"""``export_model``: a model folder in, validated ONNX artifacts out, as a list of named steps.

inspect (the verdict of ``specs.judge``) -> load (torch, eager attention; the graph's inputs
derived from the model and its tokenizer) -> export (the spec's exporters in order, the first
whose graph onnxruntime runs within tolerance of torch ships) -> fuse + parity -> int8
(dynamic for every graph, static QDQ calibrated on the labelled data) -> the graph race
(``advisor.export.race``: decided once per model digest and CPU) -> accuracy and the
``max_accuracy_drop`` gate -> artifacts (atomic). Any failed check raises ``ExportError``
(exit 5) and nothing is published.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from advisor.errors import ExportError, MissingDependencyError, UsageError
from advisor.export import artifacts, optimize, race, validation
from advisor.export.config import ExportConfig, ExportResult, Optimization
from advisor.export.exporter import export_onnx, graph_inputs
from advisor.export.race import Candidate, Ranking
from advisor.export.signature import derive_graph
from advisor.export.source import ModelSource, inspect_model, load_torch_model
from advisor.export.specs import GraphSpec
from advisor.export.tokenizer import encode, load_serving_tokenizer

STEPS = ("inspect", "load", "export", "optimize", "quantize", "accuracy", "write")
ACCURACY_BATCH = 32
CALIBRATION_ROWS = 256  # labelled rows whose activations set the static int8 ranges
CALIBRATION_BATCH = 8


@dataclass
class _Run:
    """Mutable state of one export while its steps run (never leaves this module)."""

    config: ExportConfig
    work: Path
    source: ModelSource | None = None
    model: Any = None
    tokenizer: Any = None
    spec: GraphSpec | None = None
    exporter: str = ""
    attempts: list[dict[str, Any]] = field(default_factory=list)
    raw: Path | None = None
    fused: Path | None = None
    partial: Path | None = None
    fusion: dict[str, Any] = field(default_factory=dict)
    candidates: list[Candidate] = field(default_factory=list)
    ranking: Ranking | None = None
    shipped: Candidate | None = None
    calibration: dict[str, Any] | None = None
    parity: list[validation.ParityReport] = field(default_factory=list)
    accuracy: validation.AccuracyReport | None = None
    sizes: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    report: dict[str, Any] = field(default_factory=dict)
    timing_report: dict[str, Any] = field(default_factory=dict)
    onnx_path: Path | None = None
    digest: str = ""

    @property
    def src(self) -> ModelSource:
        assert self.source is not None
        return self.source

    @property
    def graph(self) -> GraphSpec:
        assert self.spec is not None
        return self.spec

    @property
    def max_length(self) -> int:
        return min(self.config.max_length, self.src.max_positions)

    @property
    def final(self) -> Path:
        assert self.shipped is not None
        return self.shipped.path

    @property
    def optimization(self) -> Optimization:
        """Which transformer fusions the shipped graph holds."""
        graph = self.shipped.graph if self.shipped is not None else "unfused"
        return "fused" if graph == "fused" else "partial" if graph == "partial" else "none"


def export_model(config: ExportConfig) -> ExportResult:
    """Export, validate, optimise and quantise ``config.model_dir`` into ``config.artifacts_dir``."""
    if config.quantize not in ("int8", "none"):
        raise ExportError(f"unknown quantisation '{config.quantize}'", hint="use int8 or none")
    if config.graph not in ("auto", "fused", "partial", "unfused"):
        raise UsageError(f"unknown graph '{config.graph}'",
                         hint="use auto, fused, partial or unfused")
    if config.graph in ("fused", "partial") and not config.optimize:
        raise UsageError(f"--graph {config.graph} needs fusion, and --no-optimize skips it",
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
        p.stat().st_size for p in run.src.path.iterdir()
        if p.suffix in (".safetensors", ".bin") and p.is_file())


def _load(run: _Run) -> None:
    try:
        import torch
    except ImportError as e:
        raise MissingDependencyError("torch", "export") from e
    torch.set_num_threads(run.config.threads)
    run.tokenizer = load_serving_tokenizer(run.src.path, run.max_length)
    run.model = load_torch_model(run.src)
    run.spec = derive_graph(run.model, run.src.path, run.src.arch.model_type, run.src.task)


def _export(run: _Run) -> None:
    """The spec's exporters in order; the first graph onnxruntime runs within tolerance ships."""
    errors = []
    for exporter in run.src.arch.exporters:
        dest = run.work / f"raw-{exporter}" / "model.onnx"
        dest.parent.mkdir()
        try:
            export_onnx(run.model, run.graph, dest, run.config.opset, run.src.vocab, exporter)
            taken = graph_inputs(dest)
            spec = replace(run.graph, inputs=tuple(n for n in run.graph.inputs if n in taken))
            report = _parity(run, spec, "fp32", dest, enforced=True)
        except ExportError as e:
            run.attempts.append({"exporter": exporter, "ok": False, "error": str(e)})
            errors.append(f"{exporter}: {e}")
            continue
        run.attempts.append({"exporter": exporter, "ok": True, "error": None})
        run.exporter, run.spec, run.raw = exporter, spec, dest
        run.parity.append(report)
        run.sizes["onnx_raw"] = _onnx_size(dest)
        return
    raise ExportError(f"cannot export this {run.src.arch.model_type} model: {'; '.join(errors)}",
                      hint="re-run with --debug for the exporter's trace, or report the model")


def _optimize(run: _Run) -> None:
    ort_type = run.src.arch.ort_model_type
    if not run.config.optimize:
        run.fusion = {"applied": False, "reason": "--no-optimize"}
    elif ort_type is None:
        run.fusion = {"applied": False, "reason": "onnxruntime's transformer optimizer has no "
                      f"fusion for {run.src.arch.model_type}"}
    else:
        _fuse(run, ort_type)
    wanted = run.config.graph
    if (wanted == "fused" and run.fused is None) or (wanted == "partial" and run.partial is None):
        why = run.fusion.get("reason") or "no attention was fused, so no partial graph differs"
        raise ExportError(f"no {wanted} graph for this {run.src.arch.model_type} model: {why}",
                          hint="use --graph auto or unfused")
    if run.config.quantize == "none":
        _race(run, [Candidate(g, g, "none", p, _onnx_size(p)) for g, p in _graphs(run).items()])


def _fuse(run: _Run, ort_type: str) -> None:
    """The fused graph, or a recorded reason why there is none (the unfused one still ships)."""
    assert run.raw is not None
    fused = run.work / "fused" / "model.onnx"
    fused.parent.mkdir()
    try:
        operators = optimize.fuse(run.raw, fused, run.src.config, ort_type)
        if not operators:
            raise ExportError(f"onnxruntime's optimizer ({ort_type}) fused nothing in this "
                              f"{run.src.arch.model_type} graph", hint="")
        report = _parity(run, run.graph, "fp32-fused", fused, enforced=True)
    except ExportError as e:
        if run.config.graph in ("fused", "partial"):
            raise
        run.fusion = {"applied": False, "reason": str(e)}
        return
    run.parity.append(report)
    run.fused = fused
    run.fusion = {"applied": True, "model_type": ort_type, "operators": operators}
    run.sizes["onnx_fused"] = _onnx_size(fused)
    if "Attention" in operators and run.config.graph in ("auto", "partial"):
        _fuse_partial(run, ort_type)


def _fuse_partial(run: _Run, ort_type: str) -> None:
    """The fused graph without the Attention fusion: on some CPUs fused attention is slower at
    batch 8 than MatMul attention, while the LayerNorm / Gelu fusions still pay."""
    assert run.raw is not None
    partial = run.work / "partial" / "model.onnx"
    partial.parent.mkdir()
    try:
        operators = optimize.fuse(run.raw, partial, run.src.config, ort_type, attention=False)
        report = _parity(run, run.graph, "fp32-partial", partial, enforced=True)
    except ExportError as e:
        if run.config.graph == "partial":
            raise
        run.fusion["partial"] = {"applied": False, "reason": str(e)}
        return
    run.parity.append(report)
    run.partial = partial
    run.fusion["partial"] = {"applied": True, "operators": operators}


def _quantize(run: _Run) -> None:
    if run.config.quantize != "int8":
        return
    candidates = []
    for graph, src in _graphs(run).items():
        dest = run.work / f"int8-{graph}" / "model.onnx"
        dest.parent.mkdir()
        optimize.quantize_int8(src, dest)
        run.parity.append(_parity(run, run.graph, f"int8-{graph}", dest, enforced=False))
        candidates.append(Candidate(graph, graph, "dynamic", dest, _onnx_size(dest)))
    static = _static_candidate(run)
    if static is not None:
        candidates.append(static)
    _race(run, candidates)


def _static_candidate(run: _Run) -> Candidate | None:
    """Static QDQ int8 of the unfused graph, calibrated on labelled rows (needs the gate's data)."""
    cfg = run.config
    if cfg.data_csv is None or run.src.task.name != "text-classification" or not cfg.static_int8:
        return None
    if cfg.graph not in ("auto", "unfused"):
        return None
    assert run.raw is not None
    texts, rows = validation.calibration_texts(cfg.data_csv, CALIBRATION_ROWS, cfg.limit)
    batches = [encode(run.tokenizer, texts[i : i + CALIBRATION_BATCH], run.graph.inputs,
                      pad_to=run.max_length)
               for i in range(0, len(texts), CALIBRATION_BATCH)]
    run.calibration = {"rows": len(texts), "first_row": rows[0], "method": optimize.CALIBRATION_NAME,
                       "disjoint_from_accuracy": cfg.limit is not None and rows[0] >= cfg.limit}
    dest = run.work / "int8-unfused-static" / "model.onnx"
    dest.parent.mkdir()
    try:
        optimize.quantize_int8_static(run.raw, dest, batches)
    except ExportError as e:
        run.calibration["error"] = str(e)
        return None
    run.parity.append(_parity(run, run.graph, "int8-unfused-static", dest, enforced=False))
    return Candidate("unfused-static", "unfused", "static", dest, _onnx_size(dest))


def _graphs(run: _Run) -> dict[str, Path]:
    """The fp32 graphs the shipped model may come from, as ``--graph`` allows."""
    wanted = run.config.graph
    assert run.raw is not None
    sources = {}
    if wanted in ("auto", "fused") and run.fused is not None:
        sources["fused"] = run.fused
    if wanted in ("auto", "partial") and run.partial is not None:
        sources["partial"] = run.partial
    if wanted in ("auto", "unfused"):
        sources["unfused"] = run.raw
    return sources


def _race(run: _Run, candidates: list[Candidate]) -> None:
    """Drop the much bigger candidates, rank the rest fastest first (recorded per model digest
    and CPU), ship the first (for int8, ``_accuracy`` passes over those that break the gate)."""
    eligible = race.drop_oversized(candidates)
    cache = run.config.race_cache
    key = race.decision_key(run.config.model_dir, _settings(run), run.config.threads)
    run.ranking = race.rank(eligible, key, cache, run.config.remeasure,
                            lambda cs: _time_candidates(run, cs))
    run.candidates = eligible + [c for c in candidates if c.rejected]
    _choose(run, eligible[0])


def _settings(run: _Run) -> dict[str, Any]:
    """The export settings that shape the candidates (part of the race's decision key)."""
    cfg = run.config
    data = artifacts.sha256_file(cfg.data_csv) if cfg.data_csv is not None else None
    return {"task": run.src.task.name, "opset": cfg.opset, "max_length": run.max_length,
            "quantize": cfg.quantize, "optimize": cfg.optimize, "graph": cfg.graph,
            "static_int8": cfg.static_int8, "data_sha256": data, "limit": cfg.limit}


def _time_candidates(run: _Run, candidates: list[Candidate]) -> None:
    sessions = [validation.open_session(c.path, run.config.threads) for c in candidates]
    for batch, seq in race.TIMING_SHAPES:
        seq = min(seq, run.max_length)
        feeds = validation.full_feeds(run.graph.inputs, batch, seq, run.src.vocab)
        fastest = validation.interleaved_ms(sessions, feeds, race.TIMING_RUNS, race.TIMING_SECONDS)
        for candidate, ms in zip(candidates, fastest, strict=True):
            candidate.latency_ms[f"b{batch}_s{seq}"] = round(ms, 3)


def _choose(run: _Run, candidate: Candidate) -> None:
    run.shipped = candidate
    key = "onnx_int8" if run.config.quantize == "int8" else "onnx_shipped"
    run.sizes[key] = candidate.size_bytes


def _parity(run: _Run, spec: GraphSpec, variant: str, path: Path,
            enforced: bool) -> validation.ParityReport:
    """Parity of ``path`` with torch at the configured shapes; ExportError if enforced and off."""
    atol = run.config.atol if run.config.atol is not None else run.src.arch.atol
    session = validation.open_session(path, run.config.threads, variant)
    shapes = [(b, min(s, run.max_length)) for b, s in run.config.shapes]
    report = validation.check_parity(run.model, session, spec, variant, shapes, run.src.vocab,
                                     atol, enforced)
    if not report.ok:
        failures = report.failures
        more = f" (+{len(failures) - 3} more)" if len(failures) > 3 else ""
        raise ExportError(f"ONNX output parity failed: {'; '.join(failures[:3])}{more}",
                          hint="the exported graph disagrees with torch; re-run with --no-optimize "
                               "or a looser --atol, or report the model")
    return report


def _accuracy(run: _Run) -> None:
    data = run.config.data_csv
    if data is None or run.src.task.name != "text-classification":
        return
    texts, golds = validation.read_labelled_csv(data, run.src.labels, run.config.limit)
    # Batch texts of similar length together: padding, not the model, dominates otherwise.
    order = sorted(range(len(texts)), key=lambda i: len(run.tokenizer.encode(texts[i]).ids))
    texts, golds = [texts[i] for i in order], [golds[i] for i in order]
    batches = [encode(run.tokenizer, texts[i : i + ACCURACY_BATCH], run.graph.inputs)
               for i in range(0, len(texts), ACCURACY_BATCH)]
    preds = {"torch": validation.predict_torch(run.model, run.graph.output, batches)}
    fp32 = run.fused if run.fused is not None and run.config.graph != "unfused" else run.raw
    if run.config.quantize == "none":
        fp32 = run.final
    assert fp32 is not None
    preds["fp32"] = validation.predict_onnx(validation.open_session(fp32, run.config.threads), batches)
    label = _data_label(data)
    run.accuracy = validation.score(preds, golds, label)
    if run.config.quantize == "int8":
        _gate(run, preds, golds, batches, label)


def _gate(run: _Run, preds: dict[str, list[int]], golds: list[int],
          batches: list[dict[str, Any]], label: str) -> None:
    """Fastest first: ship the first int8 candidate within the gate, refuse if none is."""
    assert run.accuracy is not None
    eligible = [c for c in run.candidates if not c.rejected]
    for candidate in eligible:
        preds["int8"] = validation.predict_onnx(
            validation.open_session(candidate.path, run.config.threads), batches)
        report = validation.score(preds, golds, label)
        candidate.accuracy = report.accuracy["int8"]
        drop = 100.0 * (report.accuracy["fp32"] - candidate.accuracy)
        if drop <= run.config.max_accuracy_drop:
            run.accuracy = report
            _choose(run, candidate)
            return
        candidate.rejected = f"{drop:.2f} points below fp32"
    best = max(eligible, key=lambda c: c.accuracy or 0.0)
    fp32 = run.accuracy.accuracy["fp32"]
    raise ExportError(
        f"int8 accuracy {best.accuracy:.1%} is {100.0 * (fp32 - (best.accuracy or 0.0)):.2f} "
        f"points below fp32 {fp32:.1%} (allowed: {run.config.max_accuracy_drop:g})",
        hint="ship fp32 with --quantize none, or allow more with --max-accuracy-drop")


def _data_label(data: Path) -> str:
    """The data set as validation.json names it: file name and content digest, not its path."""
    return f"{data.name} (sha256 {artifacts.sha256_file(data)[:16]})"


def _write(run: _Run) -> None:
    cfg = run.config
    info = artifacts.ServingInfo(
        task=run.src.task.name, model_name=_model_name(run),
        architecture=run.src.arch.model_type, max_length=run.max_length,
        inputs=tuple(run.graph.inputs), outputs=(run.graph.output,),
        quantization=cfg.quantize, optimization=run.optimization,
        pooling=run.src.pooling.as_dict() if run.src.pooling else None)
    run.report = _report(run)
    run.timing_report = _timing_report(run)
    run.onnx_path, run.digest = artifacts.write_artifacts(
        cfg.artifacts_dir, run.final, run.tokenizer, run.src.labels, info, run.report,
        run.timing_report)


def _model_name(run: _Run) -> str:
    return run.config.model_name or run.config.model_dir.resolve().name


def _report(run: _Run) -> dict[str, Any]:
    """The validation.json document (also ``ExportResult.validation``): the same for the same
    inputs, so it can ship in the image (timings are in timings.json)."""
    cfg = run.config
    return {
        "schema_version": 1,
        "model": _model_name(run),
        "task": run.src.task.name,
        "architecture": run.src.arch.model_type,
        "exporter": run.exporter,
        "exporter_attempts": run.attempts,
        "inputs": {"names": list(run.graph.inputs), "derived_from": run.graph.inputs_from},
        "opset": cfg.opset,
        "max_length": run.max_length,
        "quantization": cfg.quantize,
        "optimization": run.optimization,
        "graph": _graph_dict(run),
        "fusion": run.fusion,
        "calibration": run.calibration,
        "pooling": run.src.pooling.as_dict() if run.src.pooling else None,
        "parity": [p.as_dict() for p in run.parity],
        "accuracy": run.accuracy.as_dict() if run.accuracy else None,
        "gate": _gate_dict(run),
        "fused_operators": run.fusion.get("operators", {}),
        "operators": optimize.count_ops(run.final),
        "sizes_bytes": dict(sorted(run.sizes.items())),
    }


def _timing_report(run: _Run) -> dict[str, Any]:
    """timings.json: what differs from run to run (not shipped in the image)."""
    ranking = run.ranking
    return {"schema_version": 1, "steps_s": dict(run.timings),
            "race": {"source": ranking.source if ranking else None,
                     "key": ranking.key if ranking else None,
                     "latency_ms": {c.name: dict(c.latency_ms) for c in run.candidates
                                    if c.latency_ms}}}


def _graph_dict(run: _Run) -> dict[str, Any]:
    assert run.shipped is not None and run.ranking is not None
    order = list(run.ranking.order)
    return {"shipped": run.shipped.graph, "candidate": run.shipped.name,
            "quantization": run.shipped.quantization,
            "precision": "int8" if run.config.quantize == "int8" else "fp32",
            "selection": run.config.graph, "decision_key": run.ranking.key,
            "candidates": [c.as_dict(c is run.shipped, order.index(c.name) if c.name in order else None)
                           for c in run.candidates]}


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
        fused_operators=dict(run.fusion.get("operators", {})), validation=run.report,
        timings=run.timing_report, exporter=run.exporter)


_STEP_FUNCS = {
    "inspect": _inspect, "load": _load, "export": _export, "optimize": _optimize,
    "quantize": _quantize, "accuracy": _accuracy, "write": _write,
}
