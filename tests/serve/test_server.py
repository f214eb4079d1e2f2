from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from advisor.serve.model import Classifier, ModelError
from advisor.serve.server import Server
from tests.serve.conftest import serve_model

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def classifier(tiny_artifacts: Path) -> Classifier:
    return Classifier(str(tiny_artifacts), intra_op_threads=1)


@pytest.fixture(scope="module")
def server(classifier: Classifier) -> Iterator[Server]:
    yield from serve_model(classifier, max_body_bytes=16384, max_batch=4, workers=2)


def call(
    srv: Server, method: str, path: str, body: Any = None, raw: bytes | None = None
) -> tuple[int, Any]:
    host, port = srv.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=10)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    conn.request(method, path, body=data, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    doc = json.loads(resp.read())
    conn.close()
    return resp.status, doc


def test_health(server: Server) -> None:
    assert call(server, "GET", "/health") == (200, {"status": "ok"})


def test_metadata(server: Server, tiny_artifacts: Path) -> None:
    status, doc = call(server, "GET", "/metadata")
    serving = json.loads((tiny_artifacts / "serving.json").read_text())
    assert status == 200
    assert doc["model_name"] == "tiny-bert-test"
    assert doc["task"] == "text-classification"
    assert doc["labels"] == ["NEGATIVE", "POSITIVE"]
    assert doc["onnx_sha256"] == serving["onnx_sha256"]
    assert doc["advisor_version"] == "0.1.0"


def reference_probs(artifacts: Path, texts: list[str]) -> np.ndarray:
    """The artifacts run in-process, batch padded like the server (int8 dynamic quantisation
    scales activations per batch, so the same batch is what must match)."""
    import onnxruntime as ort
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(artifacts / "tokenizer.json"))
    tok.enable_truncation(max_length=64)
    tok.enable_padding()
    enc = tok.encode_batch(texts)
    feeds = {
        "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
    }
    logits = ort.InferenceSession(str(artifacts / "model.onnx")).run(None, feeds)[0]
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    probs: np.ndarray = exp / exp.sum(axis=1, keepdims=True)
    return probs


def test_predictions_equal_in_process_onnx(server: Server, tiny_artifacts: Path) -> None:
    texts = ["a gripping, beautiful film", "dull", "the plot makes no sense at all, really"]
    status, doc = call(server, "POST", "/predict", {"texts": texts})
    assert status == 200
    for row, pred in zip(reference_probs(tiny_artifacts, texts), doc["predictions"], strict=True):
        assert pred["label"] == ["NEGATIVE", "POSITIVE"][int(np.argmax(row))]
        assert pred["score"] == pytest.approx(float(row.max()), abs=1e-5)
        assert pred["scores"]["NEGATIVE"] == pytest.approx(float(row[0]), abs=1e-5)


def test_single_text_and_input_order(server: Server, tiny_artifacts: Path) -> None:
    status, one = call(server, "POST", "/predict", {"text": "dull"})
    assert status == 200 and len(one["predictions"]) == 1
    assert one["predictions"][0]["score"] == pytest.approx(
        float(reference_probs(tiny_artifacts, ["dull"]).max()), abs=1e-5
    )
    a, b = "a gripping, beautiful film", "dull"
    _, ab = call(server, "POST", "/predict", {"texts": [a, b]})
    _, ba = call(server, "POST", "/predict", {"texts": [b, a]})
    assert ab["predictions"] == ba["predictions"][::-1]


@pytest.mark.parametrize(
    ("method", "path", "raw", "status"),
    [
        ("POST", "/predict", b"{not json", 400),
        ("POST", "/predict", b'{"text": 3}', 400),
        ("POST", "/predict", b'{"texts": []}', 400),
        ("POST", "/predict", b'{"texts": ["a", 1]}', 400),
        ("POST", "/predict", b'{"text": "a", "texts": ["b"]}', 400),
        ("POST", "/predict", b"[1, 2]", 400),
        ("POST", "/predict", b'{"text": ' + b"9" * 5000 + b"}", 400),
        ("POST", "/predict", b"[" * 3000 + b"]" * 3000, 400),
        ("POST", "/predict", b'{"text": "\xff\xfe"}', 400),
        ("POST", "/predict", b'{"texts": ["a", "b", "c", "d", "e"]}', 413),
        ("POST", "/predict", b'{"text": "' + b"x" * 20000 + b'"}', 413),
        ("GET", "/predict", None, 405),
        ("POST", "/health", b"{}", 405),
        ("GET", "/nope", None, 404),
    ],
)
def test_bad_requests_get_json_4xx(
    server: Server, method: str, path: str, raw: bytes | None, status: int
) -> None:
    got, doc = call(server, method, path, raw=raw)
    assert got == status
    assert isinstance(doc["error"], str) and doc["error"]


def test_an_oversized_body_gets_413_not_a_broken_pipe(server: Server) -> None:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=10)
    for _ in range(3):  # and the connection stays usable
        conn.request("POST", "/predict", body=b'{"text": "' + b"x" * (2 << 20) + b'"}')
        resp = conn.getresponse()
        assert resp.status == 413 and "exceeds" in json.loads(resp.read())["error"]
    conn.close()


