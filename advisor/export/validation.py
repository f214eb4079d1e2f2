"""Validation as data: output parity at several shapes, then task accuracy on labelled text.

Parity checks every shape and collects every failure (names, shapes, values beyond atol)
before the pipeline raises, so one run shows all that is wrong. Accuracy compares the torch
model, the fp32 ONNX model and the int8 model on the same encodings of a ``text,label`` CSV:
accuracy against gold labels and agreement of argmaxes with torch.
"""

from __future__ import annotations

import csv
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.errors import BadInputError, ExportError, MissingDependencyError
from advisor.export.exporter import first_line
from advisor.export.specs import GraphSpec


@dataclass(frozen=True)
class ShapeCheck:
    batch: int
    sequence: int
    max_abs_diff: float
    problems: Sequence[str] = ()

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict[str, Any]:
        return {"batch": self.batch, "sequence": self.sequence, "ok": self.ok,
                "max_abs_diff": self.max_abs_diff, "problems": list(self.problems)}


@dataclass(frozen=True)
class ParityReport:
    variant: str
    atol: float
    checks: Sequence[ShapeCheck]
    enforced: bool = True  # int8 is judged by task accuracy, its diffs are informative

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failures(self) -> list[str]:
        return [f"{self.variant} b{c.batch}/s{c.sequence}: {p}" for c in self.checks for p in c.problems]

    def as_dict(self) -> dict[str, Any]:
        return {"variant": self.variant, "atol": self.atol, "enforced": self.enforced,
                "ok": self.ok, "shapes": [c.as_dict() for c in self.checks]}


@dataclass(frozen=True)
class AccuracyReport:
    rows: int
    accuracy: Mapping[str, float]  # variant -> share of gold labels matched
    agreement: Mapping[str, float]  # variant -> share of argmaxes equal to torch's
    data: str = ""
    notes: Sequence[str] = field(default_factory=tuple)

    def as_dict(self) -> dict[str, Any]:
        return {"data": self.data, "rows": self.rows, "accuracy": dict(self.accuracy),
                "agreement_with_torch": dict(self.agreement), "notes": list(self.notes)}


def open_session(path: Path, threads: int, variant: str = "") -> Any:
    """An onnxruntime CPU session that does not spin (so torch timings in-process stay fair);
    ExportError when onnxruntime cannot load the graph (an operator it lacks, a bad shape)."""
    try:
        import onnxruntime as ort
    except ImportError as e:
        raise MissingDependencyError("onnxruntime", "export") from e
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.log_severity_level = 3
    try:
        return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises its own unrelated types
        raise ExportError(f"onnxruntime cannot run the {variant or 'exported'} graph: {first_line(e)}",
                          hint="the graph uses an operator or shape onnxruntime's CPU provider "
                               "lacks") from e


