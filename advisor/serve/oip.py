"""The Open Inference Protocol v2 (KServe v2, the HTTP/REST API Triton implements).

One model, one version (``"1"``), one input: ``text``, ``BYTES``, shape ``[n]`` (or
``[n, 1]``), one element per text. Outputs by task (all ``[n, ...]``, in input order):

- text-classification: ``label`` BYTES [n], ``score`` FP32 [n], ``scores`` FP32 [n, labels]
  (every label's probability, in ``labels.json`` order; the classification extension's
  ``classification: k`` parameter turns it into BYTES [n, k] ``"score:index:label"``);
- token-classification: ``entities`` and ``tokens``, BYTES [n], each element the JSON list
  that ``/predict`` returns for that text;
- feature-extraction: ``embedding`` FP32 [n, dim].

Tensors travel as JSON ``data`` or, with Triton's binary tensor data extension (what
``tritonclient`` sends by default), as raw bytes after the JSON header, whose length the
``Inference-Header-Content-Length`` header gives; BYTES elements are then each a 4-byte
little-endian length and the bytes. Errors are ``{"error": "..."}`` with a 4xx status.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

import numpy as np

from .errors import RequestError, bad_request, too_large

INPUT = "text"
VERSION = "1"
HEADER_LENGTH = "inference-header-content-length"
EXTENSIONS = ("binary_tensor_data", "classification")
_LEN = struct.Struct("<I")


@dataclass(frozen=True, slots=True)
class OutputSpec:
    name: str
    datatype: str  # BYTES | FP32
    width: int | None  # the second dimension; None for [n] outputs, -1 when unknown


def output_specs(task: str, labels: Sequence[str], dim: int | None) -> tuple[OutputSpec, ...]:
    if task == "text-classification":
        return (OutputSpec("label", "BYTES", None), OutputSpec("score", "FP32", None),
                OutputSpec("scores", "FP32", len(labels)))
    if task == "token-classification":
        return (OutputSpec("entities", "BYTES", None), OutputSpec("tokens", "BYTES", None))
    return (OutputSpec("embedding", "FP32", dim if dim is not None else -1),)


@dataclass(frozen=True, slots=True)
class Requested:
    name: str
    binary: bool
    classification: int = 0  # top-k as "score:index:label" strings (0: the tensor itself)


@dataclass(frozen=True, slots=True)
class InferRequest:
    id: str | None
    texts: list[str]
    outputs: tuple[Requested, ...]


@dataclass(frozen=True, slots=True)
class Limits:
    max_batch: int
    max_text_chars: int


class ModelEndpoint:
    """The protocol's view of the served model: metadata, request parsing, responses."""

    def __init__(self, name: str, task: str, labels: Sequence[str], dim: int | None,
                 limits: Limits) -> None:
        self.name = name
        self.task = task
        self.labels = tuple(labels)
        self.limits = limits
        self.specs = {s.name: s for s in output_specs(task, labels, dim)}

    def check(self, name: str, version: str | None) -> None:
        if name != self.name:
            raise RequestError(HTTPStatus.NOT_FOUND, f"unknown model {name!r} (serving {self.name!r})")
        if version is not None and version != VERSION:
            raise RequestError(
                HTTPStatus.NOT_FOUND, f"unknown version {version!r} of model {name!r} (has {VERSION!r})"
            )

    def metadata(self) -> dict[str, Any]:
        return {
            "name": self.name, "versions": [VERSION], "platform": "onnxruntime_onnx",
            "inputs": [{"name": INPUT, "datatype": "BYTES", "shape": [-1]}],
            "outputs": [{"name": s.name, "datatype": s.datatype,
                         "shape": [-1] if s.width is None else [-1, s.width]}
                        for s in self.specs.values()],
        }

    def parse(self, body: bytes, header_length: str | None) -> InferRequest:
        doc, binary = _split(body, header_length)
        if not isinstance(doc, dict):
            raise bad_request("the inference request must be a JSON object")
        inputs = doc.get("inputs")
        if not isinstance(inputs, list) or len(inputs) != 1 or not isinstance(inputs[0], dict):
            raise bad_request(f"expected exactly one input, {INPUT!r}")
        texts = self._texts(inputs[0], binary)
        params = _params(doc)
        default_binary = params.get("binary_data_output") is True
        return InferRequest(_id(doc), texts, self._requested(doc.get("outputs"), default_binary))

    def _texts(self, spec: dict[str, Any], binary: memoryview) -> list[str]:
        name, datatype, shape = spec.get("name"), spec.get("datatype"), spec.get("shape")
        if name != INPUT:
            raise bad_request(f"unexpected input {name!r} for model {self.name!r}: it takes {INPUT!r}")
        if datatype != "BYTES":
            raise bad_request(f"input {INPUT!r} has datatype BYTES, not {datatype!r}")
        count = _count(shape)
        size = _params(spec).get("binary_data_size")
        if size is not None:
            if "data" in spec:
                raise bad_request(f"input {INPUT!r} has both data and binary_data_size")
            if not isinstance(size, int) or isinstance(size, bool) or not 0 <= size <= len(binary):
                raise bad_request(f"binary_data_size {size!r} does not fit the {len(binary)} binary bytes")
            if size != len(binary):
                raise bad_request(f"{len(binary) - size} bytes after the input's binary data")
            texts = _decode_bytes_tensor(binary)
        else:
            if len(binary):
                raise bad_request("binary data after the JSON header but no binary_data_size")
            texts = _json_strings(spec.get("data"))
        if len(texts) != count:
            raise bad_request(f"input {INPUT!r} has shape {shape} ({count} elements) but {len(texts)} texts")
        if not texts:
            raise bad_request(f"input {INPUT!r} is empty")
        if len(texts) > self.limits.max_batch:
            raise too_large(f"{len(texts)} texts exceed the batch limit of {self.limits.max_batch}")
        if any(len(t) > self.limits.max_text_chars for t in texts):
            raise too_large(f"a text exceeds {self.limits.max_text_chars} characters")
        return texts

    def _requested(self, outputs: Any, default_binary: bool) -> tuple[Requested, ...]:
        if outputs is None:
            return tuple(Requested(n, default_binary) for n in self.specs)
        if not isinstance(outputs, list) or not all(isinstance(o, dict) for o in outputs):
            raise bad_request('"outputs" must be a list of objects')
        requested = []
        for out in outputs:
            name, params = out.get("name"), _params(out)
            if name not in self.specs:
                raise bad_request(f"unknown output {name!r}; model {self.name!r} has {sorted(self.specs)}")
            k = params.get("classification", 0)
            if not isinstance(k, int) or isinstance(k, bool) or k < 0:
                raise bad_request(f"classification must be a non-negative integer, not {k!r}")
            if k and self.specs[name].datatype != "FP32":
                raise bad_request(f"output {name!r} is not a score tensor: no classification")
            binary = params.get("binary_data", default_binary)
            requested.append(Requested(name, binary is True, k))
        if len({r.name for r in requested}) != len(requested):
            raise bad_request("an output is requested twice")
        return tuple(requested)

    def respond(self, request: InferRequest, results: Sequence[Any]) -> tuple[bytes, int | None]:
        """The response body, and the JSON header's length when binary tensors follow it."""
        rows = [r.as_json() for r in results]
        outputs, blobs = [], []
        for req in request.outputs:
            datatype, shape, values = self._tensor(req, rows)
            out: dict[str, Any] = {"name": req.name, "datatype": datatype, "shape": shape}
            if req.binary:
                blob = _encode(datatype, values)
                out["parameters"] = {"binary_data_size": len(blob)}
                blobs.append(blob)
            else:
                out["data"] = values.ravel().tolist() if isinstance(values, np.ndarray) else values
            outputs.append(out)
        doc: dict[str, Any] = {"model_name": self.name, "model_version": VERSION, "outputs": outputs}
        if request.id is not None:
            doc["id"] = request.id
        header = json.dumps(doc, separators=(",", ":")).encode()
        return (header + b"".join(blobs), len(header)) if blobs else (header, None)

    def _tensor(self, req: Requested, rows: list[dict[str, Any]]) -> tuple[str, list[int], Any]:
        n = len(rows)
        if req.name == "label":
            return "BYTES", [n], [r["label"] for r in rows]
        if req.name == "score":
            return "FP32", [n], np.asarray([r["score"] for r in rows], dtype=np.float32)
        if req.name in ("entities", "tokens"):
            return "BYTES", [n], [json.dumps(r[req.name], separators=(",", ":")) for r in rows]
        if req.name == "scores":
            values = np.asarray([[r["scores"][x] for x in self.labels] for r in rows], np.float32)
        else:
            values = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
        if req.classification:
            return self._classes(values, req.classification)
        return "FP32", [n, int(values.shape[1]) if values.ndim == 2 else 0], values

    def _classes(self, values: np.ndarray, k: int) -> tuple[str, list[int], list[str]]:
        k = min(k, values.shape[1])
        top = np.argsort(-values, axis=1, kind="stable")[:, :k]
        names = self.labels if self.task == "text-classification" else ()
        out = [f"{row[i]:f}:{i}" + (f":{names[i]}" if names else "")
               for row, idx in zip(values, top, strict=True) for i in idx]
        return "BYTES", [len(values), k], out


