"""Run the built image with umoci + runc and talk to it inside its network namespace."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from advisor.errors import BadInputError, SandboxError
from advisor.sandbox.runner import Running, run_image
from advisor.slim.image import BuildResult
from tests.slim.fixtures import NEEDS_ROOT_TOOLS

pytestmark = [pytest.mark.slow, NEEDS_ROOT_TOOLS]

TEXTS = ["a gripping, beautiful film", "dull and far too long", "", "ünïcode — ok? 🎬"]


@pytest.fixture(scope="module")
def running(built: BuildResult) -> Iterator[Running]:
    run = run_image(built.destination, timeout=120)
    yield run
    run.stop()


def call(run: Running, method: str, path: str, body: bytes | None = None) -> tuple[int, Any]:
    conn = run.connection(timeout=30)
    conn.request(method, path, body=body)
    resp = conn.getresponse()
    doc = json.loads(resp.read())
    conn.close()
    return resp.status, doc


def test_unpacked_with_umoci(running: Running) -> None:
    assert (running.container.run_dir / "config.json").exists()
    assert (running.bundle.rootfs / "app" / "model" / "model.onnx").exists()
    assert running.url.startswith("http://127.0.0.1:")
    assert running.bundle.entrypoint == ("/usr/bin/python3.11", "-m", "advisor.serve")
    assert running.bundle.user == "10001:10001" and running.bundle.working_dir == "/app"
    assert running.bundle.exposed_ports == ("8080/tcp",)


def test_predictions_equal_the_in_process_onnx_model(
    running: Running, tiny_artifacts: Path
) -> None:
    import onnxruntime as ort
    from tokenizers import Tokenizer

    status, doc = call(running, "POST", "/predict", json.dumps({"texts": TEXTS}).encode())
    assert status == 200
    tok = Tokenizer.from_file(str(tiny_artifacts / "tokenizer.json"))
    tok.enable_truncation(max_length=64)
    tok.enable_padding()
    enc = tok.encode_batch(TEXTS)
    feeds = {
        "input_ids": np.array([e.ids for e in enc], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in enc], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in enc], dtype=np.int64),
    }
    logits = ort.InferenceSession(str(tiny_artifacts / "model.onnx")).run(None, feeds)[0]
    probs = np.exp(logits) / np.exp(logits).sum(axis=1, keepdims=True)
    assert len(doc["predictions"]) == len(TEXTS)
    for row, pred in zip(probs, doc["predictions"], strict=True):
        assert pred["label"] == ["NEGATIVE", "POSITIVE"][int(row.argmax())]
        assert pred["scores"]["NEGATIVE"] == pytest.approx(float(row[0]), abs=1e-5)
        assert pred["scores"]["POSITIVE"] == pytest.approx(float(row[1]), abs=1e-5)


def test_health_and_metadata(running: Running, tiny_artifacts: Path) -> None:
    assert call(running, "GET", "/health") == (200, {"status": "ok"})
    status, meta = call(running, "GET", "/metadata")
    serving = json.loads((tiny_artifacts / "serving.json").read_text())
    assert status == 200
    assert (meta["model_name"], meta["onnx_sha256"]) == (
        serving["model_name"],
        serving["onnx_sha256"],
    )
    assert meta["advisor_version"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("POST", "/predict", b"{nope", 400),
        ("POST", "/predict", b'{"texts": "not a list"}', 400),
        ("POST", "/predict", json.dumps({"texts": ["x"] * 65}).encode(), 413),
        ("POST", "/predict", b'{"text": "' + b"x" * (1 << 20) + b'"}', 413),
        ("GET", "/predict", None, 405),
        ("GET", "/missing", None, 404),
    ],
)
def test_bad_requests_get_4xx(
    running: Running, method: str, path: str, body: bytes | None, status: int
) -> None:
    got, doc = call(running, method, path, body)
    assert got == status and doc["error"]


def test_runs_as_the_non_root_user(running: Running) -> None:
    pid = running.server_pid()
    assert pid is not None
    status = Path(f"/proc/{pid}/status").read_text()
    fields = dict(line.split(":", 1) for line in status.splitlines())
    base = running.bundle.id_map[0] if running.bundle.id_map else 0
    assert fields["Uid"].split() == [str(base + 10001)] * 4  # 10001 inside its namespace
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0
    assert fields["NoNewPrivs"].strip() == "1" and fields["Seccomp"].strip() == "2"
    assert (running.bundle.rootfs / "app" / "model" / "model.onnx").stat().st_mode & 0o004


def test_sigterm_stops_gracefully(built: BuildResult) -> None:
    run = run_image(built.destination, timeout=120)
    run.keep = True
    try:
        assert call(run, "POST", "/predict", b'{"text": "one more"}')[0] == 200
        assert run.stop(timeout=10) == 0
        assert "advisor-serve: stopped" in run.logs()
    finally:
        shutil.rmtree(run.bundle.root, ignore_errors=True)


def test_a_failing_server_reports_its_logs(built: BuildResult) -> None:
    with pytest.raises(SandboxError, match="PORT"):
        run_image(built.destination, env={"PORT": "not-a-port"}, timeout=60)


def test_a_missing_image_is_a_bad_input_error_and_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from advisor.sandbox.runner import unpack_image

    monkeypatch.setenv("ADVISOR_RUN_DIR", str(tmp_path))
    with pytest.raises(BadInputError, match="reading oci:"):
        unpack_image(f"oci:{tmp_path / 'nope'}:v1")
    assert list(tmp_path.iterdir()) == []


STUBBORN = b"""
import http.server, os, signal
signal.signal(signal.SIGTERM, signal.SIG_IGN)  # like a Flask app that is PID 1: ignores SIGTERM
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200); self.end_headers(); self.wfile.write(b"{}")
http.server.HTTPServer(("127.0.0.1", int(os.environ["PORT"])), H).serve_forever()
"""


def test_stop_ends_a_non_root_server_that_ignores_sigterm(tmp_path: Path, debian_base: str) -> None:
    """A server that ignores SIGTERM as PID 1 still ends: stop() sends SIGKILL after the grace."""
    import os

    from advisor.oci.loader import open_image
    from advisor.oci.writer import write_image

    with open_image(debian_base) as base:
        py = "/usr/bin/python3"
        write_image(f"oci:{tmp_path / 'img'}:stubborn", [{"app/stubborn.py": STUBBORN}],
                    {"config": {"User": "10001:10001", "Entrypoint": [py, "/app/stubborn.py"],
                                "WorkingDir": "/app", "Env": list(base.config.env)}}, base=base)
    run = run_image(f"oci:{tmp_path / 'img'}:stubborn", timeout=60)
    pid = run.server_pid()
    assert pid is not None
    run.stop(timeout=2)
    assert not Path(f"/proc/{pid}").exists() or _is_zombie(pid), "the server outlived stop()"
    assert not os.path.exists(run.bundle.root)


def _is_zombie(pid: int) -> bool:
    try:
        return " Z " in Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
