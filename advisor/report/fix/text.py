"""``advisor fix`` for a terminal: what each recommendation removed, and the proof."""

from __future__ import annotations

from advisor.advise.rules.base import human
from advisor.fix.model import FixResult, ProofReport


def _proof_lines(title: str, p: ProofReport | None) -> list[str]:
    if p is None:
        return []
    lines = [f"{title}: {'passed' if p.passed else 'FAILED'} ({p.reference})"]
    lines += [f"  {'ok  ' if c.ok else 'FAIL'} {c.name}: {c.detail}" for c in p.checks]
    return lines


def render_text(r: FixResult) -> str:
    removed = r.size_before - r.size_after
    lines = [
        f"advisor fix {r.reference} -> {r.output}",
        f"  {human(r.size_before)} -> {human(r.size_after)} unpacked ({human(removed)} removed); "
        f"{human(r.compressed_before)} -> {human(r.compressed_after)} compressed",
        f"  digest {r.manifest_digest}",
        "",
        f"{'recommendation':24} {'estimated':>10} {'removed':>10} {'files':>7}  proof / reason",
    ]
    for f in r.fixes:
        if f.applied:
            extra = f" (+{human(f.hidden_removed_bytes)} lower-layer copies)" if f.hidden_removed_bytes else ""
            lines.append(f"{f.id:24} {human(f.estimated_bytes):>10} {human(f.removed_bytes):>10} "
                         f"{f.files:>7}  {f.proof}{extra}")
        else:
            lines.append(f"{f.id:24} {human(f.estimated_bytes):>10} {'-':>10} {'-':>7}  {f.reason}")
    lines.append("")
    if not r.verified:
        lines.append("proof: skipped (--no-verify): the fixed image was not run")
    lines += _proof_lines("proof of the original", r.baseline)
    lines += _proof_lines("proof of the fixed image", r.proof)
    lines += [f"note: {n}" for n in r.notes]
    return "\n".join(lines) + "\n"
