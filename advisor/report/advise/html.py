"""One self-contained HTML page: inline CSS and SVG charts, no script, no network."""

from __future__ import annotations

from html import escape

from advisor.advise.advice import Advice
from advisor.advise.facts.dockerfile import normalize
from advisor.advise.rules.base import human
from advisor.report.svg import bar_chart, stacked_bar

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222;max-width:1100px}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
td.n{text-align:right;white-space:nowrap}.sev-critical,.sev-high{color:#b00020;font-weight:bold}.sev-medium{color:#b35900}
.summary{display:flex;gap:2rem;flex-wrap:wrap}.summary div{background:#f4f6f8;padding:.6rem 1rem;border-radius:6px}
code{font-size:.85rem;word-break:break-all}.gate-fail{color:#b00020;font-weight:bold}.gate-pass{color:#1b7f3b}
"""


def _table(head: list[str], rows: list[list[str]], numeric: set[int]) -> str:
    th = "".join(f"<th>{escape(h)}</th>" for h in head)
    body = "".join(
        "<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>" for i, c in enumerate(r)) + "</tr>"
        for r in rows
    )
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _summary(a: Advice) -> str:
    f = a.facts
    cells = [("Image size", human(a.size_bytes)), ("Compressed", human(f.compressed_size)),
             ("Efficiency", f"{a.efficiency * 100:.1f} %"), ("Wasted", human(a.wasted_bytes)),
             ("Estimated savings", human(a.total_estimated_savings_bytes))]
    return '<div class="summary">' + "".join(f"<div><b>{escape(k)}</b><br>{escape(v)}</div>" for k, v in cells) + "</div>"


def _step(created_by: str) -> str:
    """A history line as the Dockerfile line it came from, short enough for a chart label."""
    instruction, args = normalize(created_by)
    line = f"{instruction} {args}".strip() if created_by else "(no history)"
    return line if len(line) <= 30 else line[:29] + "\u2026"


def _charts(a: Advice) -> str:
    cats = sorted(a.categories.items(), key=lambda kv: (-kv[1], kv[0]))
    layers = [(f"{r.index}: {_step(r.created_by)}", r.size_bytes) for r in a.layers]
    dists = [(d.name, d.size_bytes) for d in a.distributions[:15]]
    recs = [(r.id, r.estimated_savings_bytes) for r in a.recommendations]
    return "".join([
        stacked_bar(cats, "Bytes by category"),
        bar_chart(layers, "Bytes by layer"),
        bar_chart(recs, "Estimated savings by recommendation"),
        bar_chart(dists, "Largest Python distributions"),
    ])


def _sections(a: Advice) -> str:
    recs = _table(["#", "recommendation", "saves", "fix"], [
        [str(i), escape(r.title) + (f" <i>(alternative to {escape(r.alternative_to)}; alone {escape(human(r.standalone_savings_bytes))})</i>" if r.alternative_to else ""),
         escape(human(r.estimated_savings_bytes)), f"<code>{escape(r.fix)}</code>"]
        for i, r in enumerate(a.recommendations, 1)], {2})
    findings = _table(["severity", "rule", "bytes", "message", "evidence"], [
        [f'<span class="sev-{f.severity}">{f.severity}</span>', f"<code>{escape(f.rule)}</code>", escape(human(f.bytes)),
         escape(f.message), "<br>".join(f"<code>/{escape(p)}</code>" for p in f.paths[:5])]
        for f in a.findings], {2})
    layers = _table(["layer", "size", "files", "created by"], [
        [str(r.index), escape(human(r.size_bytes)), str(r.files), f"<code>{escape(r.created_by[:160])}</code>"]
        for r in a.layers], {1, 2})
    dists = _table(["distribution", "version", "bytes", "freed with its own deps", "environment"], [
        [escape(d.name), escape(d.version), escape(human(d.size_bytes)), escape(human(d.removable_with_deps_bytes)), f"<code>/{escape(d.environment)}</code>"]
        for d in a.distributions[:40]], {2, 3})
    return (f"{_gate(a)}<h2>Recommendations</h2>{recs}<h2>Findings</h2>{findings}"
            f"<h2>Layers</h2>{layers}<h2>Python distributions</h2>{dists}")


def _gate(a: Advice) -> str:
    g = a.gate
    if g is None:
        return ""
    rows = [[f'<span class="gate-{c.status.value.lower()}">{c.status.value}</span>', f"<code>{escape(c.rule)}</code>",
             escape(c.value), escape(c.limit), escape(c.dive_key)] for c in g.checks]
    return f"<h2>Gate: {escape(g.summary())}</h2>" + _table(["status", "rule", "value", "limit", "dive"], rows, set())


def render_html(a: Advice) -> str:
    title = f"advisor report: {a.facts.reference}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
        f"<h1>{escape(title)}</h1>{_summary(a)}{_charts(a)}{_sections(a)}"
        "</body></html>\n"
    )
