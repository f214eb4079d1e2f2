"""GPU stacks where a CPU build serves, and torch + transformers where ONNX Runtime serves."""

from __future__ import annotations

import posixpath

from packaging.utils import canonicalize_name

from advisor.advise.facts.context import Context
from advisor.advise.facts.depgraph import (
    DepGraph,
    parse_requirement,
    without_dev_extras,
    without_unrequested_extras,
)
from advisor.advise.facts.mlstack import (
    ONNX_SERVING_STACK,
    ONNX_SERVING_STACK_BYTES,
    SLIM_BASE_BYTES,
    TRAINING_DISTS,
    ModelConfig,
    cpu_torch_size,
    gpu_removable,
    is_gpu_dist,
)
from advisor.advise.rules.base import Finding, Rule, Severity, human, plural
from advisor.export.specs import Verdict, judge

GIB = 1024**3
ML_HEAVY = ("torch", "transformers", "tensorflow", "jax", "jaxlib", "accelerate", "sentence-transformers")


class CudaTorch(Rule):
    id = "ml-cuda-torch"
    severity = Severity.HIGH
    title = "CUDA build of torch where a CPU build serves"
    category = "gpu"
    recommendation = "cpu-torch"

    def evaluate(self, ctx: Context) -> list[Finding]:
        build = ctx.torch
        if build is None or not build.cuda:
            return []
        gpu = gpu_removable(ctx.graph)
        frees = ctx.dist_files({"torch", *gpu})
        installed = sum(frees.values())
        cpu, exact = cpu_torch_size(build.distribution.version, ctx.facts.architecture)
        net = max(0, installed - cpu.installed_bytes)
        how = "measured" if exact else f"estimated from torch {cpu.version}"
        gpu_list = ", ".join(sorted(gpu)[:6]) + (" ..." if len(gpu) > 6 else "")
        msg = (
            f"torch {build.distribution.version} is a CUDA build ({build.cuda}); with its GPU "
            f"packages ({gpu_list or 'none'}) it takes {human(installed)}. The CPU wheel for "
            f"{cpu.version} weighs {human(cpu.wheel_bytes)} ({human(cpu.installed_bytes)} installed, "
            f"{how}): net saving {human(net)}"
        )
        sev = Severity.CRITICAL if net >= 2 * GIB else self.severity
        evidence = [*build.evidence, *(ctx.dists[k].metadata_path for k in sorted(gpu) if k in ctx.dists)]
        return [self.finding(
            net, evidence, msg, frees, severity=sev, added_bytes=cpu.installed_bytes,
            data={"cuda": build.cuda, "torch_version": build.distribution.version,
                  "gpu_distributions": sorted(gpu), "installed_bytes": installed,
                  "cpu_wheel_bytes": cpu.wheel_bytes, "cpu_installed_bytes": cpu.installed_bytes,
                  "cpu_size_exact": exact},
        )]


class OnnxExport(Rule):
    id = "ml-onnx-export"
    severity = Severity.HIGH
    title = "torch + transformers only to run an exportable model: serve it with ONNX Runtime"
    category = "ml"
    recommendation = "onnx-runtime"

    def evaluate(self, ctx: Context) -> list[Finding]:
        if "torch" not in ctx.dists or "transformers" not in ctx.dists:
            return []
        verdicts = [(m, judge(m.config())) for m in ctx.model_configs]
        models = [m for m, v in verdicts if v.ok]
        refused = [(m, v) for m, v in verdicts if not v.ok]
        training = sorted(TRAINING_DISTS & set(ctx.dists))
        if training or not models:
            return []
        heavy = {k for k in ML_HEAVY if k in ctx.dists}
        # What requires torch/transformers (the serving app itself) moves to onnxruntime with
        # the export: its edges into them no longer keep them.
        users = sorted({e.source for e in ctx.graph.edges if e.target in heavy and e.source not in heavy})
        graph = DepGraph(ctx.graph.sizes, tuple(e for e in ctx.graph.edges if e.target not in heavy or e.source in heavy))
        keep = (ctx.app_dists or set()) - heavy  # what the entry script imports itself stays
        removed = graph.removable_with_deps(heavy, keep) | {k for k in ctx.dists if is_gpu_dist(k)}
        users = [u for u in users if u not in removed]
        stack = set(ONNX_SERVING_STACK)
        removed -= stack
        frees = ctx.dist_files(removed)
        present = sum(ctx.dists[k].size_bytes for k in stack if k in ctx.dists)
        added = max(0, ONNX_SERVING_STACK_BYTES - present)
        model_bytes = _distinct_model_bytes(ctx, [m.folder for m in models])
        gross = sum(frees.values())
        if gross == 0:
            return []  # something the image keeps needs torch and transformers
        net = max(0, gross - added)
        expected = ONNX_SERVING_STACK_BYTES + model_bytes + SLIM_BASE_BYTES
        names = ", ".join(f"{m.folder or '/'} [{m.model_type}]" for m in models)
        skipped = "".join(f"; {m.folder or '/'} [{m.model_type}] stays: {v.reason}" for m, v in refused)
        msg = (
            f"torch and transformers ({human(gross)} with {len(removed)} packages only they need) "
            f"serve {plural(len(models), 'exportable model')} ({names}). Exported to ONNX and served "
            f"with onnxruntime + numpy + tokenizers (~{human(ONNX_SERVING_STACK_BYTES)}), the image "
            f"would be about {human(expected)}: run `advisor export` on this image{skipped}"
        )
        return [self.finding(
            net, [m.path for m in models] + [ctx.dists[k].metadata_path for k in sorted(removed)][:20],
            msg, frees, added_bytes=added,
            data={"removed_distributions": sorted(removed), "expected_image_bytes": expected, "rewrites": users,
                  "model_bytes": model_bytes, "models": [m.folder for m in models],
                  "not_exportable": _refused_data(refused)},
        )]



