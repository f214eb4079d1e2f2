"""Inline SVG charts for every HTML report (advise and bench): no JavaScript, no external
assets, deterministic. Bars on one linear axis, stacked bars with a legend, strip plots."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from html import escape

# 21 distinct colours: the top-12 areas of two images rarely need more.
PALETTE = (
    "#4c6ef5", "#f59f00", "#37b24d", "#f03e3e", "#ae3ec9", "#1098ad", "#e8590c",
    "#74b816", "#d6336c", "#364fc7", "#fab005", "#0ca678", "#862e9c", "#c92a2a",
    "#5c940d", "#1864ab", "#e64980", "#495057", "#99e9f2", "#ffd8a8", "#adb5bd",
)  # fmt: skip
ORIGINAL = "#e8590c"
SLIM = "#2b8a3e"
HTTP = "#4dabf7"

Fmt = Callable[[float], str]
_FONT = 'font-family="system-ui,sans-serif" font-size="12"'


@dataclass(frozen=True, slots=True)
class Bar:
    label: str
    value: float
    color: str


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    samples: Sequence[float]
    color: str
    marks: Sequence[tuple[str, float]] = ()  # (name, value) ticks, e.g. p50/p95/p99


def bars_of(items: Sequence[tuple[str, float]]) -> list[Bar]:
    """One bar per (label, value) above zero, coloured in palette order."""
    shown = [(label, value) for label, value in items if value > 0]
    return [Bar(label, value, PALETTE[i % len(PALETTE)]) for i, (label, value) in enumerate(shown)]


def nice_ticks(high: float, count: int = 5) -> list[float]:
    """Round tick values from 0 to at least ``high``."""
    if high <= 0:
        return [0.0, 1.0]
    raw = high / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(math.ceil(high / step - 1e-9) + 1)]


def _text(x: float, y: float, s: str, anchor: str = "start", extra: str = "") -> str:
    return (
        f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}" {_FONT} {extra}>{escape(s)}</text>'
    )


def _svg(width: int, height: int, body: list[str], title: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>" + "".join(body) + "</svg>"
    )


def tick_labels(ticks: Sequence[float], fmt: Fmt) -> list[str]:
    """One unit for the whole axis (the largest tick's), as many decimals as the step needs:
    ``0 s, 200 s, 400 s``, never ``0 ms, 200.00 s, 400.00 s``."""
    labels = [fmt(t) for t in ticks]
    top = max(ticks, default=0.0)
    number, _, unit = labels[ticks.index(top)].partition(" ") if top else ("", "", "")
    try:
        shown = float(number.replace(",", ""))
    except ValueError:
        return labels  # not "NUMBER UNIT": leave the formatter's own words
    if shown <= 0 or not unit or len(ticks) < 2:
        return labels
    per = 10.0 ** round(math.log10(top / shown))  # the unit's size (a power of ten) in the ticks' measure
    step = (ticks[1] - ticks[0]) / per
    decimals = next((d for d in range(4) if abs(round(step, d) - step) < 1e-9 * max(1.0, step)), 3)
    return [f"{t / per:.{decimals}f} {unit}" for t in ticks]


def _axis(x0: float, x1: float, y: float, ticks: list[float], scale: float, fmt: Fmt) -> list[str]:
    out = [f'<line x1="{x0}" y1="{y}" x2="{x1}" y2="{y}" stroke="#868e96"/>']
    for t, label in zip(ticks, tick_labels(ticks, fmt), strict=True):
        x = x0 + t * scale
        out.append(f'<line x1="{x:.1f}" y1="{y}" x2="{x:.1f}" y2="{y + 4}" stroke="#868e96"/>')
        out.append(_text(x, y + 16, label, "middle", 'fill="#495057"'))
    return out


def bar_chart(
    title: str, bars: Sequence[Bar], fmt: Fmt, width: int = 640, label_w: int = 150
) -> str:
    """Horizontal bars on one linear scale, each labelled with its formatted value."""
    row, top = 26, 8
    high = max((b.value for b in bars), default=0.0)
    ticks = nice_ticks(high)
    plot_w = width - label_w - 80
    scale = plot_w / ticks[-1] if ticks[-1] else 0.0
    body: list[str] = []
    for i, b in enumerate(bars):
        y = top + i * row
        w = max(b.value * scale, 1.0 if b.value > 0 else 0.0)
        body.append(_text(label_w - 8, y + 15, b.label, "end"))
        body.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{w:.1f}" height="{row - 8}" fill="{b.color}"/>'
        )
        body.append(_text(label_w + w + 6, y + 15, fmt(b.value)))
    axis_y = top + len(bars) * row + 4
    body += _axis(label_w, label_w + plot_w, axis_y, ticks, scale, fmt)
    return _svg(width, axis_y + 24, body, title)


def stacked_bars(
    title: str,
    rows: Sequence[tuple[str, Sequence[Bar]]],
    fmt: Fmt,
    width: int = 760,
    label_w: int = 110,
) -> str:
    """One stacked bar per row, all on one scale, with a legend of every segment label."""
    row, top = 34, 8
    high = max((sum(s.value for s in segs) for _, segs in rows), default=0.0)
    ticks = nice_ticks(high)
    plot_w = width - label_w - 90
    scale = plot_w / ticks[-1] if ticks[-1] else 0.0
    body: list[str] = []
    for i, (label, segments) in enumerate(rows):
        y, x = top + i * row, float(label_w)
        body.append(_text(label_w - 8, y + 19, label, "end"))
        for s in segments:
            w = s.value * scale
            tip = f"{s.label}: {fmt(s.value)}"
            body.append(
                f'<rect x="{x:.1f}" y="{y + 4}" width="{w:.1f}" height="{row - 10}" fill="{s.color}">'
                f"<title>{escape(tip)}</title></rect>"
            )
            x += w
        body.append(_text(x + 6, y + 19, fmt(sum(s.value for s in segments))))
    axis_y = top + len(rows) * row + 4
    body += _axis(label_w, label_w + plot_w, axis_y, ticks, scale, fmt)
    legend = _legend(rows, axis_y + 30, width)
    return _svg(width, axis_y + 30 + legend[1], body + legend[0], title)


def _legend(
    rows: Sequence[tuple[str, Sequence[Bar]]], y0: float, width: int
) -> tuple[list[str], int]:
    seen: dict[str, str] = {}
    for _, segments in rows:
        for s in segments:
            seen.setdefault(s.label, s.color)
    out: list[str] = []
    x, y, col_w = 10.0, y0, 245
    for label, color in seen.items():
        if x + col_w > width:
            x, y = 10.0, y + 18
        out.append(f'<rect x="{x:.0f}" y="{y - 10:.0f}" width="10" height="10" fill="{color}"/>')
        out.append(_text(x + 14, y, label[:36]))
        x += col_w
    return out, int(y - y0) + 12


def _jitter(i: int) -> float:
    """A deterministic spread in [-1, 1] (golden-ratio sequence): same report, same picture."""
    return ((i * 0.6180339887) % 1.0) * 2 - 1


def strip_plot(
    title: str, series: Sequence[Series], fmt: Fmt, width: int = 640, label_w: int = 130
) -> str:
    """Every latency sample as a dot per series, with percentile ticks, on one linear axis."""
    row, top = 40, 8
    high = max((max(s.samples) for s in series if s.samples), default=0.0)
    ticks = nice_ticks(high)
    plot_w = width - label_w - 40  # room for the last tick's label
    scale = plot_w / ticks[-1] if ticks[-1] else 0.0
    body: list[str] = []
    for i, s in enumerate(series):
        mid = top + i * row + row / 2
        body.append(_text(label_w - 8, mid + 4, s.label, "end"))
        body.append(
            f'<line x1="{label_w}" y1="{mid}" x2="{label_w + plot_w}" y2="{mid}" stroke="#f1f3f5"/>'
        )
        for j, v in enumerate(s.samples):
            cy = mid + _jitter(j) * (row / 2 - 8)
            body.append(
                f'<circle cx="{label_w + v * scale:.1f}" cy="{cy:.1f}" r="2.5" fill="{s.color}" fill-opacity="0.55"/>'
            )
        for name, v in s.marks:
            x = label_w + v * scale
            body.append(
                f'<line x1="{x:.1f}" y1="{mid - row / 2 + 3}" x2="{x:.1f}" y2="{mid + row / 2 - 3}" '
                f'stroke="#212529" stroke-width="{2 if name == "p50" else 1}">'
                f"<title>{escape(f'{s.label} {name}: {fmt(v)}')}</title></line>"
            )
    axis_y = top + len(series) * row + 2
    body += _axis(label_w, label_w + plot_w, axis_y, ticks, scale, fmt)
    return _svg(width, axis_y + 24, body, title)
