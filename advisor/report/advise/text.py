"""Plain text report (the CLI may colour it)."""

from __future__ import annotations

from collections.abc import Sequence

from advisor.advise.advice import Advice
from advisor.advise.rules.base import human, plural
from advisor.advise.rules.gate import Check, GateResult, Status
from advisor.report.advise.common import LAYER_FILES, TOP_FILES, alternative_note, command, evidence

TOP_DISTS = 15
TOP_FINDINGS = 40


def _header(a: Advice) -> list[str]:
    f = a.facts
    base = f", base {human(a.base_bytes)} in {plural(a.base_layers, 'layer')}" if a.base_layers else ""
    hidden = a.layer_bytes - a.size_bytes
    carry = f"; the layers carry {human(a.layer_bytes)} ({human(hidden)} of it deleted or overwritten later)" \
        if hidden > 0 else ""
    return [
        f"Image {f.reference}  {f.os}/{f.architecture}",
        f"  size {human(a.size_bytes)} (compressed {human(f.compressed_size)}){base}{carry}",
        f"  efficiency {a.efficiency * 100:.1f} %, wasted {human(a.wasted_bytes)}",
        "",
    ]


def _categories(a: Advice) -> list[str]:
    rows = [(n, s) for n, s in sorted(a.categories.items(), key=lambda kv: (-kv[1], kv[0])) if s]
    if not rows:
        return []
    lines = ["Where the bytes go"]
    for name, size in rows:
        share = size / a.size_bytes * 100 if a.size_bytes else 0
        lines.append(f"  {name:<10} {human(size):>10}  {share:5.1f} %")
    return [*lines, ""]


def _files(files: Sequence[tuple[str, int]]) -> str:
    return ", ".join(f"/{p} ({human(s)})" if s >= 0 else f"/{p}" for p, s in files)


def _layers(a: Advice) -> list[str]:
    if not a.layers:
        return []
    lines = [f"Layers ({len(a.layers)}), with the largest files each ships"]
    for r in a.layers:
        lines.append(f"  {r.index:>3} {human(r.size_bytes):>10}  {plural(r.files, 'file'):>11}  "
                     f"{command(r.created_by, 90)}")
        if r.largest_files:
            lines.append(f"      {_files(r.largest_files[:LAYER_FILES])}")
    if a.largest_files:
        lines.append(f"Largest files (of the final filesystem, top {min(TOP_FILES, len(a.largest_files))})")
        lines += [f"  {human(s):>10}  /{p}" for p, s in a.largest_files[:TOP_FILES]]
    return [*lines, ""]


def _python(a: Advice) -> list[str]:
    if not a.environments:
        return []
    lines = ["Python environments"]
    for e in a.environments:
        lines.append(f"  /{e['path']}  python {e['python_version'] or '?'}  {e['kind']}  {human(int(e['size_bytes']))}")
    if a.distributions:
        lines.append(f"Largest distributions (of {len(a.distributions)})")
    for d in a.distributions[:TOP_DISTS]:
        extra = f"  (with deps only it needs: {human(d.removable_with_deps_bytes)})" if d.removable_with_deps_bytes > d.size_bytes else ""
        lines.append(f"  {d.name:<28} {d.version:<18} {human(d.size_bytes):>10}{extra}")
    for u in a.unowned:
        if int(u["size_bytes"]):
            lines.append(f"  unowned bytes in /{u['environment']}: {human(int(u['size_bytes']))}")
    return [*lines, ""]


def _findings(a: Advice) -> list[str]:
    if not a.findings:
        return ["Findings: none", ""]
    lines = [f"Findings ({len(a.findings)})"]
    for f in a.findings[:TOP_FINDINGS]:
        lines.append(f"  [{f.severity!s:<8}] {f.rule:<28} {human(f.bytes):>10}  {f.message}")
        top, more = evidence(f)
        if top:
            lines.append(f"{'':>13}{_files(top)}{f' and {more} more' if more else ''}")
    if len(a.findings) > TOP_FINDINGS:
        lines.append(f"  ... {len(a.findings) - TOP_FINDINGS} more (see --format json)")
    return [*lines, ""]


def _recommendations(a: Advice) -> list[str]:
    if not a.recommendations:
        return []
    lines = ["Recommendations"]
    for i, r in enumerate(a.recommendations, 1):
        if r.alternative_to:
            lines.append(f"  {i}. {r.title}: {alternative_note(a, r, human(r.standalone_savings_bytes))}")
        else:
            lines.append(f"  {i}. {r.title}: saves {human(r.estimated_savings_bytes)}")
        lines.append(f"     fix: {r.fix}")
    lines.append(f"Total estimated savings: {human(a.total_estimated_savings_bytes)}"
                 f" of the {human(a.layer_bytes)} the layers carry")
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
    return "\n".join([*_header(a), *_categories(a), *_layers(a), *_python(a), *_findings(a),
                      *_recommendations(a), *_gate(a)]).rstrip("\n") + "\n"
