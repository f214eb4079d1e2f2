"""The fix pipeline: ``run(FixConfig) -> FixResult`` applies advise's recommendations to an
image itself (each layer rewritten without the removed paths), proves the result still
works in the sandbox, and writes it to any writable ImageRef.

``plan`` (which paths each recommendation removes, per layer), ``rewrite`` (one layer
without them, every other member's bytes kept), ``image`` (the fixed image written),
``proof`` (the checks and the bisection), ``sandbox`` (the little the proof needs to run
an image), ``pipeline`` (the steps in order).
"""

from advisor.fix.model import FixConfig, FixOutcome, FixResult, ProofReport
from advisor.fix.pipeline import run

__all__ = ["FixConfig", "FixOutcome", "FixResult", "ProofReport", "run"]
