"""The dependency graph of the installed distributions, and what removing a package frees.

Edges come from ``Requires-Dist`` with markers evaluated for the image's platform and
Python. An extra's requirements count only when every one of them is installed (the only
trace an install with ``pkg[extra]`` leaves), so a ``dev`` extra never pins a lone pytest.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from packaging.markers import InvalidMarker, UndefinedComparison, UndefinedEnvironmentName
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from advisor.advise.facts.distributions import Distribution

_MACHINES = {"amd64": "x86_64", "arm64": "aarch64", "386": "i686", "ppc64le": "ppc64le", "s390x": "s390x"}


def marker_environment(python_version: str, architecture: str = "amd64", os: str = "linux") -> dict[str, str]:
    """A PEP 508 environment for the image (not for this machine)."""
    version = python_version or "3.11"
    return {
        "python_version": ".".join(version.split(".")[:2]),
        "python_full_version": version if version.count(".") >= 2 else f"{version}.0",
        "implementation_name": "cpython",
        "implementation_version": version,
        "platform_python_implementation": "CPython",
        "os_name": "posix" if os != "windows" else "nt",
        "sys_platform": "linux" if os == "linux" else os,
        "platform_system": "Linux" if os == "linux" else os.capitalize(),
        "platform_machine": _MACHINES.get(architecture, architecture),
        "platform_release": "",
        "platform_version": "",
        "extra": "",
    }


@dataclass(frozen=True, slots=True)
class Edge:
    source: str
    target: str
    extra: str = ""  # the extra that brings it, "" for a base requirement


@dataclass(frozen=True)
class DepGraph:
    """Nodes are canonical names of installed distributions; ``sizes`` their bytes."""

    sizes: Mapping[str, int]
    edges: tuple[Edge, ...]
    missing: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # (distribution, extra) that some installed distribution asks for (``pkg[extra]``)
    requested_extras: frozenset[tuple[str, str]] = frozenset()

    def requires(self, name: str) -> set[str]:
        return {e.target for e in self.edges if e.source == name}

    def required_by(self, name: str) -> set[str]:
        return {e.source for e in self.edges if e.target == name}

    def _adjacency(self) -> dict[str, set[str]]:
        adj: dict[str, set[str]] = {n: set() for n in self.sizes}
        for e in self.edges:
            adj[e.source].add(e.target)
        return adj

    def closure(self, names: Iterable[str]) -> set[str]:
        """``names`` and everything they need, transitively."""
        adj = self._adjacency()
        seen: set[str] = set()
        stack = [n for n in names if n in adj]
        while stack:
            n = stack.pop()
            if n in seen:
                continue
            seen.add(n)
            stack.extend(adj[n] - seen)
        return seen

    def roots(self) -> set[str]:
        """Distributions nothing else requires (what someone installed on purpose)."""
        targets = {e.target for e in self.edges if e.source != e.target}
        return set(self.sizes) - targets

    def removable_with_deps(self, names: Iterable[str], keep: Iterable[str] = ()) -> set[str]:
        """``names`` plus every dependency of theirs that nothing kept still needs.

        A requested name that a kept distribution still needs stays (removing it would
        break that one), and so do its dependencies. ``keep`` names distributions that stay
        whatever the graph says (what the application imports itself).
        """
        doomed = self.closure(names)
        kept = self.closure((set(self.sizes) - doomed) | set(keep))
        return doomed - kept

    def bytes_of(self, names: Iterable[str]) -> int:
        return sum(self.sizes.get(n, 0) for n in set(names))


# Extras that exist to develop a package, never to run it: they do not keep their tools.
DEV_EXTRAS = frozenset({"dev", "develop", "development", "test", "tests", "testing", "lint", "linting",
                        "docs", "doc", "typing", "types", "style", "quality", "qa", "check", "checks"})


def without_dev_extras(graph: DepGraph) -> DepGraph:
    """The graph minus edges that only a development extra (``pkg[dev]``) brings."""
    return DepGraph(graph.sizes, tuple(e for e in graph.edges if e.extra.lower() not in DEV_EXTRAS), graph.missing,
                    graph.requested_extras)


def without_unrequested_extras(graph: DepGraph) -> DepGraph:
    """The graph minus the edges of extras no installed distribution asks for.

    That every requirement of ``rich[jupyter]`` is installed proves little when a notebook
    stack put them there: on the case study tqdm's ``notebook``, rich's ``jupyter``, pillow's
    ``xmp`` and jinja2's ``i18n`` extras were all "installed" by jupyter alone, and kept 15 MB
    of it that leaving jupyter out of requirements.txt does remove. An extra a requirement
    names (``transformers[torch]``) still counts; one asked for only on pip's command line
    leaves no trace, so removal decisions made on this graph can reach too far there.
    """
    edges = tuple(e for e in graph.edges if not e.extra or (e.source, e.extra) in graph.requested_extras)
    return DepGraph(graph.sizes, edges, graph.missing, graph.requested_extras)


def parse_requirement(req: str) -> Requirement | None:
    """A PEP 508 requirement, or None where the text is not one."""
    try:
        return Requirement(req)
    except InvalidRequirement:
        return None


def _applies(req: Requirement, env: dict[str, str], extra: str) -> bool:
    if req.marker is None:
        return not extra
    try:
        return bool(req.marker.evaluate({**env, "extra": extra}))
    except (InvalidMarker, UndefinedComparison, UndefinedEnvironmentName):
        return False


def _requested(dist: Distribution, env: dict[str, str]) -> set[tuple[str, str]]:
    """The extras ``dist``'s own requirements ask for (``transformers[torch]``)."""
    reqs = [r for r in (parse_requirement(s) for s in dist.requires) if r is not None]
    return {(canonicalize_name(r.name), canonicalize_name(x)) for r in reqs for x in r.extras
            if any(_applies(r, env, e) for e in ("", *dist.extras))}


