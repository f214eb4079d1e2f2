"""A small HTTP client for the serving API (docs/DESIGN.md, "Serving API"), on the standard library only.

Keep-alive connections (one per thread) so latency measures the server, not TCP setup.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from advisor.errors import BenchError
from advisor.sandbox.netns import Address

# Where the server listens: a URL on the host, or a port inside a sandbox's network namespace.
Endpoint = str | Address


class ServerError(Exception):
    """The server answered something other than a 200 with the expected JSON."""


class Client:
    """One keep-alive connection to ``url``; not shared between threads."""

    def __init__(self, url: Endpoint, timeout_s: float = 120.0) -> None:
        self._address = url if isinstance(url, Address) else None
        parts = urlsplit(url.url if isinstance(url, Address) else url)
        self._host = parts.hostname or "127.0.0.1"
        self._port = parts.port or 80
        self._timeout = timeout_s
        self._conn: http.client.HTTPConnection | None = None

    def _request(self, method: str, path: str, body: bytes | None = None) -> Any:
        for attempt in (0, 1):
            if self._conn is None:
                self._conn = (
                    self._address.http(self._timeout)
                    if self._address is not None
                    else http.client.HTTPConnection(self._host, self._port, timeout=self._timeout)
                )
            try:
                headers = {"Content-Type": "application/json"} if body is not None else {}
                self._conn.request(method, path, body=body, headers=headers)
                response = self._conn.getresponse()
                payload = response.read()
            except (OSError, http.client.HTTPException) as e:
                self.close()
                if attempt:
                    raise ServerError(f"{method} {path}: {e}") from e
                continue
            if response.status != 200:
                raise ServerError(f"{method} {path}: HTTP {response.status} {payload[:200]!r}")
            return json.loads(payload)
        raise AssertionError("unreachable")

    def health(self) -> bool:
        try:
            return self._request("GET", "/health").get("status") == "ok"
        except (ServerError, ValueError):
            return False

    def metadata(self) -> dict[str, Any]:
        try:
            data = self._request("GET", "/metadata")
        except (ServerError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def predict(self, texts: Sequence[str]) -> list[str]:
        body = json.dumps({"texts": list(texts)}).encode()
        predictions = self._request("POST", "/predict", body).get("predictions")
        if not isinstance(predictions, list) or len(predictions) != len(texts):
            raise ServerError(f"/predict returned {predictions!r:.200} for {len(texts)} texts")
        return [str(p["label"]) for p in predictions]

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def wait_first_prediction(
    url: Endpoint, alive: Callable[[], bool], timeout_s: float, text: str = "hello world"
) -> float:
    """Poll until ``/predict`` answers; return the wall-clock time it first did."""
    client = Client(url, timeout_s=10.0)
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            if not alive():
                raise BenchError("the server exited before it answered /predict")
            try:
                client.predict([text])
                return time.time()
            except ServerError:
                time.sleep(0.02)
    finally:
        client.close()
    raise BenchError(f"the server did not answer /predict within {timeout_s:.0f} s")


def predict_all(url: Endpoint, texts: Sequence[str], batch_size: int) -> list[str]:
    client = Client(url)
    try:
        labels: list[str] = []
        for i in range(0, len(texts), batch_size):
            labels.extend(client.predict(texts[i : i + batch_size]))
        return labels
    finally:
        client.close()


def time_requests(
    url: Endpoint, texts: Sequence[str], iterations: int, max_seconds: float
) -> list[float]:
    """Latency in ms of ``iterations`` sequential /predict calls carrying ``texts``."""
    client = Client(url)
    samples: list[float] = []
    deadline = time.perf_counter() + max_seconds
    try:
        client.predict(texts)  # warm the connection and the server's code path
        for _ in range(iterations):
            start = time.perf_counter()
            client.predict(texts)
            samples.append((time.perf_counter() - start) * 1000.0)
            if time.perf_counter() > deadline:
                break
    finally:
        client.close()
    return samples


@dataclass(frozen=True, slots=True)
class LoadResult:
    concurrency: int
    batch: int
    requests: int
    errors: int
    seconds: float
    throughput_per_s: float  # texts per second
    latency_ms: tuple[float, ...]


def load_test(
    url: Endpoint, texts: Sequence[str], concurrency: int, max_requests: int, max_seconds: float
) -> LoadResult:
    """``concurrency`` clients send /predict until ``max_requests`` or ``max_seconds``, whichever first."""
    lock = threading.Lock()
    state = {"sent": 0, "errors": 0}
    latencies: list[float] = []
    deadline = time.perf_counter() + max_seconds

    def worker() -> None:
        client = Client(url)
        try:
            while time.perf_counter() < deadline:
                with lock:
                    if state["sent"] >= max_requests:
                        return
                    state["sent"] += 1
                start = time.perf_counter()
                try:
                    client.predict(texts)
                except ServerError:
                    with lock:
                        state["errors"] += 1
                    continue
                with lock:
                    latencies.append((time.perf_counter() - start) * 1000.0)
        finally:
            client.close()

    start = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(max_seconds + 120)
    seconds = time.perf_counter() - start
    done = len(latencies)
    return LoadResult(
        concurrency,
        len(texts),
        done + state["errors"],
        state["errors"],
        seconds,
        done * len(texts) / seconds if seconds > 0 else 0.0,
        tuple(latencies),
    )
