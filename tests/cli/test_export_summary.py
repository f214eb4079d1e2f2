"""``export --output`` without ``--artifacts``: the summary names no folder that is gone."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import run
from tests.slim.fixtures import NEEDS_ROOT_TOOLS


@NEEDS_ROOT_TOOLS
@pytest.mark.slow
def test_export_names_no_deleted_artifacts_folder(tmp_path: Path, debian_base: str) -> None:
    from tests.export.tiny import make_tiny_model

    model = make_tiny_model(tmp_path / "tiny", "bert", "text-classification")
    common = ["--base", debian_base, "--quantize", "none", "--graph", "unfused", "--max-length", "32",
              "--no-prune", "--bytecode", "none"]
    proc = run("export", str(model), "--output", f"oci:{tmp_path / 'img'}:v1", *common, "--format", "json")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["export"]["artifacts"] is None and summary["image"]["destination"]
    text = run("export", str(model), "--output", f"oci:{tmp_path / 'img2'}:v1", *common)
    assert text.returncode == 0, text.stderr
    assert "advisor-export-" not in text.stdout and "into the image only" in text.stdout
