"""Load an artifacts directory (the export contract) and run its task with onnxruntime.

Artifacts: ``model.onnx`` (optionally with external ``.onnx.data``), ``tokenizer.json``,
``labels.json`` and ``serving.json``. Nothing here needs torch or transformers.

A ``Model`` tokenizes and runs the graph; its ``TaskHead`` (one per ``serving.json`` task)
turns the graph's output into one result per text:

- text-classification: ``Prediction`` (softmax over the labels of each text);
- token-classification: ``TokenPrediction``, a label per real token and the entities they
  form (Hugging Face's ``aggregation_strategy="simple"``);
- feature-extraction: ``Embedding``, ``last_hidden_state`` pooled as serving.json's
  ``pooling`` says (a sentence-transformers folder's modes and normalisation; by default
  attention-mask mean pooling, L2-normalised).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from .contract import ServingFileError, read_serving

SUPPORTED_TASKS = ("text-classification", "token-classification", "feature-extraction")
LABELLED_TASKS = ("text-classification", "token-classification")


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
    pooling: Mapping[str, Any] | None = None  # feature-extraction: serving.json "pooling"


class Result(Protocol):
    """One text's answer; ``as_json`` is its object in the ``/predict`` response."""

    def as_json(self) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class Prediction:
    """text-classification: the best label, its probability, every label's probability."""

    label: str
    score: float
    scores: dict[str, float]

    def as_json(self) -> dict[str, Any]:
        return {"label": self.label, "score": self.score, "scores": dict(self.scores)}


@dataclass(frozen=True, slots=True)
class Token:
    """A real token (not special, not padding), its character span in the text, its label."""

    token: str
    start: int
    end: int
    label: str
    score: float

    def as_json(self) -> dict[str, Any]:
        return {"token": self.token, "start": self.start, "end": self.end,
                "label": self.label, "score": self.score}


@dataclass(frozen=True, slots=True)
class Entity:
    """Consecutive tokens of one entity type; ``text`` is ``original[start:end]``."""

    entity: str
    score: float  # mean of its tokens' scores
    start: int
    end: int
    text: str

    def as_json(self) -> dict[str, Any]:
        return {"entity": self.entity, "score": self.score, "start": self.start,
                "end": self.end, "text": self.text}


@dataclass(frozen=True, slots=True)
class TokenPrediction:
    """token-classification: every real token's label, and the entities they form."""

    tokens: tuple[Token, ...]
    entities: tuple[Entity, ...]

    def as_json(self) -> dict[str, Any]:
        return {"tokens": [t.as_json() for t in self.tokens],
                "entities": [e.as_json() for e in self.entities]}


@dataclass(frozen=True, slots=True)
class Embedding:
    """feature-extraction: a unit-length (L2) sentence vector."""

    embedding: tuple[float, ...]

    @property
    def dim(self) -> int:
        return len(self.embedding)

    def as_json(self) -> dict[str, Any]:
        return {"embedding": list(self.embedding), "dim": self.dim}


def read_info(model_dir: str) -> ModelInfo:
    """Parse ``serving.json`` and ``labels.json``; refuse what the server cannot serve."""
    try:
        serving = read_serving(model_dir)
    except ServingFileError as e:
        raise ModelError(str(e)) from e
    labels = _read_json(os.path.join(model_dir, "labels.json"))
    if not isinstance(labels, list) or not all(isinstance(x, str) for x in labels):
        raise ModelError("labels.json: expected a JSON list of label names")
    task = serving.task
    if task not in SUPPORTED_TASKS:
        raise ModelError(
            f"serving.json: task {task!r} is not served (supported: {SUPPORTED_TASKS})"
        )
    if not labels and task in LABELLED_TASKS:
        raise ModelError(f"labels.json: a {task} model needs at least one label")
    return ModelInfo(
        model_name=serving.model_name,
        task=task,
        architecture=serving.architecture,
        labels=tuple(labels),
        inputs=serving.inputs,
        outputs=serving.outputs,
        max_length=serving.max_length,
        onnx_file=serving.onnx_file,
        onnx_sha256=serving.onnx_sha256,
        quantization=serving.quantization,
        advisor_version=serving.advisor_version,
        pooling=serving.pooling,
    )


def _read_json(path: str) -> Any:
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except FileNotFoundError as e:
        raise ModelError(f"missing {os.path.basename(path)} in {os.path.dirname(path)}") from e
    except json.JSONDecodeError as e:
        raise ModelError(f"{os.path.basename(path)} is not valid JSON: {e}") from e


class TaskHead(Protocol):
    """Turns the graph's output for a batch into one ``Result`` per text."""

    rank: int  # dimensions of the graph output this head reads
    metadata: Mapping[str, Any]  # task-specific fields of ``/metadata``

    def __init__(self, labels: Sequence[str], width: int | None) -> None:
        """``width``: the output's last dimension, when the graph fixes it."""

    def decode(
        self, texts: Sequence[str], encodings: Sequence[Any], output: np.ndarray
    ) -> list[Result]: ...


