"""The Open Inference Protocol v2 spoken with the real client: tritonclient[http] (PyPI), for
each task, binary and JSON tensors, the classification extension, and the protocol's errors."""

from __future__ import annotations

import http.client
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from advisor.serve.model import Model
from advisor.serve.server import Server
from tests.serve.conftest import ArtifactsFactory, serve_model
from tests.serve.tiny_artifacts import HIDDEN, LABELS

TEXTS = ["a gripping, beautiful film", "dull", "Alice lives in Paris, isn't it?"]
MAX_BATCH = 4


def _serve(model: Model) -> Iterator[Server]:
    yield from serve_model(model, max_batch=MAX_BATCH, max_body_bytes=65536, max_text_chars=2000)


@pytest.fixture(scope="module")
def servers(task_artifacts: ArtifactsFactory) -> Iterator[dict[str, Server]]:
    gens = {t: _serve(Model(str(task_artifacts(t)), intra_op_threads=1))
            for t in ("text-classification", "token-classification", "feature-extraction")}
    yield {t: next(g) for t, g in gens.items()}
    for g in gens.values():
        next(g, None)


def client(srv: Server) -> triton.InferenceServerClient:
    return triton.InferenceServerClient(url=f"127.0.0.1:{srv.port}", network_timeout=30)


def text_input(texts: list[str], binary: bool = True, shape: list[int] | None = None) -> triton.InferInput:
    data = np.array([t.encode() for t in texts], dtype=np.object_)
    inp = triton.InferInput("text", shape or [len(texts)], "BYTES")
    inp.set_data_from_numpy(data, binary_data=binary)
    return inp


def strings(values: np.ndarray) -> list[str]:
    """BYTES elements: bytes from binary tensors, str from JSON ones (tritonclient's way)."""
    return [v.decode() if isinstance(v, bytes) else str(v) for v in values.ravel()]


def predict(srv: Server, texts: list[str]) -> list[dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn.request("POST", "/predict", body=json.dumps({"texts": texts}))
    doc = json.loads(conn.getresponse().read())
    conn.close()
    return list(doc["predictions"])


def test_health_and_metadata(servers: dict[str, Server]) -> None:
    c = client(servers["text-classification"])
    assert c.is_server_live() and c.is_server_ready()
    assert c.is_model_ready("tiny-bert-test") and c.is_model_ready("tiny-bert-test", "1")
    assert not c.is_model_ready("nope")
    meta = c.get_model_metadata("tiny-bert-test")
    assert meta["versions"] == ["1"] and meta["platform"] == "onnxruntime_onnx"
    assert meta["inputs"] == [{"name": "text", "datatype": "BYTES", "shape": [-1]}]
    assert {o["name"]: o["shape"] for o in meta["outputs"]} == {
        "label": [-1], "score": [-1], "scores": [-1, len(LABELS)]}
    assert "binary_tensor_data" in c.get_server_metadata()["extensions"]
    emb = client(servers["feature-extraction"]).get_model_metadata("tiny-bert-feature-extraction")
    assert emb["outputs"] == [{"name": "embedding", "datatype": "FP32", "shape": [-1, HIDDEN]}]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_classification_equals_predict(servers: dict[str, Server], binary: bool) -> None:
    srv = servers["text-classification"]
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("label", "score", "scores")]
    result = client(srv).infer("tiny-bert-test", [text_input(TEXTS, binary)], outputs=outputs,
                               request_id="r-1")
    expected = predict(srv, TEXTS)
    labels = strings(result.as_numpy("label"))
    assert labels == [p["label"] for p in expected]
    np.testing.assert_allclose(result.as_numpy("score"), [p["score"] for p in expected], atol=1e-6)
    scores = result.as_numpy("scores")
    assert scores.shape == (len(TEXTS), len(LABELS)) and scores.dtype == np.float32
    np.testing.assert_allclose(scores, [[p["scores"][x] for x in LABELS] for p in expected], atol=1e-6)
    assert result.get_response()["id"] == "r-1"


