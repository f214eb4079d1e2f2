"""Every benchmark script still imports: they run by hand, not in CI, so a renamed function
otherwise breaks them silently (benchmarks/sandbox/overhead.py imported ``free_port`` from a
module it had left)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPTS = sorted(
    p for p in (REPO / "benchmarks").rglob("*.py")
    if "app" not in p.relative_to(REPO / "benchmarks").parts  # the case study's own app, for its image
)


def test_there_are_scripts_to_check() -> None:
    assert len(SCRIPTS) > 20


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: str(p.relative_to(REPO)))
def test_a_benchmark_script_imports(path: Path) -> None:
    name = "benchmarks." + ".".join(path.relative_to(REPO / "benchmarks").with_suffix("").parts)
    spec = importlib.util.spec_from_file_location(f"_check_{name}", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    try:
        spec.loader.exec_module(module)  # top level only: main() waits for __main__
    finally:
        del sys.modules[spec.name]
