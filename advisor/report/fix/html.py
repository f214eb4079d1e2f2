"""``advisor fix --format html``: one self-contained page (the advise report's CSS and charts)."""

from __future__ import annotations

from html import escape

from advisor.advise.rules.base import human
from advisor.fix.model import FixResult, ProofReport
from advisor.report.advise.html import CSS, _table
from advisor.report.charts import bar_chart, bars_of
from advisor.report.page import page


def _proof(title: str, p: ProofReport | None) -> str:
    if p is None:
        return ""
    rows = [[escape(c.name), "ok" if c.ok else '<span class="sev-high">FAIL</span>', escape(c.detail)]
            for c in p.checks]
    state = "passed" if p.passed else "failed"
    return f"<h2>{escape(title)}: {state}</h2>" + _table(["check", "result", "detail"], rows, set())


def render_html(r: FixResult) -> str:
    title = f"advisor fix: {r.reference}"
    cells = [("Before", human(r.size_before)), ("After", human(r.size_after)),
             ("Compressed", f"{human(r.compressed_before)} -> {human(r.compressed_after)}"),
             ("Proof", "skipped (--no-verify)" if not r.verified else
              ("passed" if r.proof is not None and r.proof.passed else "failed"))]
    summary = '<div class="summary">' + "".join(
        f"<div><b>{escape(k)}</b><br>{escape(v)}</div>" for k, v in cells) + "</div>"
    fixes = _table(["recommendation", "estimated", "removed", "files", "proof / reason"], [
        [f"<code>{escape(f.id)}</code> {escape(f.title)}", escape(human(f.estimated_bytes)),
         escape(human(f.removed_bytes)) if f.applied else "-", str(f.files) if f.applied else "-",
         escape(f.proof if f.applied else f.reason)] for f in r.fixes], {1, 2, 3})
    layers = _table(["layer", "files removed", "bytes removed", "history note"], [
        [str(c.index), str(c.files_removed), escape(human(c.bytes_removed)), escape(c.note)]
        for c in r.layers], {1, 2})
    removed = bars_of([(f.id, f.removed_bytes) for f in r.fixes if f.applied])
    chart = bar_chart("Bytes removed by recommendation", removed, human, width=800, label_w=280) if removed else ""
    notes = "".join(f"<p>{escape(n)}</p>" for n in r.notes)
    return page(title, (
        f"<h1>{escape(title)}</h1><p><code>{escape(r.output)}</code> {escape(r.manifest_digest)}</p>"
        f"{summary}{chart}<h2>Recommendations</h2>{fixes}{notes}"
        f"{_proof('Proof of the original', r.baseline)}{_proof('Proof of the fixed image', r.proof)}"
        f"<h2>Layers</h2>{layers}"
    ), CSS)