def test_default_outputs_and_a_two_d_input(servers: dict[str, Server]) -> None:
    srv = servers["text-classification"]
    data = np.array([[t.encode()] for t in TEXTS], dtype=np.object_)
    inp = triton.InferInput("text", [len(TEXTS), 1], "BYTES")
    inp.set_data_from_numpy(data)
    result = client(srv).infer("tiny-bert-test", [inp])  # no outputs named: all of them, binary
    assert strings(result.as_numpy("label")) == [p["label"] for p in predict(srv, TEXTS)]
    assert result.as_numpy("scores").shape == (len(TEXTS), len(LABELS))


def test_classification_extension(servers: dict[str, Server]) -> None:
    srv = servers["text-classification"]
    out = triton.InferRequestedOutput("scores", class_count=1)
    result = client(srv).infer("tiny-bert-test", [text_input(TEXTS)], outputs=[out])
    top = result.as_numpy("scores")
    assert top.shape == (len(TEXTS), 1)
    for cell, p in zip(strings(top), predict(srv, TEXTS), strict=True):
        score, index, label = cell.split(":")
        assert label == p["label"] and LABELS[int(index)] == label
        assert float(score) == pytest.approx(p["score"], abs=1e-5)


def test_token_classification_entities(servers: dict[str, Server]) -> None:
    srv = servers["token-classification"]
    result = client(srv).infer("tiny-bert-token-classification", [text_input(TEXTS)])
    expected = predict(srv, TEXTS)
    entities = [json.loads(x) for x in strings(result.as_numpy("entities"))]
    tokens = [json.loads(x) for x in strings(result.as_numpy("tokens"))]
    assert entities == [p["entities"] for p in expected]
    assert tokens == [p["tokens"] for p in expected]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_feature_extraction_embeddings(servers: dict[str, Server], binary: bool) -> None:
    srv = servers["feature-extraction"]
    out = triton.InferRequestedOutput("embedding", binary_data=binary)
    result = client(srv).infer("tiny-bert-feature-extraction", [text_input(TEXTS, binary)], outputs=[out])
    emb = result.as_numpy("embedding")
    assert emb.shape == (len(TEXTS), HIDDEN) and emb.dtype == np.float32
    np.testing.assert_allclose(emb, [p["embedding"] for p in predict(srv, TEXTS)], atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(emb, axis=1), 1.0, atol=1e-5)


def _refused(call: Any) -> tuple[str, str]:
    with pytest.raises(InferenceServerException) as info:
        call()
    return str(info.value.status()), info.value.message()


def test_protocol_misuse_through_the_client(servers: dict[str, Server]) -> None:
    c = client(servers["text-classification"])
    floats = triton.InferInput("text", [2], "FP32")
    floats.set_data_from_numpy(np.array([1.0, 2.0], dtype=np.float32))
    named = triton.InferInput("sentence", [1], "BYTES")
    named.set_data_from_numpy(np.array([b"x"], dtype=np.object_))
    cases = {
        "datatype": (lambda: c.infer("tiny-bert-test", [floats]), "400", "datatype"),
        "input-name": (lambda: c.infer("tiny-bert-test", [named]), "400", "sentence"),
        "model": (lambda: c.infer("other-model", [text_input(["x"])]), "404", "other-model"),
        "version": (lambda: c.infer("tiny-bert-test", [text_input(["x"])], model_version="7"),
                    "404", "version"),
        "output": (lambda: c.infer("tiny-bert-test", [text_input(["x"])],
                                   outputs=[triton.InferRequestedOutput("logits")]), "400", "logits"),
        "batch": (lambda: c.infer("tiny-bert-test", [text_input(["x"] * (MAX_BATCH + 1))]), "413", "batch"),
        "long-text": (lambda: c.infer("tiny-bert-test", [text_input(["x" * 2001])]), "413", "characters"),
    }
    for name, (call, status, words) in cases.items():
        got, message = _refused(call)
        assert (got, words in message) == (status, True), (name, got, message)
    assert c.is_server_live()


