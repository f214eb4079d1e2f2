"""Inline SVG charts: no JavaScript, no external fonts or CDNs; the page stands alone."""

from __future__ import annotations

from collections.abc import Sequence
from html import escape

from advisor.advise.rules.base import human

PALETTE = ("#d62728", "#ff7f0e", "#9467bd", "#8c564b", "#1f77b4", "#2ca02c", "#7f7f7f", "#17becf", "#bcbd22", "#e377c2")


def bar_chart(items: Sequence[tuple[str, int]], title: str, width: int = 760) -> str:
    """Horizontal bars, one per (label, bytes), scaled to the largest."""
    rows = [(label, value) for label, value in items if value > 0] or [("(nothing)", 0)]
    bar_h, gap, label_w = 22, 6, 230
    height = 30 + len(rows) * (bar_h + gap)
    peak = max(v for _, v in rows) or 1
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}">',
        f'<text x="0" y="16" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    for i, (label, value) in enumerate(rows):
        y = 28 + i * (bar_h + gap)
        w = max(1, int((width - label_w - 110) * value / peak)) if value else 0
        color = PALETTE[i % len(PALETTE)]
        parts += [
            f'<text x="{label_w - 8}" y="{y + 15}" font-size="12" text-anchor="end">{escape(label[:32])}</text>',
            f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" fill="{color}"><title>{escape(label)}: {value} bytes</title></rect>',
            f'<text x="{label_w + w + 6}" y="{y + 15}" font-size="12">{escape(human(value))}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


def stacked_bar(items: Sequence[tuple[str, int]], title: str, width: int = 760) -> str:
    """One bar split by share, with a legend: the whole image at a glance."""
    rows = [(label, value) for label, value in items if value > 0]
    total = sum(v for _, v in rows) or 1
    legend_h = 20 * ((len(rows) + 3) // 4)
    height = 80 + legend_h
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" aria-label="{escape(title)}">',
        f'<text x="0" y="16" font-size="14" font-weight="bold">{escape(title)}</text>',
    ]
    x = 0.0
    for i, (label, value) in enumerate(rows):
        w = width * value / total
        parts.append(f'<rect x="{x:.2f}" y="26" width="{w:.2f}" height="34" fill="{PALETTE[i % len(PALETTE)]}">'
                     f'<title>{escape(label)}: {human(value)}</title></rect>')
        x += w
    for i, (label, value) in enumerate(rows):
        lx, ly = (i % 4) * (width // 4), 78 + (i // 4) * 20
        parts += [f'<rect x="{lx}" y="{ly - 10}" width="12" height="12" fill="{PALETTE[i % len(PALETTE)]}"/>',
                  f'<text x="{lx + 16}" y="{ly}" font-size="12">{escape(label)} {escape(human(value))} '
                  f'({value / total * 100:.1f} %)</text>']
    parts.append("</svg>")
    return "".join(parts)