class SequenceLabels:
    """text-classification: ``output`` is logits (batch, labels)."""

    rank = 2

    def __init__(self, labels: Sequence[str], width: int | None) -> None:
        _check_width(labels, width)
        self.labels = tuple(labels)
        self.metadata: Mapping[str, Any] = {}

    def decode(
        self, texts: Sequence[str], encodings: Sequence[Any], output: np.ndarray
    ) -> list[Result]:
        return [self._prediction(row) for row in _softmax(output)]

    def _prediction(self, probs: np.ndarray) -> Prediction:
        best = int(np.argmax(probs))
        scores = {label: float(probs[i]) for i, label in enumerate(self.labels)}
        return Prediction(label=self.labels[best], score=float(probs[best]), scores=scores)


class TokenLabels:
    """token-classification: ``output`` is logits (batch, sequence, labels)."""

    rank = 3

    def __init__(self, labels: Sequence[str], width: int | None) -> None:
        _check_width(labels, width)
        self.labels = tuple(labels)
        self.metadata: Mapping[str, Any] = {"aggregation": "simple"}

    def decode(
        self, texts: Sequence[str], encodings: Sequence[Any], output: np.ndarray
    ) -> list[Result]:
        probs = _softmax(output)
        best, scores = probs.argmax(axis=-1), probs.max(axis=-1)
        results: list[Result] = []
        for text, enc, ids, row_scores in zip(texts, encodings, best, scores, strict=True):
            tokens = self._tokens(enc, ids.tolist(), row_scores.tolist())
            results.append(TokenPrediction(tokens, aggregate_entities(text, tokens)))
        return results

    def _tokens(self, enc: Any, ids: list[int], scores: list[float]) -> tuple[Token, ...]:
        # Each Encoding attribute builds a new list on access: read them once.
        real = zip(enc.tokens, enc.offsets, enc.attention_mask, enc.special_tokens_mask,
                   ids, scores, strict=True)
        return tuple(
            Token(token, start, end, self.labels[i], score)
            for token, (start, end), attended, special, i, score in real
            if attended and not special
        )


POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")


class SentencePooling:
    """feature-extraction: ``output`` is last_hidden_state (batch, sequence, hidden), pooled as
    serving.json's ``pooling`` says (a sentence-transformers folder's own modes, concatenated in
    order, and its Normalize), the way ``SentenceTransformer.encode`` does; without one,
    attention-mask mean pooling, L2-normalised."""

    rank = 3

    def __init__(self, labels: Sequence[str], width: int | None,
                 pooling: Mapping[str, Any] | None = None) -> None:
        pooling = pooling or {}
        self.modes = tuple(str(m) for m in pooling.get("modes", ("mean",)))
        self.normalize = bool(pooling.get("normalize", True))
        unknown = [m for m in self.modes if m not in POOLING_MODES]
        if not self.modes or unknown:
            raise ModelError(f"serving.json: pooling modes {list(self.modes)} "
                             f"(supported: {POOLING_MODES})")
        dim = {"dim": width * len(self.modes)} if width is not None else {}
        self.metadata: Mapping[str, Any] = {
            "pooling": "+".join(self.modes), "normalized": self.normalize} | dim

    def decode(
        self, texts: Sequence[str], encodings: Sequence[Any], output: np.ndarray
    ) -> list[Result]:
        mask = np.asarray([e.attention_mask for e in encodings], dtype=np.float32)
        vectors = np.concatenate([_pool(mode, output, mask) for mode in self.modes], axis=-1)
        if self.normalize:
            vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return [Embedding(tuple(row.tolist())) for row in vectors.astype(np.float32)]