def _split(body: bytes, header_length: str | None) -> tuple[Any, memoryview]:
    view = memoryview(body)
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise bad_request(f"Inference-Header-Content-Length {header_length!r} does not fit "
                              f"a body of {len(body)} bytes")
        view, binary = view[: int(header_length)], view[int(header_length) :]
    else:
        binary = memoryview(b"")
    try:
        return json.loads(bytes(view)), binary
    except (ValueError, RecursionError) as e:  # bad UTF-8 or JSON, huge ints, deep nesting
        raise bad_request(f"the inference request is not valid JSON: {e}"[:200]) from e


def _params(doc: Mapping[str, Any]) -> Mapping[str, Any]:
    params = doc.get("parameters", {})
    if not isinstance(params, dict):
        raise bad_request('"parameters" must be an object')
    return params


def _id(doc: Mapping[str, Any]) -> str | None:
    rid = doc.get("id")
    if rid is not None and not isinstance(rid, str):
        raise bad_request('"id" must be a string')
    return rid


def _count(shape: Any) -> int:
    if (not isinstance(shape, list) or not 1 <= len(shape) <= 2
            or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
            or (len(shape) == 2 and shape[1] != 1)):
        raise bad_request(f"input {INPUT!r} must have shape [n] or [n, 1], not {shape!r}")
    return int(shape[0])


