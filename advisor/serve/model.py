"""Load an artifacts directory (the export contract) and classify texts with onnxruntime.

Artifacts: ``model.onnx`` (optionally with external ``.onnx.data``), ``tokenizer.json``,
``labels.json`` and ``serving.json``. Nothing here needs torch or transformers.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

SUPPORTED_TASKS = ("text-classification",)


class ModelError(RuntimeError):
    """The artifacts directory is missing a file or does not match the contract."""


@dataclass(frozen=True, slots=True)
class ModelInfo:
    """What ``/metadata`` reports, from ``serving.json`` and ``labels.json``."""

    model_name: str
    task: str
    architecture: str
    labels: tuple[str, ...]
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    max_length: int
    onnx_file: str
    onnx_sha256: str
    quantization: str
    advisor_version: str


@dataclass(frozen=True, slots=True)
class Prediction:
    label: str
    score: float
    scores: dict[str, float]


def read_info(model_dir: str) -> ModelInfo:
    """Parse ``serving.json`` and ``labels.json``; refuse what the server cannot serve."""
    serving = _read_json(os.path.join(model_dir, "serving.json"))
    labels = _read_json(os.path.join(model_dir, "labels.json"))
    if not isinstance(serving, dict) or serving.get("schema_version") != 1:
        raise ModelError("serving.json: expected an object with schema_version 1")
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ModelError("labels.json: expected a JSON list of label names")
    task = str(serving.get("task", ""))
    if task not in SUPPORTED_TASKS:
        raise ModelError(
            f"serving.json: task {task!r} is not served (supported: {SUPPORTED_TASKS})"
        )
    if not labels:
        raise ModelError("labels.json: a text-classification model needs at least one label")
    return ModelInfo(
        model_name=str(serving.get("model_name", "")),
        task=task,
        architecture=str(serving.get("architecture", "")),
        labels=tuple(labels),
        inputs=tuple(str(x) for x in serving.get("inputs", ["input_ids", "attention_mask"])),
        outputs=tuple(str(x) for x in serving.get("outputs", ["logits"])),
        max_length=int(serving.get("max_length", 512)),
        onnx_file=str(serving.get("onnx_file", "model.onnx")),
        onnx_sha256=str(serving.get("onnx_sha256", "")),
        quantization=str(serving.get("quantization", "none")),
        advisor_version=str(serving.get("advisor_version", "")),
    )


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as e:
        raise ModelError(f"missing {os.path.basename(path)} in {os.path.dirname(path)}") from e
    except json.JSONDecodeError as e:
        raise ModelError(f"{os.path.basename(path)} is not valid JSON: {e}") from e


class Classifier:
    """A tokenizer and an onnxruntime session; ``predict`` is safe to call from many threads."""

    def __init__(self, model_dir: str, intra_op_threads: int = 0) -> None:
        self.info = read_info(model_dir)
        self._tokenizer = _load_tokenizer(os.path.join(model_dir, "tokenizer.json"), self.info)
        self._session = _load_session(
            os.path.join(model_dir, self.info.onnx_file), intra_op_threads
        )
        names = {i.name for i in self._session.get_inputs()}
        missing = [n for n in self.info.inputs if n not in names]
        if missing:
            raise ModelError(
                f"model.onnx has no input(s) {missing}; serving.json names {list(self.info.inputs)}"
            )
        self._feeds = tuple(n for n in self.info.inputs if n in names)

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        if not texts:
            return []
        logits = self.logits(texts)
        return [self._to_prediction(row) for row in _softmax(logits)]

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(list(texts))
        feeds = _feeds(encodings, self._feeds)
        (out,) = self._session.run([self.info.outputs[0]], feeds)
        return np.asarray(out, dtype=np.float32)

    def _to_prediction(self, probs: np.ndarray) -> Prediction:
        best = int(np.argmax(probs))
        scores = {label: float(probs[i]) for i, label in enumerate(self.info.labels)}
        return Prediction(label=self.info.labels[best], score=float(probs[best]), scores=scores)


def _load_tokenizer(path: str, info: ModelInfo) -> Any:
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(path)
    except Exception as e:  # tokenizers raises its own Exception type
        raise ModelError(f"cannot load {path}: {e}") from e
    tok.enable_truncation(max_length=info.max_length)
    pad_id = tok.token_to_id("[PAD]")
    padding = tok.padding or {}
    tok.enable_padding(
        pad_id=int(padding.get("pad_id", pad_id if pad_id is not None else 0)),
        pad_token=str(padding.get("pad_token", "[PAD]")),
    )
    return tok


def _load_session(path: str, intra_op_threads: int) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = intra_op_threads
    opts.inter_op_num_threads = 1
    # Spinning threads burn the cores other request threads need between runs.
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    if not os.path.exists(path):
        raise ModelError(f"missing {os.path.basename(path)} in {os.path.dirname(path)}")
    try:
        return ort.InferenceSession(path, sess_options=opts, providers=["CPUExecutionProvider"])
    except Exception as e:  # onnxruntime raises several unrelated types
        raise ModelError(f"onnxruntime cannot load {path}: {e}") from e


def _feeds(encodings: Sequence[Any], names: Sequence[str]) -> dict[str, np.ndarray]:
    columns = {
        "input_ids": [e.ids for e in encodings],
        "attention_mask": [e.attention_mask for e in encodings],
        "token_type_ids": [e.type_ids for e in encodings],
    }
    return {n: np.asarray(columns[n], dtype=np.int64) for n in names if n in columns}


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    result: np.ndarray = exp / exp.sum(axis=-1, keepdims=True)
    return result
