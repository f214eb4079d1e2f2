"""docs/DESIGN.md is the project's design document: every citation of it in the code and the
docs names a section that exists, and no citation points at a DESIGN.md elsewhere."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "DESIGN.md"
CITATION = re.compile(r'docs/DESIGN\.md,\s+"([^"]+)"')


def _sources() -> list[Path]:
    files = [ROOT / "README.md"]
    for folder in ("advisor", "tests", "benchmarks", "scripts"):
        files += [p for p in (ROOT / folder).rglob("*") if p.suffix in (".py", ".md", ".sh")]
    return [p for p in files if p.is_file() and p != DESIGN]


def test_every_citation_names_a_section_that_exists() -> None:
    headings = [line.lstrip("#").strip() for line in DESIGN.read_text().splitlines() if line.startswith("#")]
    cited = 0
    for path in _sources():
        text = " ".join(path.read_text(encoding="utf-8", errors="replace").split())
        for section in CITATION.findall(text):
            cited += 1
            assert any(h.startswith(section) for h in headings), f"{path.relative_to(ROOT)} cites {section!r}"
    assert cited >= 10


def test_no_citation_of_a_design_document_elsewhere() -> None:
    loose = re.compile(r"(?<!docs/)\bDESIGN\.md")
    offenders = [str(p.relative_to(ROOT)) for p in _sources()
                 if p.name != "test_design_doc.py" and loose.search(p.read_text(encoding="utf-8", errors="replace"))]
    assert offenders == []
