"""Chart axes speak one unit with one precision (the bench pull-time axis read 0 ms, 200.00 s)."""

from __future__ import annotations

import re

import advisor.bench  # noqa: F401  (first: advisor.bench imports the report modules)
from advisor.report.bench.render import fmt_bytes, fmt_ms, fmt_seconds
from advisor.report.charts import Bar, bar_chart, nice_ticks, tick_labels


def test_seconds_axis_one_unit() -> None:
    assert tick_labels(nice_ticks(410), fmt_seconds) == ["0 s", "100 s", "200 s", "300 s", "400 s", "500 s"]
    assert tick_labels([0.0, 0.25, 0.5], fmt_seconds) == ["0 ms", "250 ms", "500 ms"]
    assert tick_labels([0.0, 2.5, 5.0], fmt_ms) == ["0.0 ms", "2.5 ms", "5.0 ms"]
    assert tick_labels([0.0, 1.25e6, 2.5e6], fmt_bytes) == ["0.00 MB", "1.25 MB", "2.50 MB"]


def test_pull_time_chart_axis() -> None:
    svg = bar_chart("pull time", [Bar("original 100 Mbit/s", 410.0, "#000"), Bar("slim", 12.0, "#0f0")], fmt_seconds)
    axis = re.findall(r'fill="#495057">([^<]+)</text>', svg)
    assert axis and all(label.endswith(" s") and "." not in label for label in axis), axis
