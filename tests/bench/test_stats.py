from __future__ import annotations

import math
import random

import numpy as np
import pytest

from advisor.bench.stats import LatencySummary, percentile, pull_seconds, ratio


@pytest.mark.parametrize("size", [1, 2, 3, 10, 101, 1000])
@pytest.mark.parametrize("q", [0, 1, 50, 95, 99, 99.9, 100])
def test_percentile_matches_numpy_linear(size: int, q: float) -> None:
    rng = random.Random(size * 1000 + int(q * 10))
    samples = [rng.lognormvariate(2.0, 0.6) for _ in range(size)]
    assert percentile(samples, q) == pytest.approx(float(np.percentile(samples, q)), rel=1e-12)


def test_percentile_interpolates_between_ranks() -> None:
    # rank = (4 - 1) * 0.5 = 1.5: halfway between 20 and 30, whatever the input order.
    assert percentile([40.0, 10.0, 30.0, 20.0], 50) == pytest.approx(25.0)
    assert percentile([10.0, 20.0], 95) == pytest.approx(19.5)


def test_percentile_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="empty"):
        percentile([], 50)
    with pytest.raises(ValueError, match="outside"):
        percentile([1.0], 101)


def test_summary_keeps_samples_and_orders_percentiles() -> None:
    samples = [float(x) for x in range(1, 201)]
    s = LatencySummary.of(samples)
    assert s.count == 200 and s.samples == tuple(samples)
    assert s.min <= s.p50 <= s.p95 <= s.p99 <= s.max
    assert s.p50 == pytest.approx(100.5) and s.p99 == pytest.approx(198.01)
    assert s.mean == pytest.approx(100.5)
    assert set(s.to_json()) >= {"p50", "p95", "p99"}


def test_ratio_and_pull_time() -> None:
    assert ratio(1.0, 4.0) == pytest.approx(0.25)
    assert ratio(None, 1.0) is None and ratio(1.0, 0.0) is None
    # 125 MB at 1 Gbit/s is one second.
    assert pull_seconds(125_000_000, 1e9) == pytest.approx(1.0)
    assert math.isclose(pull_seconds(0, 1e8), 0.0)
