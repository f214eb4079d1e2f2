"""The advise pipeline: ``run(AdviseConfig) -> Advice``.

Facts about an image (``facts/``), rules that turn them into findings and recommendations
(``rules/``), and the fix files they imply (``fixes/``); ``pipeline.run`` chains them.
"""

from __future__ import annotations

from advisor.advise.advice import Advice
from advisor.advise.pipeline import AdviseConfig, check, run

__all__ = ["Advice", "AdviseConfig", "check", "run"]
