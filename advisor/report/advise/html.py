"""One self-contained HTML page: inline CSS and SVG charts, no script, no network."""

from __future__ import annotations

from html import escape

from advisor.advise.advice import Advice
from advisor.advise.facts.dockerfile import normalize
from advisor.advise.rules.base import human
from advisor.report.advise.common import LAYER_FILES, TOP_FILES, alternative_note, command, evidence
from advisor.report.charts import bar_chart, bars_of, stacked_bars
from advisor.report.page import page

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem;color:#222;max-width:1800px}
h1{font-size:1.5rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #ddd}
table{border-collapse:collapse;width:100%;font-size:.9rem}th,td{border:1px solid #ddd;padding:4px 6px;text-align:left;vertical-align:top}
td.n{text-align:right;white-space:nowrap}.sev-critical,.sev-high{color:#b00020;font-weight:bold}.sev-medium{color:#b35900}
.summary{display:flex;gap:2rem;flex-wrap:wrap}.summary div{background:#f4f6f8;padding:.6rem 1rem;border-radius:6px}
code{font-size:.85rem;overflow-wrap:anywhere}
td.id code,td.id{white-space:nowrap}td.paths{min-width:16rem}td.paths code{overflow-wrap:anywhere}
td.msg{min-width:18rem}td.n small{color:#666}svg{max-width:100%;height:auto}
@media (max-width:1000px){body{margin:1rem}td.msg{min-width:7rem}td.paths{min-width:9.5rem}th,td{padding:3px 4px}}.gate-fail{color:#b00020;font-weight:bold}.gate-pass{color:#1b7f3b}
"""


def _table(head: list[str], rows: list[list[str]], numeric: set[int],
           classes: dict[int, str] | None = None) -> str:
    """A table; ``numeric`` columns align right, ``classes`` names a column's role (id, msg, paths)."""
    th = "".join(f"<th>{escape(h)}</th>" for h in head)

    def cls(i: int) -> str:
        names = " ".join(n for n in ("n" if i in numeric else "", (classes or {}).get(i, "")) if n)
        return f' class="{names}"' if names else ""

    body = "".join("<tr>" + "".join(f"<td{cls(i)}>{c}</td>" for i, c in enumerate(r)) + "</tr>" for r in rows)
    return f"<table><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>"


def _paths(files: list[tuple[str, int]] | tuple[tuple[str, int], ...], more: int = 0) -> str:
    items = [f"<code>/{escape(p)}</code>" + (f" <small>{escape(human(s))}</small>" if s >= 0 else "")
             for p, s in files]
    return "<br>".join(items + ([f"<small>and {more} more</small>"] if more else []))


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
    figures = []
    if bars_of(cats):
        figures.append(("Bytes by category", stacked_bars("Bytes by category", [("image", bars_of(cats))], human)))
    for title, items in (("Bytes by layer", layers), ("Estimated savings by recommendation", recs),
                         ("Largest Python distributions", dists)):
        if bars_of(items):  # an empty chart says nothing: the table below says "none"
            figures.append((title, bar_chart(title, bars_of(items), human, width=800, label_w=280)))
    return "".join(f"<figure>{svg}<figcaption>{escape(caption)}</figcaption></figure>" for caption, svg in figures)


def _sections(a: Advice) -> str:
    out = [_gate(a)]
    if a.recommendations:
        rows = []
        for i, r in enumerate(a.recommendations, 1):
            note = f", <i>{escape(alternative_note(a, r, human(r.standalone_savings_bytes)))}</i>" if r.alternative_to else ""
            saves = "-" if r.alternative_to else escape(human(r.estimated_savings_bytes))
            rows.append([str(i), escape(r.title) + note, saves, f"<code>{escape(r.fix)}</code>"])
        out.append("<h2>Recommendations</h2>" + _table(["#", "recommendation", "saves", "fix"], rows, {2}))
    if a.findings:
        rows = []
        for f in a.findings:
            top, more = evidence(f)
            rows.append([f'<span class="sev-{f.severity}">{f.severity}</span>', f"<code>{escape(f.rule)}</code>",
                         escape(human(f.bytes)), escape(f.message), _paths(top, more)])
        out.append("<h2>Findings</h2>" + _table(["severity", "rule", "bytes", "message", "largest paths"], rows,
                                                {2}, {0: "id", 1: "id", 3: "msg", 4: "paths"}))
    if a.layers:
        rows = [[str(r.index), escape(human(r.size_bytes)), str(r.files), f"<code>{escape(command(r.created_by, 160))}</code>",
                 _paths(r.largest_files[:LAYER_FILES])] for r in a.layers]
        out.append("<h2>Layers</h2>" + _table(["layer", "size", "files", "created by", "largest files"], rows,
                                              {1, 2}, {4: "paths"}))
    if a.largest_files:
        rows = [[f"<code>/{escape(p)}</code>", escape(human(s))] for p, s in a.largest_files[:TOP_FILES]]
        out.append("<h2>Largest files</h2>" + _table(["file", "bytes"], rows, {1}, {0: "paths"}))
    if a.distributions:
        rows = [[escape(d.name), escape(d.version), escape(human(d.size_bytes)), escape(human(d.removable_with_deps_bytes)),
                 f"<code>/{escape(d.environment)}</code>"] for d in a.distributions[:40]]
        out.append("<h2>Python distributions</h2>" + _table(
            ["distribution", "version", "bytes", "freed with its own deps", "environment"], rows, {2, 3}))
    return "".join(out)


def _gate(a: Advice) -> str:
    g = a.gate
    if g is None:
        return ""
    rows = [[f'<span class="gate-{c.status.value.lower()}">{c.status.value}</span>', f"<code>{escape(c.rule)}</code>",
             escape(c.value), escape(c.limit), escape(c.dive_key)] for c in g.checks]
    return f"<h2>Gate: {escape(g.summary())}</h2>" + _table(["status", "rule", "value", "limit", "dive"], rows, set())


def render_html(a: Advice) -> str:
    title = f"advisor report: {a.facts.reference}"
    return page(title, f"<h1>{escape(title)}</h1>{_summary(a)}{_charts(a)}{_sections(a)}", CSS)