class ModelNotExportable(Rule):
    id = "ml-model-not-exportable"
    severity = Severity.INFO
    title = "torch + transformers serve a model `advisor export` cannot export"
    category = "ml"
    recommendation = ""  # nothing to apply: it says why ml-onnx-export is not offered

    def evaluate(self, ctx: Context) -> list[Finding]:
        if "torch" not in ctx.dists or "transformers" not in ctx.dists:
            return []
        refused = [(m, v) for m in ctx.model_configs if not (v := judge(m.config())).ok]
        if not refused or any(judge(m.config()).ok for m in ctx.model_configs):
            return []  # with one exportable model, ml-onnx-export names the others
        heavy = {k for k in ML_HEAVY if k in ctx.dists}
        kept = sum(ctx.dists[k].size_bytes for k in heavy)
        why = "; ".join(f"{m.folder or '/'} ({m.model_type}): {v.reason}" for m, v in refused)
        msg = (f"torch and transformers ({human(kept)}) serve {plural(len(refused), 'model')} that "
               f"`advisor export` cannot export, so they stay: {why}")
        return [self.finding(kept, [m.path for m, _ in refused], msg,
                             data={"not_exportable": _refused_data(refused),
                                   "kept_distributions": sorted(heavy)})]


def _refused_data(refused: list[tuple[ModelConfig, Verdict]]) -> list[dict[str, str]]:
    return [{"folder": m.folder, "model_type": m.model_type, "reason": v.reason} for m, v in refused]


def _resolved_size(ctx: Context, path: str) -> int:
    info = ctx.tree.get(ctx.tree.resolve(path))
    return info.size if info is not None else 0


def _distinct_model_bytes(ctx: Context, folders: list[str]) -> int:
    """Bytes of the model folders, a folder holding the same weights as an earlier one once."""
    seen: set[tuple[int, ...]] = set()
    total = 0
    for folder in folders:
        sizes = [_resolved_size(ctx, f.path) for f in ctx.tree.iter_under(folder)]
        key = tuple(sorted(s for s in sizes if s >= 1024 * 1024))
        if key in seen:
            continue
        seen.add(key)
        total += sum(sizes)
    return total


# Packaging tools stay even when only a dev tool's extra names them.
PACKAGING = frozenset({"pip", "setuptools", "wheel"})

DEV_TOOLS = (
    "pytest", "jupyter", "jupyterlab", "notebook", "jupyter-server", "ipython", "ipykernel",
    "ipywidgets", "black", "flake8", "mypy", "pylint", "isort", "ruff", "pre-commit", "tox",
    "nox", "coverage", "hypothesis", "sphinx", "debugpy", "autopep8", "yapf", "bandit",
    "pyright", "nbconvert", "pytest-cov", "pytest-xdist", "pytest-timeout", "pytest-mock",
    "line-profiler", "memory-profiler", "snakeviz", "types-requests",
)


