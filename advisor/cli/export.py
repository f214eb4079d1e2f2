"""`advisor export SOURCE`: parse the options, export the model, build the slim image, summarise."""

from __future__ import annotations

import enum
import json
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer

from advisor.cli.app import (
    InsecureOpt,
    PlatformOpt,
    app,
    guarded,
    parse_platform,
    write_output,
)
from advisor.cli.progress import ProgressFn, progress_bar
from advisor.errors import UsageError

if TYPE_CHECKING:
    from advisor.export import ExportResult

Bytecode = Literal["imported", "all", "none"]


class Quantize(enum.StrEnum):
    int8 = "int8"
    none = "none"


class SummaryFormat(enum.StrEnum):
    text = "text"
    json = "json"


class Graph(enum.StrEnum):
    auto = "auto"
    fused = "fused"
    partial = "partial"
    unfused = "unfused"


@app.command("export")
def export_cmd(
    source: Annotated[str, typer.Argument(metavar="SOURCE", help="A local model folder, or an image holding the model.")],
    output: Annotated[str | None, typer.Option("--output", help="Build a slim serving image to this "
                                               "ImageRef (oci:DIR[:TAG], docker-archive:FILE[:REF], docker://...).")] = None,
    artifacts: Annotated[Path | None, typer.Option("--artifacts", help="Write the exported model "
                                                   "(model.onnx, tokenizer.json, labels, validation.json) to DIR.")] = None,
    model_path: Annotated[str | None, typer.Option("--model-path", help="Model folder inside the image "
                                                   "(found automatically when there is one).")] = None,
    base: Annotated[str | None, typer.Option("--base", help="Base image of the serving image "
                                             "(default: docker.io/library/python:3.11-slim).")] = None,
    quantize: Annotated[Quantize, typer.Option("--quantize", help="int8 dynamic quantisation, or none.")] = Quantize.int8,
    optimize: Annotated[bool, typer.Option("--optimize/--no-optimize", help="onnxruntime transformer fusions.")] = True,
    graph: Annotated[Graph, typer.Option("--graph", help="Ship the fused graph, the partially "
                                         "fused one (attention as MatMuls), the unfused one, or "
                                         "time them and keep the fastest (auto).")] = Graph.auto,
    remeasure: Annotated[bool, typer.Option("--remeasure", help="Time the graph race again even "
                                            "when this model's ranking on this CPU is recorded.")] = False,
    data: Annotated[Path | None, typer.Option("--data", help="Labelled CSV (text,label) for the accuracy check.")] = None,
    max_accuracy_drop: Annotated[float, typer.Option("--max-accuracy-drop", help="Points of accuracy int8 "
                                                     "may lose vs fp32 before the export is refused.")] = 1.0,
    limit: Annotated[int | None, typer.Option("--limit", help="Validate on the first N rows of --data.")] = None,
    task: Annotated[str | None, typer.Option("--task", help="text-classification, token-classification "
                                             "or feature-extraction (default: from config.json).")] = None,
    max_length: Annotated[int, typer.Option("--max-length", help="Longest sequence the server accepts.")] = 128,
    port: Annotated[int, typer.Option("--port", help="Port the serving image listens on.")] = 8080,
    bytecode: Annotated[Bytecode, typer.Option("--bytecode", help="Precompile the modules the server "
                                               "imports (faster cold start), all, or none.")] = "imported",
    prune: Annotated[bool, typer.Option("--prune/--no-prune", help="Ship only the wheels' files the "
                                        "server loads (traced by running it; needs the base's "
                                        "Python version here).")] = True,
    label: Annotated[list[str] | None, typer.Option("--label", help="Image label KEY=VALUE (repeatable).")] = None,
    workers: Annotated[int | None, typer.Option("--workers", help="Bake the server's batch workers "
                                                "(default: one per usable core where it runs).")] = None,
    intra_op_threads: Annotated[int | None, typer.Option("--intra-op-threads", help="Bake onnxruntime's "
                                                         "threads per batch (default 1; 0: all cores).")] = None,
    fmt: Annotated[SummaryFormat, typer.Option("--format", "-f", help="Summary format.")] = SummaryFormat.text,
    platform: PlatformOpt = None,
    insecure: InsecureOpt = False,
) -> None:
    """Export the model to ONNX (validated, optimised, int8) and build a slim onnxruntime image."""

    def body() -> None:
        if output is None and artifacts is None:
            raise UsageError("nothing to write", hint="give --output IMAGE, --artifacts DIR, or both")
        from advisor import export
        from advisor.export.race import default_cache

        labels = _labels(label)  # every option checked before the model or the image is read
        job = export.ExportJob(
            source=source, artifacts_dir=artifacts or Path(), model_path=model_path,
            platform=parse_platform(platform), insecure=insecure, task=task, max_length=max_length,
            quantize=quantize.value, optimize=optimize, graph=graph.value, data_csv=data,
            max_accuracy_drop=max_accuracy_drop, limit=limit, race_cache=default_cache(),
            remeasure=remeasure,
        )
        export.check(job)
        summary: dict[str, Any] = {}
        with progress_bar(fmt is not SummaryFormat.json, unit="steps") as progress, \
                tempfile.TemporaryDirectory(prefix="advisor-export-") as tmp:
            out_dir = artifacts if artifacts is not None else Path(tmp) / "artifacts"
            result = export.run(replace(job, artifacts_dir=out_dir,
                                        progress=lambda step, done, total: progress(done, total, step)))
            summary["export"] = _export_summary(result)
            if artifacts is None:  # the temporary folder is gone when this command exits
                summary["export"]["artifacts"] = None
            if output is not None:
                summary["image"] = _build(out_dir, output, progress, base=base, port=port,
                                          insecure=insecure, bytecode=bytecode, prune=prune,
                                          labels=labels, workers=workers,
                                          intra_op_threads=intra_op_threads)
        _print_summary(summary, fmt)

    guarded(body)


