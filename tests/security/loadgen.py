"""A small closed-loop HTTP load generator over loopback (bounded by time and request count).

``run_load`` starts ``clients`` threads, each with its own keep-alive connection, posting
``/predict`` bodies for ``seconds`` (or until ``max_requests``); every response's status and
latency is kept, connection failures are counted apart. ``target`` is a host loopback port or
a sandbox's ``Address`` (connections made inside its network namespace). Used by
tests/security and by benchmarks/load.
"""

from __future__ import annotations

import http.client
import json
import random
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from advisor.sandbox import Address

Target = int | Address  # a port on the host's loopback, or a port inside a sandbox

TEXTS = (
    "a gripping, beautifully shot film",
    "dull and far too long",
    "the cast is wonderful but the script lets them down badly",
    "I laughed, I cried, I bought the soundtrack",
    "an utterly forgettable sequel that nobody asked for",
    "",
    "x" * 2000,
)


@dataclass
class LoadResult:
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    connection_errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    seconds: float = 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        xs = sorted(self.latencies_ms)
        return xs[min(len(xs) - 1, int(q / 100 * len(xs)))]

    @property
    def server_errors(self) -> int:
        return sum(n for s, n in self.statuses.items() if s >= 500)

    def summary(self) -> dict[str, object]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 2),
            "throughput_per_s": round(self.requests / self.seconds, 1) if self.seconds else 0.0,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
            "connection_errors": self.connection_errors,
            "latency_ms": {f"p{q}": round(self.percentile(q), 2) for q in (50, 95, 99)},
            "max_ms": round(max(self.latencies_ms), 2) if self.latencies_ms else None,
        }


@dataclass(frozen=True)
class Mix:
    """What the clients send: ``texts`` drawn at random; with ``batches`` a quarter of the
    requests carry 2-4 texts, else every request carries one."""

    texts: tuple[str, ...] = TEXTS
    batches: bool = True

    def body(self, rng: random.Random) -> bytes:
        if self.batches and rng.random() < 0.25:
            return json.dumps({"texts": rng.sample(self.texts, k=rng.randint(2, 4))}).encode()
        return json.dumps({"text": rng.choice(self.texts)}).encode()


def connection(target: Target, timeout: float) -> http.client.HTTPConnection:
    if isinstance(target, Address):
        return target.http(timeout)
    return http.client.HTTPConnection("127.0.0.1", target, timeout=timeout)


def _client(target: Target, deadline: float, budget: list[int], lock: threading.Lock,
            result: LoadResult, seed: int, timeout: float, mix: Mix) -> None:
    rng = random.Random(seed)
    conn = connection(target, timeout)
    while time.monotonic() < deadline:
        with lock:
            if budget[0] <= 0:
                break
            budget[0] -= 1
        body = mix.body(rng)
        began = time.perf_counter()
        try:
            conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            resp.read()
            status = resp.status
        except (OSError, http.client.HTTPException):
            conn.close()
            conn = connection(target, timeout)
            with lock:
                result.connection_errors += 1
            continue
        elapsed = (time.perf_counter() - began) * 1000
        with lock:
            result.requests += 1
            result.statuses[status] += 1
            result.latencies_ms.append(elapsed)
    conn.close()


def run_load(target: Target, clients: int = 8, seconds: float = 5.0, max_requests: int = 100_000,
             timeout: float = 30.0, mix: Mix | None = None) -> LoadResult:
    result = LoadResult()
    lock = threading.Lock()
    budget = [max_requests]
    began = time.monotonic()
    deadline = began + seconds
    threads = [threading.Thread(target=_client, args=(target, deadline, budget, lock, result, i, timeout,
                                                     mix or Mix()))
               for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=seconds + timeout + 5)
    result.seconds = time.monotonic() - began
    return result


def rss_bytes(pid: int) -> int:
    """Resident memory of a process, from /proc (Linux)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    return 0