def asked_for(ctx: Context) -> set[str]:
    """Distributions the image's own requirements.txt names (outside site-packages): they stay
    when a dev tool that also needs them goes (the case study lists requests itself)."""
    names: set[str] = set()
    for f in ctx.tree:
        if posixpath.basename(f.path) != "requirements.txt" or "-packages/" in f.path:
            continue
        for line in (ctx.tree.read(f.path) or b"").decode("utf-8", "replace").splitlines():
            text = line.split("#", 1)[0].strip()
            if not text or text.startswith("-"):
                continue
            req = parse_requirement(text)
            if req is not None:
                names.add(canonicalize_name(req.name))
    return names


class DevTools(Rule):
    id = "py-dev-tools"
    severity = Severity.MEDIUM
    title = "dev, test and notebook tools in the production image"
    category = "dev-tools"
    recommendation = "remove-dev-tools"

    def evaluate(self, ctx: Context) -> list[Finding]:
        tools = sorted(t for t in DEV_TOOLS if t in ctx.dists)
        if not tools:
            return []
        graph = without_unrequested_extras(without_dev_extras(ctx.graph))
        freed = graph.removable_with_deps(tools, asked_for(ctx) - set(tools)) - PACKAGING
        owner: dict[str, str] = {}
        # Shared dependencies go to the largest tool that pulls them in.
        for tool in sorted(tools, key=lambda t: (-graph.bytes_of(graph.closure([t]) & freed), t)):
            for dep in sorted(graph.closure([tool]) & freed):
                owner.setdefault(dep, tool)
        findings = []
        for tool in tools:
            mine = sorted(d for d, o in owner.items() if o == tool)
            if not mine:
                continue  # a kept package needs it
            frees = ctx.removal_files(mine)
            msg = (f"{tool} {ctx.dists[tool].version} with {len(mine) - 1} dependencies only it "
                   f"needs ({', '.join(d for d in mine if d != tool)[:200] or 'none'}): {human(sum(frees.values()))}"
                   f"{_cached_note(ctx, mine)}")
            findings.append(self.finding(
                sum(frees.values()), [ctx.dists[d].metadata_path for d in mine if d in ctx.dists], msg,
                frees, data={"distribution": tool, "removed_distributions": mine,
                             "tools": [d for d in mine if d in DEV_TOOLS]}))
        return findings


def _cached_note(ctx: Context, keys: list[str]) -> str:
    cached = sum(sum(ctx.cached_wheels.get(k, {}).values()) for k in keys)
    return f" ({human(cached)} of it their wheels in pip's cache)" if cached else ""


class UnusedPackages(Rule):
    id = "py-unused-packages"
    severity = Severity.MEDIUM
    title = "top-level packages the served entrypoint never imports"
    category = "python"
    recommendation = "drop-unused-packages"

    def evaluate(self, ctx: Context) -> list[Finding]:
        app, wanted = ctx.app, ctx.app_dists
        if app is None or wanted is None:
            return []  # no entry script to judge by: say nothing
        graph = without_dev_extras(ctx.graph)
        needed = graph.closure(wanted)
        skip = needed | PACKAGING | set(DEV_TOOLS)
        candidates = sorted(r for r in graph.roots() if r not in skip and not is_gpu_dist(r)
                            and not ctx.dists[r].environment.startswith("usr/lib/python3/"))
        freed = graph.removable_with_deps(candidates, needed) - PACKAGING
        findings = []
        for root, mine in _assign(graph, candidates, freed).items():
            frees = ctx.removal_files(mine)
            total = sum(frees.values())
            msg = (f"{ctx.dists[root].name} {ctx.dists[root].version} is not imported by the entrypoint "
                   f"(/{app.entry} and the {len(app.files) - 1} local modules it imports) nor needed by what it "
                   f"imports; with {len(mine) - 1} dependencies only it needs: {human(total)}{_cached_note(ctx, mine)}")
            findings.append(self.finding(total, [ctx.dists[d].metadata_path for d in mine], msg, frees,
                                         data={"distribution": root, "removed_distributions": mine,
                                               "entry": app.entry}))
        return findings


def _assign(graph: DepGraph, roots: list[str], freed: set[str]) -> dict[str, list[str]]:
    """Each freed distribution to the largest root that pulls it in (shared deps counted once)."""
    owner: dict[str, str] = {}
    for root in sorted(roots, key=lambda r: (-graph.bytes_of(graph.closure([r]) & freed), r)):
        for dep in sorted(graph.closure([root]) & freed):
            owner.setdefault(dep, root)
    out: dict[str, list[str]] = {}
    for dep, root in sorted(owner.items()):
        out.setdefault(root, []).append(dep)
    return out