def _dist_edges(
    dist: Distribution, installed: set[str], env: dict[str, str]
) -> tuple[list[Edge], list[str]]:
    edges: list[Edge] = []
    missing: list[str] = []
    reqs = [r for r in (parse_requirement(s) for s in dist.requires) if r is not None]
    by_extra: list[Requirement] = []  # what only an extra may pull in
    for r in reqs:
        if _applies(r, env, ""):
            target = canonicalize_name(r.name)
            if target in installed:
                edges.append(Edge(dist.key, target))
            else:
                missing.append(target)
        elif r.marker is not None and "extra" in str(r.marker):
            # a marker that names no extra gives every extra the answer it gave "": only one
            # that does can apply under an extra and not without (transformers: 90 extras x
            # 200 requirements of marker evaluations otherwise)
            by_extra.append(r)
    for extra in dist.extras:
        wanted = [canonicalize_name(r.name) for r in by_extra if _applies(r, env, extra)]
        if wanted and all(w in installed for w in wanted):
            edges.extend(Edge(dist.key, w, extra) for w in wanted)
    return edges, missing


def build_graph(
    dists: Iterable[Distribution], python_version: str, architecture: str = "amd64", os: str = "linux"
) -> DepGraph:
    env = marker_environment(python_version, architecture, os)
    sizes: dict[str, int] = {}
    chosen: dict[str, Distribution] = {}
    for d in dists:
        sizes[d.key] = sizes.get(d.key, 0) + d.size_bytes
        if d.key not in chosen or d.size_bytes > chosen[d.key].size_bytes:
            chosen[d.key] = d
    installed = set(sizes)
    edges: set[Edge] = set()
    missing: dict[str, tuple[str, ...]] = {}
    for key in sorted(chosen):
        es, miss = _dist_edges(chosen[key], installed, env)
        edges.update(e for e in es if e.source != e.target)
        if miss:
            missing[key] = tuple(sorted(set(miss)))
    ordered = tuple(sorted(edges, key=lambda e: (e.source, e.target, e.extra)))
    requested = frozenset(x for d in chosen.values() for x in _requested(d, env))
    ordered = tuple(Edge(e.source, e.target, canonicalize_name(e.extra)) if e.extra else e for e in ordered)
    return DepGraph(sizes, ordered, missing, requested)
