"""Dependency graph: markers for the image's platform, extras, and removal with dependencies."""

from __future__ import annotations

from advisor.advise.facts.depgraph import DepGraph, build_graph
from advisor.advise.facts.distributions import scan_distributions
from advisor.advise.facts.python_envs import scan_environments
from advisor.oci.filetree import merge_layers
from tests.advise.localdir import layer_from_files
from tests.advise.rules import fixtures as fx


def _graph(files: fx.Files, python: str = "3.11", arch: str = "amd64") -> DepGraph:
    tree = merge_layers([layer_from_files(files)]).tree
    return build_graph(scan_distributions(tree, scan_environments(tree)).distributions, python, arch)


FILES: fx.Files = {
    **fx.dist("app", "1", {"app.py": 100}, ["lib-x86; platform_machine == 'x86_64'", "lib-arm; platform_machine == 'aarch64'",
                                           "old-backport; python_version < '3.8'", "shared", "web[fast]"]),
    **fx.dist("web", "1", {"web.py": 1000}, ['speedups; extra == "fast"', 'fancy; extra == "fancy"', 'fancy-dep; extra == "fancy"'],
              ["fast", "fancy"]),
    **fx.dist("lib-x86", "1", {"x.py": 10}), **fx.dist("lib-arm", "1", {"arm.py": 10}),
    **fx.dist("old-backport", "1", {"o.py": 10}), **fx.dist("shared", "1", {"s.py": 10}),
    **fx.dist("speedups", "1", {"sp.py": 10}), **fx.dist("fancy", "1", {"f.py": 10}),
    **fx.dist("tool", "1", {"t.py": 10}, ["shared", "only-tool"]), **fx.dist("only-tool", "1", {"ot.py": 5000}),
}


def test_markers_follow_the_image_platform() -> None:
    g = _graph(FILES)
    assert g.requires("app") == {"lib-x86", "shared", "web"}
    assert _graph(FILES, arch="arm64").requires("app") == {"lib-arm", "shared", "web"}


def test_extras_count_only_when_fully_installed() -> None:
    g = _graph(FILES)
    assert g.requires("web") == {"speedups"}  # "fancy" extra lacks fancy-dep: not installed with it


def test_removable_with_deps() -> None:
    g = _graph(FILES)
    freed = g.removable_with_deps(["tool"])
    assert freed == {"tool", "only-tool"}  # shared stays: app needs it
    assert g.bytes_of(freed) == g.sizes["tool"] + g.sizes["only-tool"]
    assert g.removable_with_deps(["shared"]) == set()  # needed by app and tool
    assert g.removable_with_deps(["app"]) >= {"app", "web", "speedups", "lib-x86"}
    assert "shared" not in g.removable_with_deps(["app"])
    assert g.roots() == {"app", "tool", "lib-arm", "old-backport", "fancy"}
