"""Latency statistics: percentiles with linear interpolation, the same definition as numpy's
default (``method="linear"``), so numbers computed here and in a notebook agree."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``samples``, interpolating between ranks."""
    if not samples:
        raise ValueError("percentile of an empty sample")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"percentile {q} is outside 0..100")
    ordered = sorted(samples)
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    frac = rank - low
    return ordered[low] + (ordered[high] - ordered[low]) * frac


@dataclass(frozen=True, slots=True)
class LatencySummary:
    """One case's latency in milliseconds, with the raw samples kept for the plots."""

    p50: float
    p95: float
    p99: float
    mean: float
    min: float
    max: float
    count: int
    samples: tuple[float, ...]

    @classmethod
    def of(cls, samples_ms: Sequence[float]) -> LatencySummary:
        values = tuple(float(s) for s in samples_ms)
        return cls(
            p50=percentile(values, 50),
            p95=percentile(values, 95),
            p99=percentile(values, 99),
            mean=sum(values) / len(values),
            min=min(values),
            max=max(values),
            count=len(values),
            samples=values,
        )

    def to_json(self) -> dict[str, float | int]:
        """The contract keys (p50/p95/p99) plus a few more; samples stay out of the JSON."""
        return {
            "p50": round(self.p50, 3),
            "p95": round(self.p95, 3),
            "p99": round(self.p99, 3),
            "mean": round(self.mean, 3),
            "min": round(self.min, 3),
            "max": round(self.max, 3),
            "count": self.count,
        }


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    """``numerator / denominator``, or ``None`` when either is missing or the divisor is 0."""
    if numerator is None or denominator is None or denominator == 0:
        return None
    return numerator / denominator


def pull_seconds(compressed_bytes: int, bits_per_second: float) -> float:
    """Time to move ``compressed_bytes`` at a line rate (no latency, no decompression)."""
    return compressed_bytes * 8 / bits_per_second
