"""advise on the slim image advisor builds: the bytecode it precompiled on purpose is no
finding, and no finding is listed twice for /app/deps beside /app on PYTHONPATH."""

from __future__ import annotations

from collections import Counter

from advisor.advise.pipeline import AdviseConfig, run
from advisor.slim.image import BuildResult
from tests.slim.fixtures import NEEDS_ROOT_TOOLS


@NEEDS_ROOT_TOOLS
def test_advise_on_the_slim_image(built: BuildResult) -> None:
    assert built.bytecode == "imported"  # the server's modules were precompiled
    a = run(AdviseConfig(built.destination, use_cache=False))
    bytecode = [f for f in a.findings if f.rule == "py-bytecode"]
    assert not any(p.startswith("app/") for f in bytecode for p in f.frees), [f.message for f in bytecode]
    per_rule_path = Counter((f.rule, p) for f in a.findings for p in f.paths)
    assert [k for k, n in per_rule_path.items() if n > 1] == []
    nested = [f.paths for f in a.findings if f.rule == "py-tests-in-site-packages"
              if any(p.startswith("app/deps/") for p in f.paths) and any(p.startswith("app/") and not
                                                                           p.startswith("app/deps/") for p in f.paths)]
    assert nested == []
