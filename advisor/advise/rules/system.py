"""Layers, base image and the Dockerfile behind them."""

from __future__ import annotations

from collections import defaultdict

from advisor.advise.facts.context import Context
from advisor.advise.facts.dockerfile import (
    apt_without_cleanup,
    copies_context,
    pip_without_no_cache,
)
from advisor.advise.facts.layer_rows import base_layer_count
from advisor.advise.facts.oslayer import (
    DebPackage,
    build_packages,
    installed_versions,
    is_build_package,
    slim_base_packages,
)
from advisor.advise.rules.base import (
    Finding,
    Rule,
    Severity,
    human,
    plural,
    shorten,
    sizes_in,
    top_paths,
)

COMPILER_PACKAGES = ("gcc", "g++", "build-essential", "clang", "cpp", "gfortran")


def is_compiler(name: str) -> bool:
    """gcc, gcc-12, g++-12, clang-16 (not gcc-12-base, which is only documentation)."""
    if name in COMPILER_PACKAGES:
        return True
    stem, _, version = name.rpartition("-")
    return stem in COMPILER_PACKAGES and version.isdigit()


class HiddenBytes(Rule):
    id = "layer-hidden-bytes"
    severity = Severity.MEDIUM
    title = "bytes shipped by a layer and deleted or overwritten by a later one"
    category = "layers"
    recommendation = "squash-layers"

    def evaluate(self, ctx: Context) -> list[Finding]:
        by_layer: dict[int, dict[str, int]] = defaultdict(dict)
        how: dict[int, set[str]] = defaultdict(set)
        for h in ctx.hidden:
            by_layer[h.layer][f"layer{h.layer}:{h.path}"] = h.size_bytes
            how[h.layer].add(f"{h.how} by layer {h.by_layer}")
        out = []
        for layer, fr in sorted(by_layer.items()):
            total = sum(fr.values())
            paths = [p.split(":", 1)[1] for p in top_paths(fr)]
            out.append(self.finding(total, paths, f"layer {layer} ships {human(total)} in {plural(len(fr), 'file')} "
                                    f"{', '.join(sorted(how[layer]))}: invisible, still pulled", fr,
                                    hidden_bytes=total, data={"layer": layer}))
        return out


class FullBase(Rule):
    id = "os-full-base"
    severity = Severity.MEDIUM
    title = "a full OS base (compilers, headers, perl, git) where a slim one serves"
    category = "os"
    recommendation = "slim-base"

    def evaluate(self, ctx: Context) -> list[Finding]:
        base_layers = base_layer_count(ctx)
        in_base = _base_packages(ctx, base_layers)
        pkgs = [p for p in build_packages(ctx.dpkg) if in_base is None or p.name in in_base]
        # The mark of a full (buildpack-deps) base: compilers or development headers among
        # several build packages (one gcc added by the user is dockerfile-no-multistage's).
        if len(pkgs) < 3 or not any(is_compiler(p.name) or p.name.endswith("-dev") for p in pkgs):
            return []
        frees: dict[str, int] = {}
        for p in [*pkgs, *_beyond_slim(ctx, in_base)]:
            frees.update(sizes_in(ctx.tree, p.files))
        frees.update(_base_docs(ctx, base_layers))
        total = sum(frees.values())
        names = ", ".join(p.name for p in pkgs[:12]) + (" ..." if len(pkgs) > 12 else "")
        os_name = ctx.os_info.pretty_name or ctx.os_info.id or "the base"
        base_bytes = sum(t.size for t in ctx.trees if t.index < base_layers)
        shipped = sum(t.size for t in ctx.trees) or 1
        share = f"; the base layers are {human(base_bytes)}, {base_bytes / shipped:.0%} of the image" if base_layers else ""
        return [self.finding(total, [f"var/lib/dpkg/info/{p.name}.list" for p in pkgs[:30]],
                             f"{os_name} carries {len(pkgs)} build/dev packages ({names}) and docs a "
                             f"slim base leaves out: {human(total)}{share}", frees,
                             data={"packages": [p.name for p in pkgs], "os": ctx.os_info.id,
                                   "os_version": ctx.os_info.version_id, "base_layers": base_layers,
                                   "base_bytes": base_bytes})]


def _beyond_slim(ctx: Context, in_base: set[str] | None) -> list[DebPackage]:
    """The base's other packages a slim Python base would not hold (runtime libraries of the
    -dev packages, pip, wget, gnupg ...): not required, and no slim root depends on them."""
    if not in_base:
        return []
    keep = slim_base_packages(ctx.dpkg)
    return [p for name, p in sorted(ctx.dpkg.items())
            if name in in_base and name not in keep and not is_build_package(name)]


# What Debian's slim images (debian:*-slim, python:*-slim) exclude with dpkg path-exclude.
_SLIM_EXCLUDED_DIRS = ("usr/share/doc", "usr/share/man", "usr/share/info", "usr/share/locale")


def _base_docs(ctx: Context, base_layers: int) -> dict[str, int]:
    """Docs, man pages and translations the base layers ship and a slim base leaves out
    (the licence texts, ``copyright``, stay in slim images too)."""
    frees: dict[str, int] = {}
    for top in _SLIM_EXCLUDED_DIRS:
        for info in ctx.tree.iter_under(top):
            if info.layer < base_layers and info.size and not info.path.endswith("/copyright"):
                frees[info.path] = info.size
    return frees


