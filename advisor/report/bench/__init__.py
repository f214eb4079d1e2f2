"""``advisor bench``'s reports: report.json and report.md (``render``), report.html (``html``),
all three written by ``write_reports``."""

from __future__ import annotations

import json
from pathlib import Path

from advisor.bench.model import BenchReport
from advisor.fsutil import write_text_atomic
from advisor.report.bench.html import report_html
from advisor.report.bench.render import report_json, report_markdown


def write_reports(report: BenchReport, directory: Path) -> dict[str, Path]:
    """Write report.json, report.md and report.html into ``directory``; return their paths."""
    paths = {
        "json": directory / "report.json",
        "markdown": directory / "report.md",
        "html": directory / "report.html",
    }
    write_text_atomic(paths["json"], json.dumps(report_json(report), indent=2, sort_keys=False) + "\n")
    write_text_atomic(paths["markdown"], report_markdown(report))
    write_text_atomic(paths["html"], report_html(report))
    return paths


__all__ = ["report_html", "report_json", "report_markdown", "write_reports"]
