"""A real `pip install --target` of real wheels (from the machine's local index, offline):
the environment is found through PYTHONPATH, each distribution's bytes equal `du -b
--apparent-size` of its files, and the dev tools are reported with their dependency trees."""

from __future__ import annotations

import csv
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.advise.advice import build_advice
from advisor.advise.facts.context import Context, ImageFacts
from advisor.oci.filetree import merge_layers
from tests.advise.localdir import layer_from_directory

WHEEL_DIR = Path("/opt/pypi/files")
PACKAGES = ("flake8==7.4.1", "pyflakes==4.0.0", "pycodestyle==2.15.0", "mccabe==0.7.0", "black==26.5.1")


@pytest.fixture(scope="module")
def stage(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not WHEEL_DIR.is_dir():
        pytest.skip("no local wheel index at /opt/pypi/files (ENVIRONMENT.md)")
    target = tmp_path_factory.mktemp("target")
    proc = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--find-links", str(WHEEL_DIR),
         "--target", str(target), *PACKAGES], capture_output=True, text=True, check=False, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return target


def _du(files: list[Path]) -> int:
    out = subprocess.run(["du", "-cb", "--apparent-size", *map(str, files)], capture_output=True, text=True, check=True)
    return int(out.stdout.strip().splitlines()[-1].split()[0])


def test_target_install_sizes_match_du(stage: Path) -> None:
    layer = layer_from_directory(stage, "app/deps")
    ctx = Context(ImageFacts(env=("PYTHONPATH=/app/deps",)), (layer,), merge_layers([layer]).tree)
    assert [(e.path, e.kind) for e in ctx.environments] == [("app/deps", "pythonpath")]
    for info in sorted(stage.glob("*.dist-info")):
        rows = list(csv.reader((info / "RECORD").read_text().splitlines()))
        files = sorted({(stage / r[0]).resolve() for r in rows if r and (stage / r[0]).is_file()})
        name = next(ln.split(":", 1)[1].strip() for ln in (info / "METADATA").read_text().splitlines() if ln.startswith("Name:"))
        dist = next(d for d in ctx.scan.distributions if d.name == name)
        du = _du(files)
        assert abs(dist.size_bytes - du) <= 0.01 * du, (name, dist.size_bytes, du)
    advice = build_advice(ctx)
    tools = {f.data["distribution"]: f for f in advice.findings if f.rule == "py-dev-tools"}
    assert set(tools) == {"black", "flake8"}
    assert set(tools["flake8"].data["removed_distributions"]) == {"flake8", "pyflakes", "pycodestyle", "mccabe"}