def _base_packages(ctx: Context, base_layers: int) -> set[str] | None:
    """Packages of the base image (dpkg status as its last layer left it), None if unknown."""
    status = None
    for t in ctx.trees:
        if t.index < base_layers and "var/lib/dpkg/status" in t.heads:
            status = t.heads["var/lib/dpkg/status"]
    return set(installed_versions(status)) if status is not None else None


class _RunLeavesCache(Rule):
    """A RUN step whose command leaves a package manager's cache in its own layer."""

    markers: tuple[str, ...] = ()
    leaves: str = ""

    def matches(self, arguments: str, ctx: Context) -> bool:
        raise NotImplementedError

    def evaluate(self, ctx: Context) -> list[Finding]:
        out = []
        for step in ctx.steps:
            if step.instruction != "RUN" or not self.matches(step.arguments, ctx):
                continue
            frees = _layer_cache_files(ctx, step.layer, self.markers)
            total = sum(frees.values())
            if total == 0:
                continue  # the cache went away in the same RUN: nothing shipped
            out.append(self.finding(total, top_paths(frees, 10) or [f"history[{step.index}]"],
                                    f"layer {step.layer}: `{shorten(step.line, 120)}` {self.leaves} ({human(total)})",
                                    frees, data={"step": step.index, "layer": step.layer}))
        return out


class PipNoCacheDir(_RunLeavesCache):
    id = "dockerfile-pip-cache"
    severity = Severity.LOW
    title = "RUN pip install without --no-cache-dir"
    category = "caches"
    recommendation = "clean-caches"
    markers = ("/.cache/pip/",)
    leaves = "keeps pip's cache"

    def matches(self, arguments: str, ctx: Context) -> bool:
        return pip_without_no_cache(arguments, ctx.facts.env)


class AptNoCleanup(_RunLeavesCache):
    id = "dockerfile-apt-no-cleanup"
    severity = Severity.LOW
    title = "RUN apt-get install without removing /var/lib/apt/lists in the same RUN"
    category = "caches"
    recommendation = "clean-caches"
    markers = ("var/lib/apt/lists/", "var/cache/apt/")
    leaves = "leaves apt lists/caches"

    def matches(self, arguments: str, ctx: Context) -> bool:
        return apt_without_cleanup(arguments)


def _layer_cache_files(ctx: Context, layer: int | None, markers: tuple[str, ...]) -> dict[str, int]:
    """Files of ``layer`` matching ``markers`` that are still in the merged tree."""
    tree = ctx.layer_tree(layer) if layer is not None else None
    if tree is None:
        return {}
    out = {}
    for path, entry in tree.entries.items():
        merged = ctx.tree.get(path)
        if entry.size and merged is not None and merged.layer == layer and any(m in "/" + path for m in markers):
            out[path] = entry.size
    return out


JUNK_MARKERS = ("/.git/", ".ipynb", "/__pycache__/", "/.ipynb_checkpoints/", "/.venv/", "/.pytest_cache/",
                "/.mypy_cache/", "/node_modules/", ".env", "/tests/", "/data/")


class CopyContext(Rule):
    id = "dockerfile-copy-context"
    severity = Severity.LOW
    title = "COPY . . without a .dockerignore: repository junk in the image"
    category = "app"
    recommendation = "dockerignore"

    def evaluate(self, ctx: Context) -> list[Finding]:
        out = []
        for step in ctx.steps:
            tree = ctx.layer_tree(step.layer) if step.layer is not None else None
            if tree is None or not copies_context(step):
                continue
            frees = {}
            for path, entry in tree.entries.items():
                merged = ctx.tree.get(path)
                if entry.size and merged is not None and merged.layer == step.layer and any(m in "/" + path + "/" for m in JUNK_MARKERS):
                    frees[path] = entry.size
            if frees:
                total = sum(frees.values())
                out.append(self.finding(total, top_paths(frees, 20), f"layer {step.layer}: `{shorten(step.line, 80)}` copied "
                                        f"{plural(len(frees), 'file')} a .dockerignore would skip ({human(total)})", frees,
                                        data={"step": step.index, "layer": step.layer}))
        return out


class NoMultiStage(Rule):
    id = "dockerfile-no-multistage"
    severity = Severity.MEDIUM
    title = "compilers in the final image: no multi-stage build"
    category = "os"
    recommendation = "slim-base"

    def evaluate(self, ctx: Context) -> list[Finding]:
        compilers = sorted(n for n in ctx.dpkg if is_compiler(n))
        if not compilers:
            return []
        frees: dict[str, int] = {}
        for n in compilers:
            frees.update(sizes_in(ctx.tree, ctx.dpkg[n].files))
        total = sum(frees.values())
        return [self.finding(total, [f"var/lib/dpkg/info/{n}.list" for n in compilers],
                             f"compilers installed in the final image ({', '.join(compilers)}: {human(total)}): "
                             "build wheels in a builder stage and copy only the results", frees,
                             data={"packages": compilers})]