def _json_strings(data: Any) -> list[str]:
    if not isinstance(data, list):
        raise bad_request(f"input {INPUT!r} needs a data list (or binary data)")
    flat = list(_flatten(data))
    if not all(isinstance(t, str) for t in flat):
        raise bad_request(f"input {INPUT!r} is BYTES: every element must be a string")
    return flat


def _flatten(data: list[Any]) -> Iterator[Any]:
    for item in data:  # row-major, as the protocol nests tensor data; [n, 1] nests one deep
        if isinstance(item, list):
            yield from item
        else:
            yield item


def _decode_bytes_tensor(blob: memoryview) -> list[str]:
    texts, at = [], 0
    while at < len(blob):
        if at + 4 > len(blob):
            raise bad_request("binary BYTES tensor ends inside an element's length")
        (n,) = _LEN.unpack_from(blob, at)
        if at + 4 + n > len(blob):
            raise bad_request("binary BYTES tensor element runs past the data")
        try:
            texts.append(str(blob[at + 4 : at + 4 + n], "utf-8"))
        except UnicodeDecodeError as e:
            raise bad_request(f"text {len(texts)} is not UTF-8: {e}") from e
        at += 4 + n
    return texts


def _encode(datatype: str, values: Any) -> bytes:
    if datatype == "FP32":
        return np.ascontiguousarray(values, dtype="<f4").tobytes()
    parts = []
    for v in values:
        b = v.encode("utf-8")
        parts += [_LEN.pack(len(b)), b]
    return b"".join(parts)
