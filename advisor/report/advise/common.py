"""What every format of the advise report says the same way: a finding's largest paths,
the numbering of recommendations, a layer's command cut to fit."""

from __future__ import annotations

from advisor.advise.advice import Advice, Recommendation
from advisor.advise.facts.dockerfile import normalize
from advisor.advise.rules.base import Finding, shorten

EVIDENCE = 3  # paths named per finding in text, markdown and HTML (JSON lists them all)
LAYER_FILES = 3  # largest files named per layer
TOP_FILES = 10  # largest files of the whole image


def evidence(f: Finding, n: int = EVIDENCE) -> tuple[list[tuple[str, int]], int]:
    """The finding's ``n`` largest paths (with their bytes, -1 when unknown) and how many more."""
    sizes: dict[str, int] = {}
    for key, size in f.frees.items():
        path = key.split(":", 1)[1] if key.startswith("layer") and ":" in key else key  # hidden: layerN:path
        sizes[path] = sizes.get(path, 0) + size
    if not sizes:
        sizes = dict.fromkeys(f.paths, -1)
    ranked = sorted(sizes.items(), key=lambda ps: (-ps[1], ps[0]))
    return ranked[:n], max(0, len(ranked) - n)


def numbers(a: Advice) -> dict[str, int]:
    """Recommendation id -> its number in the report (1-based, in the listed order)."""
    return {r.id: i for i, r in enumerate(a.recommendations, 1)}


def alternative_note(a: Advice, r: Recommendation, saves: str) -> str:
    """``an alternative to #1 (onnx-runtime): saves 2.3 GB on its own``, rather than
    ``saves 0 B (alternative ...)``: its bytes are already counted in the other one."""
    other = numbers(a).get(r.alternative_to)
    where = f"#{other} ({r.alternative_to})" if other else r.alternative_to
    return f"an alternative to {where}: saves {saves} on its own, nothing on top of it"


def command(created_by: str, limit: int) -> str:
    """A history line as the Dockerfile line it came from, cut at a word to ``limit``."""
    if not created_by:
        return "(no history)"
    instruction, args = normalize(created_by)
    return shorten(f"{instruction} {args}".strip(), limit)
