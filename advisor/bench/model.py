"""What flows through ``advisor bench``: its configuration and its measured results.

Sizes are bytes, times seconds (latencies milliseconds, as the key names say). Results are
frozen; ``report.json`` is rendered from them by ``advisor.report.bench.render``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.bench.cases import DEFAULT_CASES, BenchCase
from advisor.bench.stats import LatencySummary

SCHEMA_VERSION = 1
#: Bandwidths the report turns compressed sizes into pull times at (bits per second).
BANDWIDTHS: Mapping[str, float] = {"100 Mbit/s": 100e6, "1 Gbit/s": 1e9}

#: Progress callback: (steps done, total steps, what is running), like the CLI's bar expects.
ProgressFn = Callable[[int, int, str], None]


def no_progress(done: int, total: int, what: str) -> None:
    return None


@dataclass(frozen=True)
class BenchConfig:
    """Everything ``run_bench`` needs; the CLI fills it from its options."""

    original: str  # ImageRef of the fat image (its own torch + transformers)
    slim: str  # ImageRef of the slim onnxruntime serving image
    data: Path | None = None  # CSV text,label; default: the sample model's held-out CSV
    original_model_path: str | None = None  # model folder inside the original image
    advice: Path | None = None  # `advisor advise --format json` output to show in the report
    cases: tuple[BenchCase, ...] = DEFAULT_CASES
    threads: int = 2
    max_samples: int | None = 1000  # labelled rows scored on each side
    rounds: int = 5  # latency is measured in rounds that alternate the two sides
    iterations: int = 40  # latency samples per case and side, spread over the rounds
    max_case_seconds: float = 30.0  # time budget per case and side
    throughput_seconds: float = 5.0
    concurrency: tuple[int, ...] = (1, 4)
    load_requests: int = 400
    load_seconds: float = 10.0
    startup_timeout_s: float = 600.0
    workdir: Path | None = (
        None  # probe scratch files; images unpack where the build runner puts them
    )
    insecure: bool = False  # plain-HTTP registries beyond loopback
    # Run the images' code on this host as root (unshare, host network) instead of under
    # runc: only when the user asks by name (--unsandboxed-host-run).
    unsandboxed_host_run: bool = False


@dataclass(frozen=True, slots=True)
class LayerSize:
    index: int
    digest: str
    size_bytes: int
    compressed_size_bytes: int
    files: int
    created_by: str


@dataclass(frozen=True, slots=True)
class ImageSizes:
    reference: str
    digest: str
    size_bytes: int  # merged filesystem after whiteouts
    layers_size_bytes: int  # sum of every layer's file bytes (what `docker history` adds up)
    compressed_size_bytes: int
    file_count: int
    layers: tuple[LayerSize, ...]
    categories: Mapping[str, int] = field(default_factory=dict)  # top-level area -> bytes

    def pull_seconds(self) -> dict[str, float]:
        return {name: self.compressed_size_bytes * 8 / bps for name, bps in BANDWIDTHS.items()}


@dataclass(frozen=True, slots=True)
class LoadRun:
    """One concurrency level of the HTTP load test."""

    concurrency: int
    batch: int
    requests: int
    errors: int
    seconds: float
    throughput_per_s: float
    latency: LatencySummary | None


@dataclass(frozen=True)
class SideResult:
    """One image, measured in its own environment."""

    reference: str
    sizes: ImageSizes | None
    runtime: str  # "torch" or "onnxruntime"
    model_path: str
    accuracy: float
    cold_start_s: float
    peak_rss_bytes: int
    latency: Mapping[str, LatencySummary]  # model-only, in-process, per case
    throughput_per_s: float  # in-process, at the largest case
    predictions: tuple[str, ...] = ()
    versions: Mapping[str, str] = field(default_factory=dict)
    http_latency: Mapping[str, LatencySummary] = field(default_factory=dict)
    load: tuple[LoadRun, ...] = ()
    notes: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchReport:
    original: SideResult
    slim: SideResult
    agreement: float
    data_path: str
    samples: int
    cases: tuple[BenchCase, ...]
    environment: Mapping[str, Any]
    advice: Mapping[str, Any] | None = None