def _export_summary(result: ExportResult) -> dict[str, Any]:
    return {
        "artifacts": str(result.artifacts_dir), "task": result.task,
        "architecture": result.architecture, "quantization": result.quantization,
        "optimization": result.optimization, "onnx_sha256": result.onnx_sha256,
        "size_bytes": result.size_bytes, "fp32_accuracy": result.fp32_accuracy,
        "int8_accuracy": result.int8_accuracy, "fused_operators": dict(result.fused_operators),
        "graph": (result.validation.get("graph") or {}).get("shipped"),
        "candidate": (result.validation.get("graph") or {}).get("candidate"),
        "exporter": result.exporter,
        "race": (result.timings.get("race") or {}).get("source"),
    }


def _labels(pairs: list[str] | None) -> dict[str, str]:
    labels: dict[str, str] = {}
    for pair in pairs or ():
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"bad --label '{pair}'", hint="use --label KEY=VALUE")
        labels[key] = value
    return labels


def _build(artifacts: Path, output: str, progress: ProgressFn, *, base: str | None,
           **options: Any) -> dict[str, Any]:
    from advisor import slim

    res = slim.build(slim.BuildConfig(
        artifacts=artifacts, destination=output, base=base or slim.DEFAULT_BASE,
        progress=lambda msg: progress(0, 0, msg), **options,
    ))
    return {
        "destination": res.destination, "manifest_digest": res.manifest_digest,
        "base": res.base, "base_digest": res.base_digest,
        "python": res.target.version_str, "added_size_bytes": res.added_size_bytes,
        "pruned": res.pruned, "pruned_bytes": res.pruned_bytes,
        "layers": [{"name": layer.name, "size_bytes": layer.size_bytes,
                    "compressed_size_bytes": layer.compressed_size_bytes} for layer in res.layers],
    }


def _print_summary(summary: Mapping[str, Any], fmt: SummaryFormat) -> None:
    if fmt is SummaryFormat.json:
        write_output(json.dumps(summary, indent=2, sort_keys=True), None)
        return
    from advisor.units import human_bytes

    ex = summary.get("export")
    if ex:
        acc = ", ".join(f"{k} accuracy {v:.2%}" for k, v in
                        (("fp32", ex["fp32_accuracy"]), ("int8", ex["int8_accuracy"])) if v is not None)
        graph = (f"{'fp32' if ex['quantization'] == 'none' else ex['quantization']}, "
                 f"{ex.get('graph') or 'unfused'} graph")
        where = f" -> {ex['artifacts']}" if ex["artifacts"] else " (into the image only; --artifacts DIR keeps the files)"
        print(f"exported {ex['architecture']} {ex['task']}{where} "
              f"({graph}, {human_bytes(ex['size_bytes'])}"
              f"{', ' + acc if acc else ''})")
    im = summary.get("image")
    if im:
        print(f"built {im['destination']} {im['manifest_digest']} on {im['base']} "
              f"(Python {im['python']}; advisor's layers {human_bytes(im['added_size_bytes'])})")
