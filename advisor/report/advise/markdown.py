"""Markdown report (for PR comments and CI summaries)."""

from __future__ import annotations

from advisor.advise.advice import Advice
from advisor.advise.rules.base import human


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def render_markdown(a: Advice) -> str:
    f = a.facts
    out = [
        f"# advisor report: `{f.reference}`", "",
        f"- platform: {f.os}/{f.architecture}; Python {a.python_version or '?'}",
        f"- size: **{human(a.size_bytes)}** (compressed {human(f.compressed_size)})",
        f"- efficiency: {a.efficiency * 100:.1f} %, wasted: {human(a.wasted_bytes)}",
        f"- estimated savings: **{human(a.total_estimated_savings_bytes)}**", "",
        "## Recommendations", "", "| # | recommendation | saves | fix |", "|---|---|---:|---|",
    ]
    for i, r in enumerate(a.recommendations, 1):
        saves = human(r.estimated_savings_bytes)
        if r.alternative_to:
            saves += f" (alone: {human(r.standalone_savings_bytes)})"
        out.append(f"| {i} | {_cell(r.title)} | {saves} | `{_cell(r.fix)}` |")
    out += ["", "## Where the bytes go", "", "| category | bytes |", "|---|---:|"]
    out += [f"| {k} | {human(v)} |" for k, v in sorted(a.categories.items(), key=lambda kv: (-kv[1], kv[0])) if v]
    out += ["", "## Findings", "", "| severity | rule | bytes | message |", "|---|---|---:|---|"]
    out += [f"| {x.severity} | `{x.rule}` | {human(x.bytes)} | {_cell(x.message)} |" for x in a.findings]
    out += ["", "## Layers", "", "| layer | size | files | created by |", "|---:|---:|---:|---|"]
    out += [f"| {r.index} | {human(r.size_bytes)} | {r.files} | `{_cell(r.created_by[:100])}` |" for r in a.layers]
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