def _pool(mode: str, hidden: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """One sentence-transformers pooling mode over (batch, sequence, hidden); padding
    positions carry hidden states too, so only the mask keeps them out."""
    weights = mask[..., None]
    rows = np.arange(hidden.shape[0])
    if mode == "cls":  # the first attended token (left padding puts it later)
        return hidden[rows, mask.argmax(axis=1)]
    if mode == "max":
        return np.where(weights > 0, hidden, -np.inf).max(axis=1)
    if mode == "lasttoken":  # the last attended token
        return hidden[rows, hidden.shape[1] - 1 - mask[:, ::-1].argmax(axis=1)]
    if mode == "weightedmean":  # position weights 1, 2, ... from the first real token
        offsets = mask.argmax(axis=1)[:, None]
        weights = weights * (np.arange(1, hidden.shape[1] + 1)[None, :] - offsets)[..., None]
    total = (hidden * weights).sum(axis=1)
    count = np.maximum(weights.sum(axis=1), 1e-9)
    result: np.ndarray = total / (np.sqrt(count) if mode == "mean_sqrt_len_tokens" else count)
    return result


HEADS: Mapping[str, type[TaskHead]] = {
    "text-classification": SequenceLabels,
    "token-classification": TokenLabels,
    "feature-extraction": SentencePooling,
}


def _check_width(labels: Sequence[str], width: int | None) -> None:
    if width is not None and width != len(labels):
        raise ModelError(f"model.onnx scores {width} labels; labels.json names {len(labels)}")


def aggregate_entities(text: str, tokens: Sequence[Token]) -> tuple[Entity, ...]:
    """Group tokens like Hugging Face's ``aggregation_strategy="simple"``: ``B-``/``I-``
    prefixes are stripped, a token continues the previous group when its type is the same
    and it is not ``B-``, and the groups of type ``O`` are dropped."""
    groups: list[tuple[str, list[Token]]] = []
    for tok in tokens:
        begins, kind = _split_label(tok.label)
        if groups and groups[-1][0] == kind and not begins:
            groups[-1][1].append(tok)
        else:
            groups.append((kind, [tok]))
    return tuple(
        Entity(
            entity=kind,
            score=float(np.mean([t.score for t in group])),
            start=group[0].start,
            end=group[-1].end,
            text=text[group[0].start : group[-1].end],
        )
        for kind, group in groups
        if kind != "O"
    )


def _split_label(label: str) -> tuple[bool, str]:
    """``"B-PER"`` -> (True, "PER"); ``"I-PER"`` and a bare ``"PER"`` -> (False, "PER")."""
    if label.startswith(("B-", "I-")):
        return label[0] == "B", label[2:]
    return False, label


class Model:
    """A tokenizer, an onnxruntime session and the task's head; ``predict`` is safe to call
    from many threads."""

    def __init__(self, model_dir: str, intra_op_threads: int = 0) -> None:
        self.info = read_info(model_dir)
        self._tokenizer, self._padding = _load_tokenizer(
            os.path.join(model_dir, "tokenizer.json"), self.info
        )
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
        self.head = _make_head(self.info, self._session)

    def predict(self, texts: Sequence[str]) -> list[Result]:
        return self.infer(texts, self.encode(texts))

    def encode(self, texts: Sequence[str]) -> list[Any]:
        """Tokenized and truncated, not padded: the batcher groups texts by ``len()`` of these."""
        return self._tokenizer.encode_batch(list(texts)) if texts else []

    def infer(self, texts: Sequence[str], encodings: Sequence[Any]) -> list[Result]:
        """Run ``encodings`` (from ``encode``) as one batch, padded to its longest."""
        if not texts:
            return []
        self._pad(encodings)
        return self.head.decode(texts, encodings, self._run(encodings))

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """The graph's raw output for ``texts``, padded as one batch (for feature-extraction,
        ``last_hidden_state``)."""
        encodings = self.encode(texts)
        self._pad(encodings)
        return self._run(encodings)

    def _pad(self, encodings: Sequence[Any]) -> None:
        longest = max(len(e) for e in encodings)
        for e in encodings:
            e.pad(longest, **self._padding)

    def _run(self, encodings: Sequence[Any]) -> np.ndarray:
        feeds = _feeds(encodings, self._feeds)
        (out,) = self._session.run([self.info.outputs[0]], feeds)
        return np.asarray(out, dtype=np.float32)


# The name the server, the image build and the benchmarks have always imported.
Classifier = Model


def _make_head(info: ModelInfo, session: Any) -> TaskHead:
    outputs = {o.name: o.shape for o in session.get_outputs()}
    shape = outputs.get(info.outputs[0])
    if shape is None:
        raise ModelError(
            f"model.onnx has no output {info.outputs[0]!r}; it has {sorted(outputs)}"
        )
    head = HEADS[info.task]
    if shape and len(shape) != head.rank:
        raise ModelError(
            f"model.onnx output {info.outputs[0]!r} has {len(shape)} dimensions; "
            f"a {info.task} model's has {head.rank}"
        )
    width = shape[-1] if shape and isinstance(shape[-1], int) else None
    if head is SentencePooling:
        return SentencePooling(info.labels, width, info.pooling)
    return head(info.labels, width)


def _load_tokenizer(path: str, info: ModelInfo) -> tuple[Any, dict[str, Any]]:
    """The tokenizer (truncating, not padding) and how ``Encoding.pad`` pads a batch: texts
    are padded per batch, once the batcher has grouped them by length."""
    from tokenizers import Tokenizer

    try:
        tok = Tokenizer.from_file(path)
    except Exception as e:  # tokenizers raises its own Exception type
        raise ModelError(f"cannot load {path}: {e}") from e
    tok.enable_truncation(max_length=info.max_length)
    pad_id = tok.token_to_id("[PAD]")
    padding = tok.padding or {}
    tok.no_padding()
    return tok, {
        "pad_id": int(padding.get("pad_id", pad_id if pad_id is not None else 0)),
        "pad_type_id": int(padding.get("pad_type_id", 0)),
        "pad_token": str(padding.get("pad_token", "[PAD]")),
        "direction": str(padding.get("direction", "right")),
    }


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
