"""``report.html``: one self-contained page (inline CSS and SVG, no script, no network)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

from advisor.bench.model import BenchReport, ImageSizes, SideResult
from advisor.bench.stats import LatencySummary
from advisor.report.bench.render import (
    LATENCY_HEADER,
    advice_summary,
    fmt_bytes,
    fmt_ms,
    fmt_seconds,
    latency_rows,
    method_notes,
    summary_rows,
)
from advisor.report.charts import (
    HTTP,
    ORIGINAL,
    PALETTE,
    SLIM,
    Bar,
    Series,
    bar_chart,
    stacked_bars,
    strip_plot,
)
from advisor.report.page import page

_CSS = """
body{font-family:system-ui,sans-serif;margin:2rem auto;max-width:980px;color:#212529;padding:0 1rem}
h1{font-size:1.6rem}h2{font-size:1.25rem;margin-top:2.2rem;border-bottom:1px solid #dee2e6}
table{border-collapse:collapse;margin:.6rem 0 1rem;font-size:.9rem}
th,td{border:1px solid #dee2e6;padding:.3rem .6rem;text-align:right}
th:first-child,td:first-child,td.t,th.t{text-align:left}th{background:#f8f9fa}
td{white-space:nowrap}td.t{white-space:normal}
code{font-size:.85em;word-break:break-all}.muted{color:#868e96;font-size:.85rem}
.cards{display:flex;gap:1rem;flex-wrap:wrap}.card{border:1px solid #dee2e6;border-radius:6px;
padding:.6rem 1rem;min-width:170px}.card b{display:block;font-size:1.5rem}
figure{margin:.8rem 0}figcaption{font-size:.85rem;color:#495057}
.o{color:#e8590c}.s{color:#2b8a3e}
"""


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], text_col: int = -1) -> str:
    """A table of right-aligned figures; ``text_col`` (if any) holds free text, left-aligned."""

    def cls(i: int, n: int) -> str:
        return ' class="t"' if text_col >= 0 and i == text_col % n else ""

    head = "".join(f"<th{cls(i, len(header))}>{escape(h)}</th>" for i, h in enumerate(header))
    body = "".join(
        "<tr>"
        + "".join(f"<td{cls(i, len(row))}>{escape(c)}</td>" for i, c in enumerate(row))
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _inline_code(note: str) -> str:
    """Markdown `code` spans of the shared notes as <code>, everything else escaped."""
    parts = escape(note).split("`")
    return "".join(f"<code>{p}</code>" if i % 2 else p for i, p in enumerate(parts))


def _figure(svg: str, caption: str) -> str:
    return f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>"


def _cards(report: BenchReport) -> str:
    o, s = report.original, report.slim
    items = []
    if o.sizes and s.sizes and s.sizes.size_bytes:
        items.append(("smaller image", f"{o.sizes.size_bytes / s.sizes.size_bytes:.1f}x"))
    if s.cold_start_s:
        items.append(("faster cold start", f"{o.cold_start_s / s.cold_start_s:.1f}x"))
    if s.peak_rss_bytes:
        items.append(("less memory", f"{o.peak_rss_bytes / s.peak_rss_bytes:.1f}x"))
    items.append(("accuracy change", f"{(s.accuracy - o.accuracy) * 100:+.1f} pts"))
    items.append(("agreement", f"{report.agreement * 100:.1f} %"))
    return (
        '<div class="cards">'
        + "".join(f'<div class="card"><b>{escape(v)}</b>{escape(k)}</div>' for k, v in items)
        + "</div>"
    )


def _series(
    label: str, latency: Mapping[str, LatencySummary], case: str, color: str
) -> Series | None:
    summary = latency.get(case)
    if summary is None:
        return None
    marks = (("p50", summary.p50), ("p95", summary.p95), ("p99", summary.p99))
    return Series(label, summary.samples, color, marks)


def _latency_section(report: BenchReport) -> str:
    parts = ["<h2>Latency</h2>", _table(LATENCY_HEADER, latency_rows(report))]
    for case in report.cases:
        series = [
            _series("original (torch)", report.original.latency, case.name, ORIGINAL),
            _series("slim (onnxruntime)", report.slim.latency, case.name, SLIM),
            _series("slim over HTTP", report.slim.http_latency, case.name, HTTP),
        ]
        present = [s for s in series if s is not None]
        if present:
            svg = strip_plot(f"latency {case.name}", present, fmt_ms)
            caption = f"{case.name}: batch {case.batch}, {case.seq} tokens; every sample, ticks at p50 (thick), p95, p99"
            parts.append(_figure(svg, caption))
    return "".join(parts)


def _segments(sizes: ImageSizes, colors: dict[str, str]) -> list[Bar]:
    return [Bar(name, float(v), colors[name]) for name, v in sizes.categories.items()]


def _size_section(report: BenchReport) -> str:
    o, s = report.original.sizes, report.slim.sizes
    if o is None or s is None:
        return "<h2>Size</h2><p class='muted'>models were compared, not images: no sizes.</p>"
    names = list(dict.fromkeys([*o.categories, *s.categories]))
    colors = {n: PALETTE[i % len(PALETTE)] for i, n in enumerate(names)}
    parts = ["<h2>Size</h2>"]
    stacked = stacked_bars(
        "size by area",
        [("original", _segments(o, colors)), ("slim", _segments(s, colors))],
        fmt_bytes,
    )
    parts.append(_figure(stacked, "uncompressed bytes of the merged filesystem, by area"))
    pull = [Bar(f"original {bw}", t, ORIGINAL) for bw, t in o.pull_seconds().items()]
    pull += [Bar(f"slim {bw}", t, SLIM) for bw, t in s.pull_seconds().items()]
    parts.append(
        _figure(bar_chart("pull time", pull, fmt_seconds), "compressed bytes at line rate")
    )
    for title, sizes, color in (("original", o, ORIGINAL), ("slim", s, SLIM)):
        bars = [
            Bar(f"layer {layer.index}", float(layer.size_bytes), color) for layer in sizes.layers
        ]
        rows = [
            (
                str(layer.index),
                fmt_bytes(layer.size_bytes),
                fmt_bytes(layer.compressed_size_bytes),
                f"{layer.files:,}",
                layer.created_by[:110],
            )
            for layer in sizes.layers
        ]
        parts.append(f"<h3>Layers of the {title} image</h3>")
        parts.append(
            _figure(bar_chart(f"{title} layers", bars, fmt_bytes), f"{title}: bytes per layer")
        )
        parts.append(_table(("#", "size", "compressed", "files", "created by"), rows, text_col=4))
    return "".join(parts)


def _resources_section(report: BenchReport) -> str:
    o, s = report.original, report.slim
    cold = bar_chart(
        "cold start",
        [Bar("original", o.cold_start_s, ORIGINAL), Bar("slim", s.cold_start_s, SLIM)],
        fmt_seconds,
    )
    mem = bar_chart(
        "peak memory",
        [
            Bar("original", float(o.peak_rss_bytes), ORIGINAL),
            Bar("slim", float(s.peak_rss_bytes), SLIM),
        ],
        fmt_bytes,
    )
    tput = bar_chart(
        "throughput",
        [Bar("original", o.throughput_per_s, ORIGINAL), Bar("slim", s.throughput_per_s, SLIM)],
        lambda v: f"{v:.0f}/s",
    )
    return (
        "<h2>Cold start, memory, throughput</h2>"
        + _figure(cold, "process start to first prediction (slim: its server's first /predict)")
        + _figure(mem, "peak resident memory (VmHWM) of the probe / server process")
        + _figure(tput, "texts per second in-process at the largest case")
        + _load_table(s)
    )


def _load_table(side: SideResult) -> str:
    if not side.load:
        return ""
    rows = [
        (str(r.concurrency), str(r.requests), str(r.errors), f"{r.throughput_per_s:.1f}",
         fmt_ms(r.latency.p50 if r.latency else None), fmt_ms(r.latency.p99 if r.latency else None))
        for r in side.load
    ]  # fmt: skip
    header = ("clients", "requests", "errors", "texts/s", "p50", "p99")
    return "<h3>Slim server under load (HTTP, loopback)</h3>" + _table(header, rows)


def _advice_section(report: BenchReport) -> str:
    if report.advice is None:
        return ""
    summary = advice_summary(report.advice)
    steps = summary["recommendations"]
    bars = [Bar("as shipped", float(summary["size_bytes"]), ORIGINAL)]
    bars += [
        Bar(str(r["id"])[:22], float(r["size_after_bytes"]), PALETTE[i % len(PALETTE)])
        for i, r in enumerate(steps)
    ]
    rows = [
        (
            r["id"],
            r["title"],
            fmt_bytes(r["estimated_savings_bytes"]),
            fmt_bytes(r["size_before_bytes"]),
            fmt_bytes(r["size_after_bytes"]),
        )
        for r in steps
    ]
    return (
        "<h2>Recommendations: before and after</h2>"
        + _figure(
            bar_chart("size after each recommendation", bars, fmt_bytes, label_w=170),
            "image size after applying the recommendations in order (estimated by advisor advise)",
        )
        + _table(("id", "recommendation", "saves", "before", "after"), rows, text_col=1)
    )


def _versions(side: SideResult) -> str:
    return escape(", ".join(f"{k} {v}" for k, v in sorted(side.versions.items())))


def _header(report: BenchReport) -> str:
    env = report.environment
    o, s = report.original, report.slim
    return (
        "<h1>advisor bench: original vs slim</h1>"
        f'<p><span class="o">original</span> <code>{escape(o.reference)}</code> ({_versions(o)})<br>'
        f'<span class="s">slim</span> <code>{escape(s.reference)}</code> ({_versions(s)})<br>'
        f"data <code>{escape(report.data_path)}</code>, {report.samples} labelled texts</p>"
        f'<p class="muted">{escape(str(env.get("cpu") or env.get("machine")))}, {escape(str(env.get("cpu_count")))} CPUs, '
        f"{escape(str(env.get('threads')))} threads per side, {escape(str(env.get('date')))}</p>"
    )


def report_html(report: BenchReport) -> str:
    body = [
        _header(report),
        _cards(report),
        "<h2>Summary</h2>",
        _table(("metric", "original", "slim", "slim/original"), summary_rows(report)),
        _latency_section(report),
        _resources_section(report),
        _size_section(report),
        _advice_section(report),
        "<h2>How this was measured</h2><ul>"
        + "".join(f"<li>{_inline_code(n.removeprefix('- '))}</li>" for n in method_notes(report))
        + "</ul>",
    ]
    return page("advisor bench", "".join(body), _CSS)
