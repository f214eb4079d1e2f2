"""Run every rule over an image's facts and turn the findings into advice (``build_advice``).

The result is one frozen ``Advice``: what the image holds (layers, Python environments,
distributions with their dependency graph, byte categories), the findings, and the
recommendations with savings that never count a byte twice.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from advisor.advise.facts.categories import categorize
from advisor.advise.facts.context import Context, ImageFacts
from advisor.advise.facts.layer_rows import LayerRow, base_layer_count, largest_files, layer_rows
from advisor.advise.facts.oslayer import installed_versions, is_build_package
from advisor.advise.rules.base import Finding, Rule
from advisor.advise.rules.gate import GateResult, GateRules, evaluate_gate
from advisor.advise.rules.recommendations import RECOMMENDATIONS
from advisor.advise.rules.registry import ALL_RULES
from advisor.oci.model import Image

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class AdviseOptions:
    rules: Sequence[Rule] = ALL_RULES
    disabled_rules: frozenset[str] = frozenset()
    graph_details: bool = True
    gate: GateRules | None = None  # evaluated into Advice.gate; None: no gate asked for
    # (rules done, rules in all, the rule running): the analysis is most of advise's CPU time
    progress: Callable[[int, int, str], None] | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Recommendation:
    id: str
    title: str
    fix: str
    estimated_savings_bytes: int
    standalone_savings_bytes: int
    findings: tuple[int, ...]  # indexes into Advice.findings
    rules: tuple[str, ...]
    alternative_to: str = ""


@dataclass(frozen=True)
class DistributionRow:
    name: str
    key: str
    version: str
    size_bytes: int
    environment: str
    files: int
    requires: tuple[str, ...]
    required_by: tuple[str, ...]
    removable_with_deps_bytes: int
    removable_with_deps: tuple[str, ...]


@dataclass(frozen=True)
class Advice:
    facts: ImageFacts
    size_bytes: int
    layers: tuple[LayerRow, ...]
    efficiency: float
    wasted_bytes: int
    base_layers: int
    base_bytes: int
    environments: tuple[Mapping[str, Any], ...]
    distributions: tuple[DistributionRow, ...]
    unowned: tuple[Mapping[str, Any], ...]
    categories: Mapping[str, int]
    findings: tuple[Finding, ...]
    recommendations: tuple[Recommendation, ...]
    total_estimated_savings_bytes: int
    os: Mapping[str, str] = field(default_factory=dict)
    torch: Mapping[str, Any] = field(default_factory=dict)
    python_version: str = ""
    apt_packages: tuple[str, ...] = ()
    app_entry: str = ""  # the entry script the command runs, "" when unknown
    app_distributions: tuple[str, ...] = ()  # canonical names it (and its local modules) imports
    gate: GateResult | None = None  # the CI gate's verdict per rule, when one was asked for
    largest_files: tuple[tuple[str, int], ...] = ()  # (path, bytes) of the merged filesystem

    @property
    def layer_bytes(self) -> int:
        """What the layers carry, deleted and overwritten files included: what a pull moves."""
        return sum(r.size_bytes for r in self.layers)

    @property
    def context_note(self) -> str:
        return f"{self.facts.reference} ({self.facts.os}/{self.facts.architecture})"


def facts_from_image(image: Image) -> ImageFacts:
    cfg = image.config
    inner = cfg.raw.get("config") if isinstance(cfg.raw.get("config"), dict) else {}
    ports = sorted((inner or {}).get("ExposedPorts") or {})
    blobs = tuple({"digest": layer.blob.digest, "size": layer.blob.size, "diff_id": layer.diff_id}
                  for layer in image.layers)
    return ImageFacts(
        reference=image.reference, digest=image.digest, os=cfg.os, architecture=cfg.architecture,
        env=tuple(cfg.env), history=tuple(cfg.history), working_dir=cfg.working_dir, user=cfg.user,
        entrypoint=tuple(cfg.entrypoint), cmd=tuple(cfg.cmd), exposed_ports=tuple(ports),
        compressed_size=image.compressed_size, layer_blobs=blobs,
    )


def run_rules(ctx: Context, options: AdviseOptions) -> list[Finding]:
    findings: list[Finding] = []
    active = [r for r in options.rules if r.id not in options.disabled_rules]
    for i, rule in enumerate(active):
        if options.progress is not None:
            options.progress(i, len(active), rule.id)
        findings.extend(rule.evaluate(ctx))
    if options.progress is not None:
        options.progress(len(active), len(active), "")
    return findings


def _finding_savings(f: Finding, claimed: set[str]) -> int:
    fresh = {p: b for p, b in f.frees.items() if p not in claimed}
    gross = sum(fresh.values())
    total = sum(f.frees.values())
    added = f.added_bytes * gross // total if total else 0
    claimed.update(fresh)
    return gross - added


def _fix_text(fix: str, findings: Sequence[Finding]) -> str:
    """Fill the generic fix with what the findings know (the torch version to pin, the
    folder the unstripped libraries are in instead of a made-up /opt/venv)."""
    if "/opt/venv" in fix:
        paths = ["/" + p for f in findings for p in (f.frees or dict.fromkeys(f.paths))]
        if paths:
            where = posixpath.commonpath(paths)
            fix = fix.replace("/opt/venv", posixpath.dirname(where) if where in paths else where)
    for f in findings:
        version = f.data.get("torch_version")
        if isinstance(version, str) and "VERSION" in fix:
            return fix.replace("VERSION", version.split("+", 1)[0])
    return fix


def recommend(findings: Sequence[Finding], rules: Sequence[Rule],
              base_paths: frozenset[str] = frozenset()) -> list[Recommendation]:  # fmt: skip
    """Group findings by their rule's recommendation; credit each path to the first claimer.

    ``base_paths``: files of the base image's layers, which a fix made in the build's own
    steps (``same_step``) cannot remove: left out of what that fix saves on its own."""
    rec_of = {r.id: r.recommendation for r in rules}
    claimed: set[str] = set()
    out: list[Recommendation] = []
    active = {rec_of.get(f.rule, "") for f in findings}
    for rdef in RECOMMENDATIONS:
        idx = [i for i, f in enumerate(findings) if rec_of.get(f.rule) == rdef.id]
        if not idx:
            continue
        # the same file found by two rules of one fix counts once
        alone: set[str] = set(base_paths) if rdef.same_step else set()
        standalone = sum(_finding_savings(findings[i], alone) for i in idx)
        if rdef.alternative_to and rdef.alternative_to in active:
            saved = 0  # shown for users who keep torch; the alternative's bytes count once
        else:
            saved = sum(_finding_savings(findings[i], claimed) for i in idx)
        rules_hit = tuple(sorted({findings[i].rule for i in idx}))
        alt = rdef.alternative_to if rdef.alternative_to in active else ""
        out.append(Recommendation(rdef.id, rdef.title, _fix_text(rdef.fix, [findings[i] for i in idx]),
                                  max(0, saved), max(0, standalone),
                                  tuple(idx), rules_hit, alt))
    return sorted(out, key=lambda r: (-r.estimated_savings_bytes, -r.standalone_savings_bytes, r.id))


def _distribution_rows(ctx: Context, details: bool) -> list[DistributionRow]:
    g = ctx.graph
    rows = []
    for d in ctx.scan.distributions:
        freed = g.removable_with_deps([d.key]) if details else set()
        rows.append(DistributionRow(
            d.name, d.key, d.version, d.size_bytes, d.environment, len(d.files),
            tuple(sorted(g.requires(d.key))), tuple(sorted(g.required_by(d.key))),
            g.bytes_of(freed), tuple(sorted(freed)),
        ))
    return rows


def user_apt_packages(ctx: Context, base_layers: int) -> tuple[str, ...]:
    """``name=version`` of the dpkg packages the user's layers installed on top of the base,
    minus build tools and libraries (apt pulls those in as dependencies)."""
    status_at_base: bytes | None = None
    for t in ctx.trees:
        if t.index < base_layers and "var/lib/dpkg/status" in t.heads:
            status_at_base = t.heads["var/lib/dpkg/status"]
    final = installed_versions(ctx.tree.read("var/lib/dpkg/status"))
    if not final or base_layers == 0:
        return ()
    base = installed_versions(status_at_base)
    added = sorted(n for n in final if n not in base and not is_build_package(n) and not n.startswith("lib"))
    return tuple(f"{n}={final[n]}" for n in added)


def _torch_summary(ctx: Context) -> dict[str, Any]:
    t = ctx.torch
    if t is None:
        return {}
    return {"version": t.distribution.version, "cuda": t.cuda, "size_bytes": t.distribution.size_bytes}


def _fallback_efficiency(ctx: Context) -> float:
    """Without a LayerReport: the share of shipped bytes that the final filesystem still shows."""
    shipped = sum(t.size for t in ctx.trees)
    return ctx.tree.total_size / shipped if shipped else 1.0


def build_advice(ctx: Context, options: AdviseOptions | None = None) -> Advice:
    options = options or AdviseOptions()
    # the worst first (a leaked key outranks a large cache), then the largest
    findings = sorted(run_rules(ctx, options), key=lambda f: (-f.severity, -f.bytes, f.rule, f.paths))
    rows = layer_rows(ctx)
    base = base_layer_count(ctx)
    recs = recommend(findings, options.rules, frozenset(f.path for f in ctx.tree if f.layer < base) if base else frozenset())
    report = ctx.layer_report
    advice = Advice(
        facts=ctx.facts,
        size_bytes=ctx.tree.total_size,
        layers=tuple(rows),
        efficiency=float(getattr(report, "efficiency", _fallback_efficiency(ctx))),
        wasted_bytes=int(getattr(report, "wasted_bytes", sum(h.size_bytes for h in ctx.hidden))),
        base_layers=base,
        base_bytes=sum(r.size_bytes for r in rows if r.index < base),
        environments=tuple(
            {"path": e.path, "python_version": e.python_version, "kind": e.kind, "root": e.root,
             "size_bytes": e.size_bytes} for e in ctx.environments),
        distributions=tuple(_distribution_rows(ctx, options.graph_details)),
        unowned=tuple({"environment": u.environment, "size_bytes": u.size_bytes,
                       "top": [{"name": n, "size_bytes": b} for n, b in u.top]} for u in ctx.scan.unowned),
        categories=categorize(ctx, findings),
        findings=tuple(findings),
        recommendations=tuple(recs),
        total_estimated_savings_bytes=sum(r.estimated_savings_bytes for r in recs),
        os={"id": ctx.os_info.id, "version_id": ctx.os_info.version_id, "pretty_name": ctx.os_info.pretty_name},
        torch=_torch_summary(ctx),
        python_version=ctx.python_version,
        apt_packages=user_apt_packages(ctx, base),
        app_entry=ctx.app.entry if ctx.app else "",
        app_distributions=tuple(sorted(ctx.app_dists or ())),
        largest_files=largest_files(ctx),
    )
    if options.gate is not None:
        advice = replace(advice, gate=evaluate_gate(advice, options.gate))
    return advice

