"""``advise.run(AdviseConfig) -> Advice``: the advise pipeline as one library call.

The steps, in order: check the options (before any byte of the image is read), open the
image, walk its layers once (through the layer cache), merge the layer trees once
(``analyze_layers``), run the rules and group their findings into recommendations, and wait
for the hashes of the layers that were walked by seeking (the analysis runs beside them).
The CLI, the tests and ``benchmarks/advise_speed`` all call this function.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from advisor.advise.advice import Advice, AdviseOptions, build_advice, facts_from_image
from advisor.advise.facts.capture import capture_cache, capture_for
from advisor.advise.facts.context import Context
from advisor.advise.facts.layers import analyze_layers
from advisor.advise.rules.gate import GateRules
from advisor.advise.rules.registry import ALL_RULES
from advisor.errors import UsageError
from advisor.oci.filetree import LayerTree
from advisor.oci.layers import start_layers
from advisor.oci.loader import open_image
from advisor.oci.model import Image, Platform

#: (bytes or steps done, total or 0 if unknown, what is running).
ProgressFn = Callable[[int, int, str], None]


def _quiet(done: int, total: int, what: str) -> None:
    return None


@dataclass(frozen=True)
class AdviseConfig:
    """What to advise on and how. ``image`` is an image reference (docs/DESIGN.md, "Image
    references"); ``use_cache`` reads unchanged layers from ``$ADVISOR_CACHE/layers``."""

    image: str
    platform: Platform | None = None
    insecure: bool = False
    use_cache: bool = True
    disabled_rules: frozenset[str] = frozenset()
    gate: GateRules | None = None  # evaluated into Advice.gate; None: no gate asked for
    progress: ProgressFn = field(default=_quiet, compare=False)
    # the analysis after the read, counted in steps (the layers' merge, then each rule)
    steps: ProgressFn = field(default=_quiet, compare=False)


def check(config: AdviseConfig) -> None:
    """Refuse a config that cannot work, before the image is opened."""
    unknown = config.disabled_rules - {r.id for r in ALL_RULES}
    if unknown:
        raise UsageError(f"unknown rule id: {', '.join(sorted(unknown))}",
                         hint="rule ids are listed in README.md and in `advise --format json` findings")


def run(config: AdviseConfig) -> Advice:
    """The whole analysis of one image: facts, findings, recommendations."""
    check(config)
    progress = config.progress
    progress(0, 0, "resolving image")
    with open_image(config.image, platform=config.platform, insecure=config.insecure) as image, \
            start_layers(image, capture=capture_for,
                         cache=capture_cache() if config.use_cache else None,
                         progress=lambda done, total: progress(done, total, "reading layers")) as read:
        # An uncompressed local layer is still hashing here (layers.start_layers): the analysis
        # runs beside the hash, and nothing leaves before ``read.verify()`` says the bytes
        # analysed are the image's. A failure of the analysis on bytes that turn out tampered
        # is reported as the digest mismatch it is.
        try:
            advice = _analyse(config, image, read.trees)
        except Exception:
            read.verify()
            raise
        read.verify()
    return advice


def _analyse(config: AdviseConfig, image: Image, trees: list[LayerTree]) -> Advice:
    steps = config.steps
    steps(0, 1, "analysing layers")
    layers = analyze_layers(image, trees)  # the one merge of the layer trees
    ctx = Context(facts_from_image(image), tuple(trees), layers.tree, layers)
    return build_advice(ctx, AdviseOptions(
        disabled_rules=config.disabled_rules, gate=config.gate,
        progress=lambda done, total, rule: steps(done + 1, total + 1, f"analysing: {rule}" if rule else "analysing"),
    ))
