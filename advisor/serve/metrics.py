"""Prometheus metrics (``GET /metrics``), kept by prometheus_client in a registry per app.

Requests by route template (never the raw path: an unknown path is ``other``, so a scanner
cannot grow the label set), method and status; request latency by route; requests in
flight; texts per model run, time queued and time in the model; the model's load time;
and prometheus_client's process and platform collectors (RSS, CPU, open fds, Python).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
    generate_latest,
)

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTENT_TYPE = CONTENT_TYPE_LATEST


class Metrics:
    def __init__(self, model: Mapping[str, str], load_seconds: float) -> None:
        r = self.registry = CollectorRegistry()
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        self.requests = Counter(
            "advisor_http_requests", "HTTP requests answered, by route template, method and status",
            ["route", "method", "status"], registry=r,
        )
        self.latency = Histogram(
            "advisor_http_request_duration_seconds", "Time from a request's arrival to its answer",
            ["route"], buckets=LATENCY_BUCKETS, registry=r,
        )
        self.in_flight = Gauge(
            "advisor_http_requests_in_flight", "Requests received and not yet answered", registry=r
        )
        self.batch_texts = Histogram(
            "advisor_batch_texts", "Texts per model run (dynamic batching)",
            buckets=BATCH_BUCKETS, registry=r,
        )
        self.queue_wait = Histogram(
            "advisor_batch_queue_seconds", "Time a request waited for its model run",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.inference = Histogram(
            "advisor_inference_duration_seconds", "Time of one model run (tokens in, results out)",
            buckets=LATENCY_BUCKETS, registry=r,
        )
        self.texts = Counter("advisor_texts", "Texts run through the model", registry=r)
        Gauge("advisor_model_load_seconds", "Time to load the tokenizer and the ONNX session",
              registry=r).set(load_seconds)
        Info("advisor_model", "The model served", registry=r).info(dict(model))

    def observe_request(self, route: str, method: str, status: int, seconds: float) -> None:
        self.requests.labels(route, method, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def observe_run(self, texts: int, seconds: float, waited_s: Sequence[float]) -> None:
        self.batch_texts.observe(texts)
        self.texts.inc(texts)
        self.inference.observe(seconds)
        for w in waited_s:
            self.queue_wait.observe(w)

    def render(self) -> bytes:
        return generate_latest(self.registry)
