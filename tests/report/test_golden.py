"""Golden reports: the text and markdown of one fixed image, byte for byte.

After an intended change, regenerate with ``ADVISOR_UPDATE_GOLDEN=1 pytest tests/report`` and
review the diff like code.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from advisor.advise.advice import build_advice
from advisor.report.advise import render
from tests.advise.test_advice import _combined

GOLDEN = Path(__file__).parent / "golden"


@pytest.mark.parametrize(("fmt", "name"), [("text", "combined.txt"), ("markdown", "combined.md"), ("json", "combined.json")])
def test_golden(fmt: str, name: str) -> None:
    got = render(build_advice(_combined(with_model=True).context()), fmt)
    path = GOLDEN / name
    if os.environ.get("ADVISOR_UPDATE_GOLDEN") == "1":
        path.write_text(got, encoding="utf-8")
    assert path.exists(), f"{path} is missing: run ADVISOR_UPDATE_GOLDEN=1 pytest {__file__}"
    assert got == path.read_text(encoding="utf-8"), f"{name} changed: review, then ADVISOR_UPDATE_GOLDEN=1"
