"""GET /metrics parsed by prometheus_client's own parser, and the JSON access log on stdout
of the real server process (and its absence with ACCESS_LOG=0)."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from advisor.serve.app import App
from advisor.serve.model import Model
from advisor.serve.server import Server, serve_in_thread
from advisor.serve.settings import Settings

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def server(tiny_artifacts: Path) -> Iterator[Server]:
    app = App(Model(str(tiny_artifacts), 1), Settings(host="127.0.0.1", port=0, max_batch=4,
                                                    access_log=False), load_seconds=0.25)
    with serve_in_thread(app) as srv:
        yield srv
    app.close()


def request(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request(method, path, body=body)
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return resp.status, data, resp.getheader("content-type", "")


def scrape(port: int) -> dict[str, Any]:
    status, data, ctype = request(port, "GET", "/metrics")
    assert status == 200 and ctype.startswith("text/plain")
    return {f.name: f for f in text_string_to_metric_families(data.decode())}


def sample(families: dict[str, Any], family: str, series: str, **labels: str) -> float:
    for s in families[family].samples:
        if s.name == series and all(s.labels.get(k) == v for k, v in labels.items()):
            return float(s.value)
    return 0.0


def test_metrics_count_requests_by_route_and_status(server: Server) -> None:
    before = scrape(server.port)
    request(server.port, "POST", "/predict", b'{"texts": ["good", "bad", "fine"]}')
    request(server.port, "POST", "/predict", b"{bad json")
    request(server.port, "GET", "/no/such/path/12345")
    request(server.port, "GET", "/v2/models/tiny-bert-test/ready")
    after = scrape(server.port)

    def delta(series: str, **labels: str) -> float:
        return (sample(after, "advisor_http_requests", series, **labels)
                - sample(before, "advisor_http_requests", series, **labels))

    total = "advisor_http_requests_total"
    assert delta(total, route="/predict", method="POST", status="200") == 1
    assert delta(total, route="/predict", method="POST", status="400") == 1
    assert delta(total, route="other", method="GET", status="404") == 1  # never the raw path
    assert delta(total, route="/v2/models/{name}/ready", method="GET", status="200") == 1
    assert not any("12345" in str(s.labels) for s in after["advisor_http_requests"].samples)
    lat = "advisor_http_request_duration_seconds"
    assert sample(after, lat, lat + "_count", route="/predict") >= 2
    assert sample(after, lat, lat + "_bucket", route="/predict", le="+Inf") >= 2
    batch = "advisor_batch_texts"
    assert sample(after, batch, batch + "_sum") - sample(before, batch, batch + "_sum") == 3
    assert sample(after, "advisor_http_requests_in_flight", "advisor_http_requests_in_flight") == 1  # this scrape
    assert sample(after, "advisor_model_load_seconds", "advisor_model_load_seconds") == 0.25
    assert sample(after, "advisor_model_info", "advisor_model_info", name="tiny-bert-test") == 1
    assert sample(after, "process_resident_memory_bytes", "process_resident_memory_bytes") > 0


def _start(artifacts: Path, **env: str) -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "advisor.serve"],
        env=os.environ | {"MODEL_DIR": str(artifacts), "PORT": "0", "HOST": "127.0.0.1",
                          "PYTHONPATH": str(REPO), **env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    port = int(re.search(r":(\d+) ", proc.stderr.readline()).group(1))  # type: ignore[union-attr]
    return proc, port


def _stop(proc: subprocess.Popen[str]) -> str:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    return out


def test_one_json_access_log_line_per_request(tiny_artifacts: Path) -> None:
    proc, port = _start(tiny_artifacts)
    try:
        request(port, "POST", "/predict", b'{"texts": ["a", "b"]}')
        request(port, "GET", "/health")
        request(port, "GET", "/" + "%1b%5b31m" * 3 + "x" * 1000)
    finally:
        out = _stop(proc)
    lines = [json.loads(x) for x in out.splitlines()]
    assert [(x["method"], x["status"]) for x in lines] == [("POST", 200), ("GET", 200), ("GET", 404)]
    assert lines[0]["path"] == "/predict" and lines[0]["texts"] == 2
    assert lines[0]["client"].startswith("127.0.0.1:") and lines[0]["duration_ms"] > 0
    assert lines[0]["time"].endswith("+00:00") and lines[0]["bytes"] > 0
    assert len(lines[2]["path"]) <= 256  # a long path is cut; control bytes stay JSON-escaped
    assert "\x1b" not in out


def test_access_log_off(tiny_artifacts: Path) -> None:
    proc, port = _start(tiny_artifacts, ACCESS_LOG="0")
    try:
        assert request(port, "GET", "/health")[0] == 200
    finally:
        out = _stop(proc)
    assert out == ""
