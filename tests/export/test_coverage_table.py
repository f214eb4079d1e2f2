"""benchmarks/export/coverage.json is the evidence behind ARCHITECTURES: a declared type x task
with no row there (or a row where advisor did not export it) means the table is stale, so a
type added to specs.py without re-running benchmarks/export/coverage.py fails here."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from advisor.export.specs import ARCHITECTURES, TASKS

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "export"


@pytest.fixture(scope="module")
def report() -> dict[str, Any]:
    return json.loads((BENCH / "coverage.json").read_text(encoding="utf-8"))  # type: ignore[no-any-return]


@pytest.mark.parametrize("task", sorted(TASKS))
def test_every_declared_type_has_an_exported_row(report: dict[str, Any], task: str) -> None:
    rows = {r["type"]: r for r in report["rows"] if r["task"] == task}
    missing = sorted(set(ARCHITECTURES) - set(rows))
    assert not missing, f"no {task} row for {missing}: re-run benchmarks/export/coverage.py"
    failed = sorted(t for t in ARCHITECTURES if not rows[t]["advisor"].get("exported"))
    assert not failed, f"declared but not exported for {task}: {failed}"
    for arch in ARCHITECTURES:
        advisor = rows[arch]["advisor"]
        assert advisor["int8_size_bytes"] > 0 and advisor["parity_max_abs_diff"] <= ARCHITECTURES[arch].atol
        assert "optimum" in rows[arch], f"{arch} {task}: no Optimum result beside advisor's"


def test_the_markdown_has_a_section_per_task(report: dict[str, Any]) -> None:
    sys.path.insert(0, str(BENCH))
    from coverage_report import render

    text = render(report)
    assert text == (BENCH / "coverage.md").read_text(encoding="utf-8"), "coverage.md is stale"
    for task in TASKS:
        assert f"## {task}: advisor {len(ARCHITECTURES)} / " in text
