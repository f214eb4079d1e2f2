"""The proof, for real: a fat image on the cached Debian base, fixed and run in the sandbox
(skopeo + umoci + unshare): its imports import, its server answers; a removal that breaks a
hidden import is found by the bisection and left out; an image broken before the fix stops
``advisor fix`` with exit 6 and no DEST."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from advisor.fix import FixConfig, run
from advisor.fix.proof import bisect
from tests.fix.images import build_fat
from tests.slim.fixtures import NEEDS_ROOT_TOOLS


@NEEDS_ROOT_TOOLS
def test_the_fixed_image_passes_the_proof(tmp_path: Path, debian_base: str) -> None:
    ref = build_fat(f"oci:{tmp_path / 'fat'}:v1", debian_base)
    result = run(FixConfig(ref, f"oci:{tmp_path / 'fixed'}:v1"))
    assert result.baseline is not None and result.baseline.passed
    assert result.proof is not None and result.proof.passed, result.proof
    checks = {c.name: c for c in result.proof.checks}
    assert checks["imports"].detail == "2 modules import"  # requests, rich: the static closure
    assert checks["entrypoint"].detail.startswith("answered on port")
    applied = {f.id: f for f in result.fixes if f.applied}
    assert {"remove-dev-tools", "clean-caches", "dockerignore", "trim-python"} <= set(applied)
    for f in applied.values():
        assert f.proof == "passed"
        assert abs(f.removed_bytes - f.estimated_bytes) <= 0.1 * f.estimated_bytes, f
    assert result.size_before - result.size_after > 15_000_000
    assert not result.notes


@NEEDS_ROOT_TOOLS
def test_the_bisection_leaves_out_each_removal_that_breaks_the_app(tmp_path: Path, debian_base: str) -> None:
    ref = build_fat(f"oci:{tmp_path / 'fat'}:v1", debian_base, hidden_import="iniconfig", model=True)
    data = tmp_path / "labelled.csv"
    data.write_text("text,label\n" + "".join(f"{'so good ' * (i % 3)}review {i},{i % 2}\n" for i in range(20)))
    only = frozenset({"remove-dev-tools", "dedupe-models", "dockerignore"})
    result = run(FixConfig(ref, f"oci:{tmp_path / 'fixed'}:v1", only=only, data=data, limit=20))
    assert result.baseline is not None
    assert [c.detail for c in result.baseline.checks if c.name == "predictions"] == ["20 labels from POST /predict"]
    outcome = {f.id: f for f in result.fixes}
    assert not outcome["remove-dev-tools"].applied  # the hidden import fails without it
    assert outcome["remove-dev-tools"].proof == "broke the proof"
    assert "ModuleNotFoundError" in outcome["remove-dev-tools"].reason
    assert not outcome["dedupe-models"].applied  # the server reads the .bin dedupe drops
    assert "20 of 20 labels differ" in outcome["dedupe-models"].reason
    assert outcome["dockerignore"].applied and outcome["dockerignore"].proof == "passed"
    assert result.proof is not None and result.proof.passed
    assert {c.name: c.detail for c in result.proof.checks}["predictions"] == "the same label for all 20 labelled texts"
    assert result.notes == ("remove-dev-tools: left out, the proof fails with it",
                            "dedupe-models: left out, the proof fails with it")


@NEEDS_ROOT_TOOLS
def test_an_image_broken_before_the_fix_exits_6_without_dest(tmp_path: Path, debian_base: str) -> None:
    ref = build_fat(f"oci:{tmp_path / 'fat'}:v1", debian_base, entry="missing.py")
    dest = tmp_path / "fixed"
    cli = Path(sys.executable).with_name("advisor")
    done = subprocess.run([str(cli), "fix", ref, "--output", f"oci:{dest}:v1"], capture_output=True, text=True)
    assert done.returncode == 6, done.stderr
    assert "error: the original image fails the proof before any fix" in done.stderr
    assert "hint:" in done.stderr
    assert not dest.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["fat"]


def test_bisect_finds_every_culprit_in_few_proofs() -> None:
    tried: list[tuple[str, ...]] = []

    def passes(ids: tuple[str, ...]) -> bool:
        tried.append(ids)
        return "c" not in ids and "f" not in ids

    kept, culprits = bisect(list("abcdefgh"), passes)
    assert kept == list("abdegh") and culprits == ["c", "f"]
    assert len(tried) <= 10
    assert bisect(["a"], lambda ids: True) == (["a"], [])
