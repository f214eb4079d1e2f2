"""``fix.run``: apply advise's recommendations to an image, prove it still works, write DEST.

Steps: analyse the image as ``advise`` does -> plan each recommendation's removals per
layer -> prove the original (an entrypoint broken before the fix stops here, exit 6, DEST
untouched) -> prove the fixed image, bisecting by recommendation when it fails and leaving
the culprits out -> write DEST once, atomically -> report per recommendation.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

from advisor.advise.advice import Advice, build_advice, facts_from_image
from advisor.advise.facts.context import Context
from advisor.errors import BuildError
from advisor.fix.image import Drops, LayerStore, uncompressed_destination, write_fixed
from advisor.fix.model import FixConfig, FixOutcome, FixResult, LayerChange, ProofReport
from advisor.fix.plan import TORCH_FIX, PlannedFix, drops_for, plan_fixes
from advisor.fix.proof import ProofSpec, bisect, local_module_names, prove
from advisor.fix.rewrite import Rewritten
from advisor.fix.sandbox import Session, open_session
from advisor.fix.torch import TorchSwap
from advisor.fsutil import staging_dir_for
from advisor.oci.filetree import FileTree, LayerTree, merge_layers
from advisor.oci.model import Image
from advisor.oci.refs import as_ref
from advisor.oci.tarball import Compression
from advisor.oci.writer import WrittenImage

SessionFactory = Callable[[str], AbstractContextManager[Session]]


@dataclass
class _Analysis:
    image: Image
    trees: list[LayerTree]
    tree: FileTree
    ctx: Context
    advice: Advice


def _analyse(config: FixConfig, image: Image) -> _Analysis:
    from advisor.advise.facts.capture import capture_cache, capture_for
    from advisor.advise.facts.layers import analyze_layers
    from advisor.oci.layers import read_layers

    trees = read_layers(image, capture=capture_for,
                        progress=lambda d, t: config.progress(d, t, "reading layers"),
                        cache=capture_cache() if config.use_cache else None)
    config.progress(0, 0, "analysing")
    report = analyze_layers(image, trees)
    tree = report.tree if report.tree is not None else merge_layers(trees).tree
    ctx = Context(facts_from_image(image), tuple(trees), tree, report)
    return _Analysis(image, trees, tree, ctx, build_advice(ctx))


def proof_spec(analysis: _Analysis, config: FixConfig) -> ProofSpec:
    """The entry script's import closure (as advise reads it) and, when the image holds a
    model, the labelled texts to compare predictions on."""
    app = analysis.ctx.app
    texts: tuple[str, ...] = ()
    if analysis.ctx.model_configs:
        from advisor.bench.data import default_data_path, load_csv

        path = config.data or default_data_path()
        if path.is_file() or config.data is not None:
            texts = load_csv(path, config.limit).texts
    if app is None:
        return ProofSpec(texts=texts, timeout_s=config.timeout_s)
    return ProofSpec(entry=app.entry, modules=tuple(sorted(app.modules)),
                     local_modules=local_module_names(app.entry, app.files),
                     texts=texts, timeout_s=config.timeout_s)


@contextmanager
def _work_dir(output: str) -> Iterator[Path]:
    ref = as_ref(output)
    near = staging_dir_for(Path(ref.path)) if ref.path else Path(tempfile.gettempdir())
    near.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix=".advisor-fix-", dir=near))
    try:
        yield work
    finally:
        shutil.rmtree(work, ignore_errors=True)


class _Prover:
    """Proves candidates (each a set of applied fixes) and remembers every outcome."""

    def __init__(self, analysis: _Analysis, candidates: _Candidates, plans: Sequence[PlannedFix],
                 spec: ProofSpec, baseline: list[str] | None, work: Path,
                 sessions: SessionFactory, config: FixConfig) -> None:
        self.analysis, self.candidates, self.spec, self.baseline = analysis, candidates, spec, baseline
        self.plans = {p.id: p for p in plans}
        self.work, self.sessions, self.config = work, sessions, config
        self.reports: dict[tuple[str, ...], ProofReport] = {}

    def passes(self, ids: tuple[str, ...]) -> bool:
        if ids not in self.reports:
            n = len(self.reports)
            self.config.progress(n, 0, f"proving {', '.join(ids) or 'the original'}")
            layout = self.work / f"candidate-{n}"
            self.candidates.write(f"oci:{layout}:proof", self.analysis, self.plans, ids)
            try:
                report, _ = prove(self.sessions, f"oci:{layout}:proof", self.spec, self.baseline)
            finally:
                shutil.rmtree(layout, ignore_errors=True)
            self.reports[ids] = report
        return self.reports[ids].passed

    def why(self, culprit: str) -> str:
        """The failure of the smallest failing candidate that applied ``culprit``."""
        failed = [(len(ids), ids) for ids, r in self.reports.items() if not r.passed and culprit in ids]
        return self.reports[min(failed)[1]].failure if failed else "the proof failed with it"


def _torch_plan(p: PlannedFix, config: FixConfig, analysis: _Analysis, work: Path,
                compression: Compression) -> tuple[PlannedFix, TorchSwap | None]:
    """cpu-torch applies only with a CPU wheel of the same version from the named source."""
    if not p.applies:
        return p, None
    if config.torch == "keep":
        return p.with_skip("--torch keep"), None
    from advisor.fix.torch import build_swap, find_wheel

    torch = analysis.ctx.dists.get("torch")
    if torch is None:
        return p.with_skip("torch's distribution metadata is not readable"), None
    config.progress(0, 0, "finding the CPU torch wheel")
    wheel, why = find_wheel(torch.version, analysis.ctx.python_version, analysis.image.config.architecture,
                            config.wheels, config.index_url, work)
    if wheel is None:
        return p.with_skip(why), None
    config.progress(0, 0, f"installing {wheel.name}")
    return p, build_swap(analysis.ctx, wheel, work, compression)


def run(config: FixConfig, sessions: SessionFactory = open_session) -> FixResult:
    """Apply, prove and write; see the module docstring. ``sessions`` is the sandbox."""
    config.progress(0, 0, "resolving image")
    from advisor.oci.loader import open_image

    with open_image(config.image, platform=config.platform, insecure=config.insecure) as image:
        analysis = _analyse(config, image)
        plans = plan_fixes(analysis.advice, analysis.trees, config.only, config.skip)
        with _work_dir(config.output) as work:
            uncompressed = uncompressed_destination(config.output)
            swap = None
            for i, p in enumerate(plans):
                if p.id == TORCH_FIX:
                    plans[i], swap = _torch_plan(p, config, analysis, work, "none" if uncompressed else "gzip")
            store = LayerStore(image, work / "blobs", uncompressed)
            return _apply(config, analysis, plans, _Candidates(store, swap), work, sessions)


@dataclass(frozen=True)
class _Candidates:
    """Writes the image for a set of applied fixes: the rewritten layers, plus the CPU torch
    layer when cpu-torch is among them."""

    store: LayerStore
    swap: TorchSwap | None

    def write(self, dest: str, analysis: _Analysis, plans: Mapping[str, PlannedFix],
              ids: Sequence[str], insecure: bool = False) -> tuple[WrittenImage, list[Rewritten], Drops]:
        drops = drops_for((plans[i] for i in ids), analysis.tree, analysis.trees)
        added = [(self.swap.layer, self.swap.history)] if self.swap and TORCH_FIX in ids else []
        written, layers = write_fixed(dest, analysis.image, self.store, drops, insecure, added)
        return written, layers, drops


def _apply(config: FixConfig, analysis: _Analysis, plans: list[PlannedFix], candidates: _Candidates,
           work: Path, sessions: SessionFactory) -> FixResult:
    wanted = [p.id for p in plans if p.applies and (p.removals or p.id == TORCH_FIX)]
    baseline_report: ProofReport | None = None
    proof_report: ProofReport | None = None
    culprits: list[str] = []
    why: dict[str, str] = {}
    kept = wanted
    if config.verify:
        spec = proof_spec(analysis, config)
        config.progress(0, 0, "proving the original image")
        baseline_report, labels = prove(sessions, config.image, spec)
        if not baseline_report.passed:
            raise BuildError(f"the original image fails the proof before any fix: {baseline_report.failure}",
                             hint="make its entrypoint run first, or pass --no-verify to fix it unproved")
        prover = _Prover(analysis, candidates, plans, spec, labels, work, sessions, config)
        kept, culprits = bisect(wanted, prover.passes)
        why = {c: prover.why(c) for c in culprits}
        proof_report = prover.reports.get(tuple(kept)) or baseline_report
    by_id = {p.id: p for p in plans}
    config.progress(0, 0, f"writing {config.output}")
    written, layers, drops = candidates.write(config.output, analysis, by_id, kept, config.insecure)
    added = candidates.swap.added_bytes if candidates.swap and TORCH_FIX in kept else 0
    outcomes = _outcomes(plans, kept, why, drops, layers, analysis, config.verify, proof_report, added)
    removed = sum(o.removed_bytes for o in outcomes if o.applied and o.id != "squash-layers")
    if proof_report is not None:
        proof_report = replace(proof_report, reference=config.output)
    return FixResult(
        reference=config.image, output=config.output, manifest_digest=written.manifest_digest,
        size_before=analysis.advice.size_bytes, size_after=analysis.advice.size_bytes - removed,
        compressed_before=analysis.image.compressed_size,
        compressed_after=sum(r.size for r in written.layers),
        fixes=tuple(outcomes), layers=tuple(_layer_changes(analysis.image, drops, layers)),
        baseline=baseline_report, proof=proof_report, verified=config.verify,
        notes=tuple(f"{c}: left out, the proof fails with it" for c in culprits),
    )


def _credit(fix: PlannedFix, drops: Drops, layers: Sequence[Rewritten],
            tree: FileTree) -> tuple[int, int, int]:
    """(merged bytes, lower-copy bytes, files) the written layers actually dropped for ``fix``."""
    visible = hidden = files = 0
    for layer, paths in fix.removals.items():
        dropped = layers[layer].dropped
        for path in paths:
            if path not in dropped or drops.get(layer, {}).get(path) != fix.id:
                continue
            files += 1
            info = tree.get(path)
            if fix.id == "squash-layers" or (info is not None and info.layer == layer):
                visible += dropped[path]
            else:
                hidden += dropped[path]
    return visible, hidden, files


def _outcomes(plans: Sequence[PlannedFix], kept: Sequence[str], culprits: Mapping[str, str],
              drops: Drops, layers: Sequence[Rewritten], analysis: _Analysis, verified: bool,
              proof: ProofReport | None, torch_added: int = 0) -> list[FixOutcome]:
    out = []
    for p in plans:
        if p.id in kept:
            visible, hidden, files = _credit(p, drops, layers, analysis.tree)
            if p.id == TORCH_FIX:
                visible -= torch_added  # net, as advise estimates it: the CPU build comes back
            status = "passed" if proof is not None and proof.passed else (
                "skipped (--no-verify)" if not verified else "not run")
            out.append(FixOutcome(p.id, p.title, p.estimated_bytes, visible, hidden, files, True,
                                  proof=status))
        elif p.id in culprits:
            out.append(FixOutcome(p.id, p.title, p.estimated_bytes, reason="left out: " + culprits[p.id],
                                  proof="broke the proof"))
        else:
            reason = p.skipped or "nothing to remove"
            out.append(FixOutcome(p.id, p.title, p.estimated_bytes, reason=reason, proof="not run"))
    return out


def _layer_changes(image: Image, drops: Drops, layers: Sequence[Rewritten]) -> list[LayerChange]:
    from advisor.fix.image import layer_note

    out = []
    for layer, rewritten in zip(image.layers, layers, strict=True):
        out.append(LayerChange(layer.index, layer.blob.digest, rewritten.layer.digest,
                               len(rewritten.dropped), rewritten.dropped_bytes,
                               layer_note(drops.get(layer.index, {}), rewritten)))
    return out