def raw_infer(srv: Server, body: bytes, headers: dict[str, str] | None = None,
              path: str = "/v2/models/tiny-bert-test/infer") -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
    conn.request("POST", path, body=body, headers=headers or {})
    resp = conn.getresponse()
    doc = json.loads(resp.read())
    conn.close()
    return resp.status, doc


def _binary(texts: list[bytes]) -> bytes:
    return b"".join(len(t).to_bytes(4, "little") + t for t in texts)


def _with_binary(blob: bytes, n: int, size: int | None = None) -> tuple[bytes, dict[str, str]]:
    head = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [n],
                                   "parameters": {"binary_data_size": len(blob) if size is None else size}}]})
    return head.encode() + blob, {"Inference-Header-Content-Length": str(len(head))}


def _json_input(**fields: Any) -> bytes:
    return json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1],
                                   "data": ["x"], **fields}]}).encode()


MISUSE: dict[str, tuple[bytes, dict[str, str], int]] = {
    "not-json": (b"{nope", {}, 400),
    "not-an-object": (b"[]", {}, 400),
    "no-inputs": (b'{"inputs": []}', {}, 400),
    "two-inputs": (b'{"inputs": [{"name": "text"}, {"name": "text"}]}', {}, 400),
    "shape-mismatch": (_json_input(shape=[2]), {}, 400),
    "shape-3d": (_json_input(shape=[1, 1, 1]), {}, 400),
    "shape-negative": (_json_input(shape=[-1]), {}, 400),
    "shape-not-list": (_json_input(shape="1"), {}, 400),
    "data-numbers": (_json_input(data=[1]), {}, 400),
    "data-missing": (json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1]}]}).encode(), {}, 400),
    "empty": (_json_input(shape=[0], data=[]), {}, 400),
    "json-not-utf8": (b'{"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["\xff"]}]}', {}, 400),
    "binary-not-utf8": (*_with_binary(_binary([b"\xff\xfe"]), 1), 400),
    "binary-truncated": (*_with_binary(_binary([b"hello"])[:-2], 1), 400),
    "binary-size-too-big": (*_with_binary(_binary([b"hi"]), 1, size=999), 400),
    "binary-count": (*_with_binary(_binary([b"a", b"b"]), 1), 400),
    "header-length-past-body": (b"{}", {"Inference-Header-Content-Length": "99"}, 400),
    "header-length-junk": (b"{}", {"Inference-Header-Content-Length": "-1"}, 400),
    "bad-parameters": (_json_input(parameters=[1]), {}, 400),
    "bad-id": (json.dumps({"id": 5, "inputs": []}).encode(), {}, 400),
    "batch-over": (_json_input(shape=[MAX_BATCH + 1], data=["x"] * (MAX_BATCH + 1)), {}, 413),
    "deep-json": (b'{"inputs": ' + b"[" * 20_000 + b"]" * 20_000 + b"}", {}, 400),
    "body-over": (b'{"x": "' + b"a" * 70_000 + b'"}', {}, 413),
}


@pytest.mark.parametrize("name", sorted(MISUSE))
def test_misuse_gets_the_protocol_error(servers: dict[str, Server], name: str) -> None:
    body, headers, status = MISUSE[name]
    got, doc = raw_infer(servers["text-classification"], body, headers)
    assert got == status, doc
    assert set(doc) == {"error"} and isinstance(doc["error"], str) and doc["error"]


@pytest.mark.parametrize(("method", "path", "status"), [
    ("GET", "/v2/models/tiny-bert-test/infer", 405),
    ("POST", "/v2/models/tiny-bert-test", 405),
    ("GET", "/v2/models/tiny-bert-test/versions/2", 404),
    ("GET", "/v2/models/tiny-bert-test/explain", 404),
    ("GET", "/v2/models/nope/ready", 404),
    ("GET", "/v2/models/", 404),
])
def test_routes_refuse_with_json(servers: dict[str, Server], method: str, path: str, status: int) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", servers["text-classification"].port, timeout=30)
    conn.request(method, path)
    resp = conn.getresponse()
    assert resp.status == status
    assert json.loads(resp.read())["error"]
    conn.close()
