"""The export's inputs and outputs as frozen dataclasses (no heavy imports here)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

Quantize = Literal["int8", "none"]
# Which graph ships (quantised or not): the fused one, the partially fused one (attention left
# as MatMuls, LayerNorm / Gelu / embeddings fused), the unfused one, or "auto": all are timed
# and the fastest kept. Fused attention wins at batch 1 on some models, MatMul attention at
# batch 8 on others (benchmarks/export/report.md).
Graph = Literal["auto", "fused", "partial", "unfused"]
Optimization = Literal["fused", "partial", "none"]

# progress(step, done, total): the CLI draws it; ``done == total`` closes the step.
ProgressFn = Callable[[str, int, int], None]

# (batch, sequence) shapes every fp32 export is checked at.
DEFAULT_SHAPES: tuple[tuple[int, int], ...] = ((1, 8), (2, 32), (4, 128))


def no_progress(step: str, done: int, total: int) -> None:
    """The default progress callback: does nothing."""


@dataclass(frozen=True)
class ExportConfig:
    """Everything ``export_model`` needs; the CLI builds one from its options."""

    model_dir: Path  # a Hugging Face model folder (config.json, weights, tokenizer)
    artifacts_dir: Path  # written atomically (see ARTIFACTS CONTRACT in the module docs)
    task: str | None = None  # None: from config.json "architectures"
    opset: int = 17
    max_length: int = 128
    quantize: Quantize = "int8"
    optimize: bool = True
    graph: Graph = "auto"
    data_csv: Path | None = None  # labelled ``text,label`` CSV for the accuracy check
    max_accuracy_drop: float = 1.0  # points (percent) int8 may lose vs fp32
    atol: float | None = None  # None: the architecture's spec
    limit: int | None = None  # validate on the first N rows of data_csv only
    shapes: Sequence[tuple[int, int]] = DEFAULT_SHAPES
    threads: int = 2
    model_name: str | None = None  # serving.json "model_name"; default: folder name
    static_int8: bool = True  # race a statically calibrated (QDQ) int8 candidate (needs data_csv)
    # Where the graph race's rankings are recorded (advisor.export.race); None: time every run.
    race_cache: Path | None = None
    remeasure: bool = False  # time the race again even when a ranking is recorded
    progress: ProgressFn = field(default=no_progress, compare=False, repr=False)


@dataclass(frozen=True)
class ExportResult:
    artifacts_dir: Path
    onnx_path: Path
    onnx_sha256: str
    task: str
    architecture: str
    quantization: Quantize
    optimization: Optimization
    size_bytes: int  # model.onnx plus its external data file, if any
    fp32_accuracy: float | None
    int8_accuracy: float | None
    fused_operators: Mapping[str, int]
    validation: Mapping[str, Any]  # the content of validation.json (the same for the same inputs)
    timings: Mapping[str, Any] = field(default_factory=dict)  # timings.json (differs per run)
    exporter: str = ""  # the exporter whose graph shipped ("legacy" | "dynamo")