def random_feeds(inputs: Sequence[str], batch: int, sequence: int, vocab: int,
                 seed: int) -> dict[str, Any]:
    """Token ids with per-row padding, so masks that matter are part of the check."""
    import numpy as np

    rng = np.random.default_rng(seed)
    ids = rng.integers(5, max(6, vocab), size=(batch, sequence), dtype=np.int64)
    mask = np.ones((batch, sequence), dtype=np.int64)
    for row in range(1, batch):
        mask[row, max(1, sequence - row * sequence // (2 * batch)):] = 0
    types = np.zeros((batch, sequence), dtype=np.int64)
    feeds = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    return {name: feeds[name] for name in inputs}


def full_feeds(inputs: Sequence[str], batch: int, sequence: int, vocab: int) -> dict[str, Any]:
    """Unpadded token ids: a packed batch, what latency is timed on."""
    feeds = random_feeds(inputs, batch, sequence, vocab, seed=batch * 1000 + sequence)
    if "attention_mask" in feeds:
        feeds["attention_mask"][:] = 1
    return feeds


def interleaved_ms(sessions: Sequence[Any], feeds: Mapping[str, Any], runs: int,
                   min_seconds: float = 0.0, warmup: int = 2) -> list[float]:
    """Fastest wall milliseconds of ``session.run`` per session, timed in turns.

    Runs alternate between the sessions (A B A B ...), so a noisy neighbour or a CPU-frequency
    change slows every candidate alike instead of whichever happened to run then; at least
    ``runs`` turns, and more until ``min_seconds`` have passed. The fastest run, not the
    median, is kept: the work is deterministic and load only ever adds time. On this shared VM
    one export timed two graphs that run equally fast (best 17.2 and 17.3 ms in the benchmark)
    at medians of 20.5 and 26.1 ms, and shipped the wrong one.
    """
    import time

    for session in sessions:
        for _ in range(warmup):
            session.run(None, feeds)
    samples: list[list[float]] = [[] for _ in sessions]
    deadline = time.perf_counter() + min_seconds
    while len(samples[0]) < runs or time.perf_counter() < deadline:
        for i, session in enumerate(sessions):
            started = time.perf_counter()
            session.run(None, feeds)
            samples[i].append((time.perf_counter() - started) * 1000.0)
    return [min(s) for s in samples]


def torch_outputs(model: Any, output: str, feeds: Mapping[str, Any]) -> Any:
    import torch

    with torch.inference_mode():
        out = model(**{k: torch.from_numpy(v) for k, v in feeds.items()}, return_dict=True)
    return out[output].float().numpy()


def check_parity(model: Any, session: Any, spec: GraphSpec, variant: str,
                 shapes: Sequence[tuple[int, int]], vocab: int, atol: float,
                 enforced: bool = True) -> ParityReport:
    names = [o.name for o in session.get_outputs()]
    inputs = [i.name for i in session.get_inputs()]
    checks = []
    for i, (batch, seq) in enumerate(shapes):
        problems: list[str] = []
        if names != [spec.output]:
            problems.append(f"outputs {names} != expected {[spec.output]}")
        if sorted(inputs) != sorted(spec.inputs):
            problems.append(f"inputs {inputs} != expected {list(spec.inputs)}")
            checks.append(ShapeCheck(batch, seq, float("inf"), tuple(problems)))
            continue
        feeds = random_feeds(spec.inputs, batch, seq, vocab, seed=i)
        ref = torch_outputs(model, spec.output, feeds)
        try:
            got = session.run(None, feeds)[0]
        except Exception as e:  # onnxruntime's own error types
            checks.append(ShapeCheck(batch, seq, float("inf"), (f"onnxruntime failed: {first_line(e)}",)))
            continue
        diff = float(abs(got - ref).max()) if got.shape == ref.shape else float("inf")
        if got.shape != ref.shape:
            problems.append(f"shape {list(got.shape)} != torch {list(ref.shape)}")
        elif enforced and not diff <= atol:
            problems.append(f"max abs diff {diff:.3g} > atol {atol:g}")
        checks.append(ShapeCheck(batch, seq, diff, tuple(problems)))
    return ParityReport(variant, atol, tuple(checks), enforced)


def read_labelled_csv(path: Path, labels: Sequence[str], limit: int | None) -> tuple[list[str], list[int]]:
    """``text,label`` rows; a label is a class index or one of the model's label names."""
    index = {name: i for i, name in enumerate(labels)}
    texts: list[str] = []
    golds: list[int] = []
    try:
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            if not reader.fieldnames or not {"text", "label"} <= set(reader.fieldnames):
                raise BadInputError(f"{path} has no text,label header",
                                    hint="the data CSV needs columns text,label")
            for row in reader:
                if limit is not None and len(texts) >= limit:
                    break
                texts.append(row["text"])
                golds.append(_label_index(row["label"], index, path))
    except OSError as e:
        raise BadInputError(f"cannot read {path}: {e}", hint="check the --data path") from e
    if not texts:
        raise BadInputError(f"{path} has no rows", hint="the data CSV needs labelled rows")
    return texts, golds


def calibration_texts(path: Path, count: int, limit: int | None) -> tuple[list[str], list[int]]:
    """Up to ``count`` texts to calibrate static int8 on, and their row numbers: the rows after
    the first ``limit`` (those the accuracy check scores) when the file has them, else the first."""
    try:
        with path.open(newline="", encoding="utf-8") as f:
            texts = [row.get("text") or "" for row in csv.DictReader(f)]
    except OSError as e:
        raise BadInputError(f"cannot read {path}: {e}", hint="check the --data path") from e
    start = limit if limit is not None and len(texts) - limit >= min(count, 32) else 0
    chosen = texts[start : start + count]
    return chosen, list(range(start, start + len(chosen)))


def _label_index(value: str, index: Mapping[str, int], path: Path) -> int:
    value = value.strip()
    if value.lstrip("-").isdigit():
        return int(value)
    if value in index:
        return index[value]
    raise BadInputError(f"{path}: label '{value}' is neither an index nor one of {sorted(index)}",
                        hint="labels must match the model's id2label")


def predict_onnx(session: Any, batches: Sequence[Mapping[str, Any]]) -> list[int]:
    preds: list[int] = []
    for feeds in batches:
        preds.extend(int(p) for p in session.run(None, dict(feeds))[0].argmax(-1))
    return preds


def predict_torch(model: Any, output: str, batches: Sequence[Mapping[str, Any]]) -> list[int]:
    preds: list[int] = []
    for feeds in batches:
        preds.extend(int(p) for p in torch_outputs(model, output, feeds).argmax(-1))
    return preds


def score(preds: Mapping[str, Sequence[int]], golds: Sequence[int], data: str) -> AccuracyReport:
    n = len(golds)
    ref = preds["torch"]
    accuracy = {v: sum(int(a == b) for a, b in zip(p, golds, strict=True)) / n for v, p in preds.items()}
    agreement = {v: sum(int(a == b) for a, b in zip(p, ref, strict=True)) / n
                 for v, p in preds.items() if v != "torch"}
    return AccuracyReport(n, dict(sorted(accuracy.items())), dict(sorted(agreement.items())), data)
