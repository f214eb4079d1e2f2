"""Plain text report (the CLI may colour it)."""

from __future__ import annotations

from advisor.advise.advice import Advice
from advisor.advise.rules.base import human
from advisor.advise.rules.gate import Check, GateResult, Status

TOP_DISTS = 15
TOP_FINDINGS = 40


def _header(a: Advice) -> list[str]:
    f = a.facts
    base = f", base {human(a.base_bytes)} in {a.base_layers} layer(s)" if a.base_layers else ""
    return [
        f"Image {f.reference}  {f.os}/{f.architecture}",
        f"  size {human(a.size_bytes)} (compressed {human(f.compressed_size)}){base}",
        f"  efficiency {a.efficiency * 100:.1f} %, wasted {human(a.wasted_bytes)}",
        "",
    ]


def _categories(a: Advice) -> list[str]:
    lines = ["Where the bytes go"]
    for name, size in sorted(a.categories.items(), key=lambda kv: (-kv[1], kv[0])):
        if size:
            share = size / a.size_bytes * 100 if a.size_bytes else 0
            lines.append(f"  {name:<10} {human(size):>10}  {share:5.1f} %")
    return [*lines, ""]


def _python(a: Advice) -> list[str]:
    if not a.environments:
        return []
    lines = ["Python environments"]
    for e in a.environments:
        lines.append(f"  /{e['path']}  python {e['python_version'] or '?'}  {e['kind']}  {human(int(e['size_bytes']))}")
    lines.append(f"Largest distributions (of {len(a.distributions)})")
    for d in a.distributions[:TOP_DISTS]:
        extra = f"  (with deps only it needs: {human(d.removable_with_deps_bytes)})" if d.removable_with_deps_bytes > d.size_bytes else ""
        lines.append(f"  {d.name:<28} {d.version:<18} {human(d.size_bytes):>10}{extra}")
    for u in a.unowned:
        if int(u["size_bytes"]):
            lines.append(f"  unowned bytes in /{u['environment']}: {human(int(u['size_bytes']))}")
    return [*lines, ""]


def _findings(a: Advice) -> list[str]:
    lines = [f"Findings ({len(a.findings)})"]
    for f in a.findings[:TOP_FINDINGS]:
        lines.append(f"  [{f.severity!s:<8}] {f.rule:<28} {human(f.bytes):>10}  {f.message}")
    if len(a.findings) > TOP_FINDINGS:
        lines.append(f"  ... {len(a.findings) - TOP_FINDINGS} more (see --format json)")
    return [*lines, ""]


def _recommendations(a: Advice) -> list[str]:
    lines = ["Recommendations"]
    for i, r in enumerate(a.recommendations, 1):
        alt = f" (alternative to {r.alternative_to}: saves {human(r.standalone_savings_bytes)} on its own)" if r.alternative_to else ""
        lines.append(f"  {i}. {r.title}: saves {human(r.estimated_savings_bytes)}{alt}")
        lines.append(f"     fix: {r.fix}")
    lines.append(f"Total estimated savings: {human(a.total_estimated_savings_bytes)}"
                 f" of {human(a.size_bytes)}")
    return lines


def gate_row(c: Check) -> str:
    """A rule's value against its limit, as dive prints it ("0.4835 > 0.1")."""
    if c.status is Status.SKIP:
        return f"{c.value} ({c.limit})"
    if c.rule in ("fail_on", "banned_packages"):
        return f"{c.value}, want {c.limit}"
    if c.rule == "min_efficiency":
        op = "<" if c.status is Status.FAIL else ">="
    else:
        op = ">" if c.status is Status.FAIL else "<="
    return f"{c.value} {op} {c.limit}"


def _gate(a: Advice) -> list[str]:
    return ["", *gate_lines(a.gate)] if a.gate is not None else []


def gate_lines(g: GateResult) -> list[str]:
    """The gate as dive's CI output shows it: every rule with its verdict, value and limit."""
    src = f"  (rules: {g.source})" if g.source else ""
    lines = [f"Gate: {g.summary()}{src}"]
    for c in g.checks:
        dive = f"  dive: {c.dive_key}" if c.dive_key else ""
        detail = f"  [{c.detail}]" if c.detail and c.status is not Status.SKIP else ""
        lines.append(f"  {c.status.value}  {c.rule:<20} {gate_row(c)}{dive}{detail}")
    return lines


def render_text(a: Advice) -> str:
    return "\n".join([*_header(a), *_categories(a), *_python(a), *_findings(a), *_recommendations(a),
                      *_gate(a)]) + "\n"