def test_keep_alive_after_an_error(server: Server) -> None:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=10)
    conn.request("POST", "/predict", body=b"{bad")
    bad = conn.getresponse()
    assert bad.status == 400 and json.loads(bad.read())["error"]
    conn.request("POST", "/predict", body=b'{"text": "fine"}')
    resp = conn.getresponse()
    assert resp.status == 200 and json.loads(resp.read())["predictions"]
    conn.close()


def test_missing_artifacts_are_a_model_error(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match=r"serving\.json"):
        Classifier(str(tmp_path))


def test_unsupported_task_is_refused(tmp_path: Path, tiny_artifacts: Path) -> None:
    for name in ("labels.json", "tokenizer.json", "model.onnx"):
        (tmp_path / name).write_bytes((tiny_artifacts / name).read_bytes())
    serving = json.loads((tiny_artifacts / "serving.json").read_text()) | {"task": "summarization"}
    (tmp_path / "serving.json").write_text(json.dumps(serving))
    with pytest.raises(ModelError, match="summarization"):
        Classifier(str(tmp_path))


@contextlib.contextmanager
def server_process(artifacts: Path) -> Iterator[tuple[subprocess.Popen[str], int]]:
    """``python -m advisor.serve`` on a free port; killed on the way out if still running."""
    env = os.environ | {
        "MODEL_DIR": str(artifacts),
        "PORT": "0",
        "HOST": "127.0.0.1",
        "PYTHONPATH": str(REPO),
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "advisor.serve"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert proc.stderr is not None
        port = int(re.search(r":(\d+) ", proc.stderr.readline()).group(1))  # type: ignore[union-attr]
        yield proc, port
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_process_serves_then_stops_gracefully_on_sigterm(tiny_artifacts: Path) -> None:
    with server_process(tiny_artifacts) as (proc, port):
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", "/predict", body=b'{"text": "hi"}')
        assert conn.getresponse().status == 200
        conn.close()
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 5
        assert proc.stderr is not None and "stopped" in proc.stderr.read()


def test_idle_keep_alive_clients_do_not_delay_sigterm(tiny_artifacts: Path) -> None:
    with server_process(tiny_artifacts) as (proc, port):
        idle = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        idle.request("GET", "/health")
        assert idle.getresponse().read()  # the connection stays open, idle
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
        assert time.monotonic() - t0 < 3
        idle.close()


def raw_exchange(srv: Server, request: bytes) -> tuple[int, dict[str, str], Any]:
    host, port = srv.server_address[:2]
    with socket.create_connection((str(host), int(port)), timeout=10) as sock:
        sock.sendall(request)
        data = b""
        while chunk := sock.recv(65536):  # the server closes after a refusal
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (h.partition(":") for h in header_lines)}
    return int(status_line.split()[1]), headers, json.loads(body)


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"GARBAGE\r\n\r\n", 400),
        (b'GET /health HTTP/1.1 "quoted" extra\r\n\r\n', 400),
        (b"GET /health HTTP/9.9\r\n\r\n", 505),
        (b"GET /health\r\n", 505),  # HTTP/0.9
        (b"POST /predict\r\n", 505),
        (b"BREW /health HTTP/1.1\r\nHost: x\r\n\r\n", 501),
        (b"GET /" + b"a" * 70000 + b" HTTP/1.1\r\n\r\n", 414),
        (b"GET /health HTTP/1.1\r\nX-Big: " + b"b" * 70000 + b"\r\n\r\n", 431),
        (b"GET /health HTTP/1.1\r\n" + b"X-A: 1\r\n" * 150 + b"\r\n", 431),
    ],
)
def test_malformed_requests_get_json_errors_too(server: Server, request_bytes: bytes, status: int) -> None:
    got, headers, doc = raw_exchange(server, request_bytes)
    assert got == status
    assert headers["content-type"] == "application/json"
    assert headers["connection"] == "close"
    assert isinstance(doc["error"], str) and doc["error"]


def test_connections_beyond_the_limit_get_503(classifier: Classifier) -> None:
    for srv in serve_model(classifier, max_connections=1):
        first = http.client.HTTPConnection("127.0.0.1", srv.server_address[1], timeout=10)
        first.request("GET", "/health")
        assert first.getresponse().read()
        status, doc = call(srv, "GET", "/health")
        assert status == 503 and "connections" in doc["error"]
        first.close()


def test_bad_env_exits_2_with_a_message(tiny_artifacts: Path) -> None:
    env = os.environ | {"MODEL_DIR": str(tiny_artifacts), "PORT": "nope", "PYTHONPATH": str(REPO)}
    res = subprocess.run(
        [sys.executable, "-m", "advisor.serve"], env=env, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 2
    assert "PORT" in res.stderr


def test_a_response_is_one_write_so_keep_alive_has_no_delayed_ack_stall(server: Server) -> None:
    host, port = server.server_address[:2]
    conn = http.client.HTTPConnection(str(host), int(port), timeout=10)
    times = []
    for _ in range(10):
        t0 = time.perf_counter()
        conn.request("GET", "/health")
        conn.getresponse().read()
        times.append(time.perf_counter() - t0)
    conn.close()
    # a split header/body write costs ~40 ms per request on a keep-alive connection
    assert sorted(times)[5] < 0.035
