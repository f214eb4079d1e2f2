"""Everything the rules read, computed once per image: the analyses' results side by side."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from advisor.advise.facts.appcode import AppCode, app_distributions, scan_app
from advisor.advise.facts.depgraph import DepGraph, build_graph
from advisor.advise.facts.distributions import Distribution, DistributionScan, scan_distributions
from advisor.advise.facts.dockerfile import Step, recover_steps
from advisor.advise.facts.mlstack import ModelConfig, TorchBuild, detect_torch, find_model_configs
from advisor.advise.facts.oslayer import DebPackage, OsInfo, read_dpkg, read_os_release
from advisor.advise.facts.pipcache import cached_wheels
from advisor.advise.facts.python_envs import PythonEnv, image_python_version, scan_environments
from advisor.oci.filetree import FileTree, HiddenFile, LayerTree, merge_layers
from advisor.oci.model import HistoryEntry


@dataclass(frozen=True)
class ImageFacts:
    """What the analyses need from an image besides its files (all of it optional)."""

    reference: str = ""
    digest: str = ""
    os: str = "linux"
    architecture: str = "amd64"
    env: Sequence[str] = ()
    history: Sequence[HistoryEntry] = ()
    working_dir: str = ""
    user: str = ""
    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    exposed_ports: Sequence[str] = ()
    compressed_size: int = 0
    layer_blobs: Sequence[Mapping[str, Any]] = field(default_factory=tuple)


@dataclass(frozen=True)
class Context:
    facts: ImageFacts
    trees: Sequence[LayerTree]
    tree: FileTree
    layer_report: Any = None  # advisor.advise.facts.layers.LayerReport when available

    @cached_property
    def environments(self) -> list[PythonEnv]:
        return scan_environments(self.tree, self.facts.env)

    @cached_property
    def scan(self) -> DistributionScan:
        owner: dict[str, str] = {}
        for name, pkg in self.dpkg.items():
            for path in pkg.files:
                owner.setdefault(path, name)

        def package_files(metadata_file: str) -> tuple[str, ...]:
            name = owner.get(metadata_file)
            return self.dpkg[name].files if name else ()

        return scan_distributions(self.tree, self.environments, package_files if owner else None)

    @cached_property
    def dists(self) -> dict[str, Distribution]:
        return self.scan.by_key()

    @cached_property
    def python_version(self) -> str:
        versions = [e.python_version for e in self.environments if e.python_version]
        return versions[0] if versions else image_python_version(self.tree)

    @cached_property
    def graph(self) -> DepGraph:
        return build_graph(self.scan.distributions, self.python_version, self.facts.architecture, self.facts.os)

    @cached_property
    def app(self) -> AppCode | None:
        """The served entry script and what it imports (None when the command names none)."""
        argv = [*self.facts.entrypoint, *self.facts.cmd]
        return scan_app(self.tree, argv, self.facts.working_dir)

    @cached_property
    def app_dists(self) -> set[str] | None:
        """Distributions the entry script imports directly (None when unknown)."""
        argv = [*self.facts.entrypoint, *self.facts.cmd]
        return app_distributions(self.app, self.scan.distributions, argv) if self.app else None

    @cached_property
    def torch(self) -> TorchBuild | None:
        return detect_torch(self.tree, self.dists)

    @cached_property
    def model_configs(self) -> list[ModelConfig]:
        return find_model_configs(self.tree)

    @cached_property
    def os_info(self) -> OsInfo:
        return read_os_release(self.tree)

    @cached_property
    def dpkg(self) -> dict[str, DebPackage]:
        return read_dpkg(self.tree)

    @cached_property
    def steps(self) -> list[Step]:
        steps = recover_steps(self.facts.history, len(self.trees))
        rows = getattr(self.layer_report, "history", None)
        if rows is not None and len(rows) == len(steps):
            # LayerReport pairs history with layers for every view: use its pairing.
            steps = [replace(s, layer=r.layer) for s, r in zip(steps, rows, strict=True)]
        return steps

    @cached_property
    def hidden(self) -> list[HiddenFile]:
        found = getattr(self.layer_report, "hidden", None)
        return list(found if found is not None else merge_layers(self.trees).hidden)

    def dist_files(self, keys: Sequence[str] | set[str]) -> dict[str, int]:
        """Path -> bytes of every file of the named distributions (all environments)."""
        out: dict[str, int] = {}
        wanted = set(keys)
        for d in self.scan.distributions:
            if d.key in wanted:
                for p in d.files:
                    info = self.tree.get(p)
                    out[p] = info.size if info is not None else 0
        return out

    @cached_property
    def cached_wheels(self) -> dict[str, dict[str, int]]:
        """Distribution key -> the files of pip's cache holding its wheel."""
        files = ((f.path, f.size, self.tree.read_tail(f.path)) for f in self.tree if "/.cache/pip/" in "/" + f.path)
        return cached_wheels(files)

    def removal_files(self, keys: Sequence[str] | set[str]) -> dict[str, int]:
        """What leaving the named distributions out of the install frees: their files, and
        their wheels in pip's cache (a package never installed is never downloaded)."""
        out = self.dist_files(keys)
        for key in sorted(set(keys)):
            out.update(self.cached_wheels.get(key, {}))
        return out

    def files_under(self, prefix: str) -> dict[str, int]:
        return {f.path: f.size for f in self.tree.iter_under(prefix) if f.size > 0}

    def layer_tree(self, index: int) -> LayerTree | None:
        for t in self.trees:
            if t.index == index:
                return t
        return None
