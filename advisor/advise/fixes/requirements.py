"""Split what the image holds into runtime and dev requirements, from the dependency graph.

A requirement file lists the top-level distributions (nothing installed requires them);
pip resolves the rest. Versions are pinned to what the image runs today, minus local
version labels (``+cu130``): the CPU torch comes from its own index.
"""

from __future__ import annotations

from dataclasses import dataclass

from advisor.advise.advice import Advice, DistributionRow
from advisor.advise.facts.mlstack import is_gpu_dist

TOOLING = frozenset({"pip", "setuptools", "wheel", "distribute", "virtualenv"})
SYSTEM_SITES = ("usr/lib/python3/dist-packages",)


@dataclass(frozen=True, slots=True)
class Requirements:
    runtime: tuple[str, ...]  # "name==version"
    dev: tuple[str, ...]
    torch_version: str  # "" when the image has no torch


def _pin(d: DistributionRow) -> str:
    return f"{d.name}=={d.version.split('+', 1)[0]}"


def _removed_by(advice: Advice, rule: str) -> set[str]:
    out: set[str] = set()
    for f in advice.findings:
        if f.rule == rule:
            removed = f.data.get("removed_distributions", [])
            if isinstance(removed, list):
                out.update(str(x) for x in removed)
    return out


def dev_distributions(advice: Advice) -> set[str]:
    return _removed_by(advice, "py-dev-tools")


def _dev_tools(advice: Advice) -> set[str]:
    """The dev tools themselves (pytest, black...), not the libraries they pull in."""
    out: set[str] = set()
    for f in advice.findings:
        tools = f.data.get("tools", []) if f.rule == "py-dev-tools" else []
        if isinstance(tools, list):
            out.update(str(t) for t in tools)
    return out


def split_requirements(advice: Advice) -> Requirements:
    dists = [d for d in advice.distributions if d.environment not in SYSTEM_SITES and d.key not in TOOLING]
    dev = dev_distributions(advice)
    dev_roots = _dev_tools(advice)
    runtime, dev_pins = [], []
    torch_version = ""
    app = set(advice.app_distributions)
    unused = _removed_by(advice, "py-unused-packages")
    for d in dists:
        if d.key == "torch" and not torch_version:
            torch_version = d.version.split("+", 1)[0]
        if is_gpu_dist(d.key) or d.key == "torch":  # torch: its own line, from TORCH_INDEX
            continue
        kept_required_by = [r for r in d.required_by if r not in dev]
        if d.key in dev:
            if d.key in dev_roots:
                dev_pins.append(_pin(d))
        elif app:
            if d.key in app:  # what the entry script imports; pip resolves the rest
                runtime.append(_pin(d))
        elif not kept_required_by and d.key not in unused:
            runtime.append(_pin(d))
    return Requirements(tuple(sorted(set(runtime), key=str.lower)), tuple(sorted(set(dev_pins), key=str.lower)), torch_version)


def render_requirements(reqs: Requirements) -> tuple[str, str]:
    head = "# Runtime requirements, pinned to what the image runs (written by advisor).\n"
    if reqs.torch_version:
        head += ("# torch comes from the CPU-only index first:\n"
                 f"#   pip install --index-url https://download.pytorch.org/whl/cpu torch=={reqs.torch_version}\n")
    runtime = head + "".join(f"{r}\n" for r in reqs.runtime)
    dev = "# Dev, test and notebook tools, never in the production image (written by advisor).\n-r requirements.txt\n"
    dev += "".join(f"{r}\n" for r in reqs.dev)
    return runtime, dev
