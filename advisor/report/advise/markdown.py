"""Markdown report (for PR comments and CI summaries)."""

from __future__ import annotations

from advisor.advise.advice import Advice
from advisor.advise.rules.base import human
from advisor.report.advise.common import LAYER_FILES, TOP_FILES, alternative_note, command, evidence


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _files(files: list[tuple[str, int]] | tuple[tuple[str, int], ...]) -> str:
    return "<br>".join(f"`/{_cell(p)}` {human(s)}" if s >= 0 else f"`/{_cell(p)}`" for p, s in files)


def render_markdown(a: Advice) -> str:
    f = a.facts
    out = [
        f"# advisor report: `{f.reference}`", "",
        f"- platform: {f.os}/{f.architecture}; Python {a.python_version or '?'}",
        f"- size: **{human(a.size_bytes)}** (compressed {human(f.compressed_size)}); "
        f"the layers carry {human(a.layer_bytes)}",
        f"- efficiency: {a.efficiency * 100:.1f} %, wasted: {human(a.wasted_bytes)}",
        f"- estimated savings: **{human(a.total_estimated_savings_bytes)}** of the "
        f"{human(a.layer_bytes)} the layers carry", "",
    ]
    if a.recommendations:
        out += ["## Recommendations", "", "| # | recommendation | saves | fix |", "|---|---|---:|---|"]
    for i, r in enumerate(a.recommendations, 1):
        if r.alternative_to:
            saves = "-"
            title = f"{_cell(r.title)}, {alternative_note(a, r, human(r.standalone_savings_bytes))}"
        else:
            saves, title = human(r.estimated_savings_bytes), _cell(r.title)
        out.append(f"| {i} | {title} | {saves} | `{_cell(r.fix)}` |")
    cats = [(k, v) for k, v in sorted(a.categories.items(), key=lambda kv: (-kv[1], kv[0])) if v]
    if cats:
        out += ["", "## Where the bytes go", "", "| category | bytes |", "|---|---:|"]
        out += [f"| {k} | {human(v)} |" for k, v in cats]
    if a.findings:
        out += ["", "## Findings", "", "| severity | rule | bytes | message | largest paths |", "|---|---|---:|---|---|"]
    for x in a.findings:
        top, more = evidence(x)
        paths = _files(top) + (f"<br>and {more} more" if more else "")
        out.append(f"| {x.severity} | `{x.rule}` | {human(x.bytes)} | {_cell(x.message)} | {paths} |")
    if a.layers:
        out += ["", "## Layers", "", "| layer | size | files | created by | largest files |", "|---:|---:|---:|---|---|"]
        out += [f"| {r.index} | {human(r.size_bytes)} | {r.files} | `{_cell(command(r.created_by, 100))}` | "
                f"{_files(r.largest_files[:LAYER_FILES])} |" for r in a.layers]
    if a.largest_files:
        out += ["", "## Largest files", "", "| file | bytes |", "|---|---:|"]
        out += [f"| `/{_cell(p)}` | {human(s)} |" for p, s in a.largest_files[:TOP_FILES]]
    if a.distributions:
        out += ["", "## Largest Python distributions", "", "| name | version | bytes | freed with its own deps |", "|---|---|---:|---:|"]
        out += [f"| {d.name} | {d.version} | {human(d.size_bytes)} | {human(d.removable_with_deps_bytes)} |" for d in a.distributions[:25]]
    out += _gate(a)
    return "\n".join(out) + "\n"


def _gate(a: Advice) -> list[str]:
    g = a.gate
    if g is None:
        return []
    out = ["", f"## Gate: {g.summary()}", "", "| status | rule | value | limit | dive |", "|---|---|---|---|---|"]
    out += [f"| {c.status.value} | `{c.rule}` | {_cell(c.value)} | {_cell(c.limit)} | {c.dive_key} |" for c in g.checks]
    return out
