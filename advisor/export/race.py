"""The graph race: which candidate ships, decided once per model digest and CPU.

Candidates are the graphs that could ship at the chosen precision: the fused one (Attention /
QAttention), the unfused one (MatMul / MatMulInteger; onnxruntime still fuses at load) and,
for int8 with labelled data, the statically calibrated unfused one (QDQ). A candidate
``SIZE_SLACK`` times bigger than the smallest is dropped (fusing ALBERT copies its shared
weights per layer), the rest are timed in turns (A B A B ..., fastest run kept) at batch 1
and 8, and they are ranked fastest first; for int8 the pipeline ships the first one within
the accuracy gate.

Timing is noisy and two graphs are often within a few percent of each other, so two exports of
one model could ship different graphs, and so build different images. The ranking is
therefore recorded under ``$ADVISOR_CACHE/export/race/KEY.json``, KEY hashing the model
folder's bytes, the export settings that shape the candidates, the library versions, the CPU
and the thread count; a later export with the same KEY reuses it instead of timing again.
Timings go to ``timings.json`` (not shipped in the image), never to validation.json.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import platform
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SIZE_SLACK = 1.25
TIMING_SHAPES = ((1, 128), (8, 128))
TIMING_RUNS = 9
TIMING_SECONDS = 1.0  # per shape, all candidates together
RECORD_VERSION = 1
_CPU_FLAGS = ("avx", "avx2", "avx512f", "avx512bw", "avx512_vnni", "avx_vnni", "avx512_bf16",
              "amx_int8", "amx_bf16", "fma", "f16c", "asimd", "sve", "i8mm", "asimddp")


@dataclass
class Candidate:
    """A graph that could ship, its timing and verdict."""

    name: str  # "fused" | "unfused" | "unfused-static"
    graph: str  # "fused" | "unfused": what --graph pins
    quantization: str  # "dynamic" | "static" | "none"
    path: Path
    size_bytes: int
    latency_ms: dict[str, float] = field(default_factory=dict)
    accuracy: float | None = None
    rejected: str = ""

    @property
    def score(self) -> float:
        """Geometric mean of the per-shape fastest runs: each shape weighs the same."""
        values = list(self.latency_ms.values())
        return math.prod(values) ** (1.0 / len(values)) if values else 0.0

    def as_dict(self, chosen: bool, rank: int | None) -> dict[str, Any]:
        """validation.json's view: no timings (they differ per run; see timings.json)."""
        return {"name": self.name, "graph": self.graph, "quantization": self.quantization,
                "chosen": chosen, "rank": rank, "size_bytes": self.size_bytes,
                "accuracy": self.accuracy, "rejected": self.rejected or None}


@dataclass(frozen=True)
class Ranking:
    """Eligible candidate names, fastest first, and how that order was reached."""

    order: tuple[str, ...]
    key: str
    source: str  # "measured" | "recorded" | "single" (nothing to time)
    latency_ms: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


def drop_oversized(candidates: Sequence[Candidate]) -> list[Candidate]:
    """Mark candidates much bigger than the smallest; return the eligible ones."""
    smallest = min(c.size_bytes for c in candidates)
    for c in candidates:
        if c.size_bytes > SIZE_SLACK * smallest:
            c.rejected = f"{c.size_bytes / smallest:.2f}x the size of the smallest candidate"
    return [c for c in candidates if not c.rejected]


def rank(eligible: list[Candidate], key: str, cache: Path | None, remeasure: bool,
         time_them: Callable[[list[Candidate]], None]) -> Ranking:
    """Order ``eligible`` fastest first: from the record under ``cache`` when one matches,
    else by ``time_them(eligible)`` (which fills ``latency_ms``), recorded for next time."""
    names = sorted(c.name for c in eligible)
    if len(eligible) < 2:
        return Ranking(tuple(c.name for c in eligible), key, "single")
    recorded = None if remeasure or cache is None else _load(cache, key)
    if recorded is not None and sorted(recorded["order"]) == names:
        by_name = {c.name: c for c in eligible}
        for name, latency in recorded.get("latency_ms", {}).items():
            if name in by_name:
                by_name[name].latency_ms = dict(latency)
        eligible.sort(key=lambda c: recorded["order"].index(c.name))
        return Ranking(tuple(recorded["order"]), key, "recorded", recorded.get("latency_ms", {}))
    time_them(eligible)
    eligible.sort(key=lambda c: c.score)
    ranking = Ranking(tuple(c.name for c in eligible), key, "measured",
                      {c.name: dict(c.latency_ms) for c in eligible})
    if cache is not None:
        _store(cache, ranking)
    return ranking


def decision_key(model_dir: Path, settings: Mapping[str, Any], threads: int) -> str:
    """What the ranking depends on: the model's bytes, the settings, versions, CPU, threads."""
    h = hashlib.sha256()
    h.update(json.dumps({"settings": dict(settings), "threads": threads, "versions": _versions(),
                         "cpu": cpu_fingerprint(), "shapes": TIMING_SHAPES,
                         "record": RECORD_VERSION}, sort_keys=True, default=str).encode())
    for path in sorted(p for p in model_dir.rglob("*") if p.is_file()):
        h.update(str(path.relative_to(model_dir)).encode() + b"\0")
        with path.open("rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                h.update(chunk)
    return h.hexdigest()


def cpu_fingerprint() -> str:
    """The CPU model and the vector-ISA flags that decide which kernels onnxruntime picks."""
    model, flags = platform.processor() or platform.machine(), set()
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        text = ""
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "model name":
            model = value.strip()
        elif key.strip() in ("flags", "Features"):
            flags = set(value.split())
            break
    return f"{platform.machine()} {model} [{' '.join(f for f in _CPU_FLAGS if f in flags)}]"


def _versions() -> dict[str, str]:
    import onnxruntime

    from advisor import __version__

    return {"onnxruntime": onnxruntime.__version__, "advisor": __version__}


def default_cache() -> Path:
    root = os.environ.get("ADVISOR_CACHE") or str(Path.home() / ".cache" / "advisor")
    return Path(root) / "export" / "race"


def _load(cache: Path, key: str) -> dict[str, Any] | None:
    try:
        data = json.loads((cache / f"{key}.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    ok = isinstance(data, dict) and data.get("record") == RECORD_VERSION
    return data if ok and isinstance(data.get("order"), list) else None


def _store(cache: Path, ranking: Ranking) -> None:
    """Write the record atomically; a cache that cannot be written only costs a re-race."""
    record = {"record": RECORD_VERSION, "key": ranking.key, "order": list(ranking.order),
              "latency_ms": {k: dict(v) for k, v in ranking.latency_ms.items()},
              "cpu": cpu_fingerprint(), "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    tmp = None
    try:
        cache.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".race-", dir=cache)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(record, f, indent=2, sort_keys=True)
        os.replace(tmp, cache / f"{ranking.key}.json")
        tmp = None
    except OSError:
        return
    finally:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
