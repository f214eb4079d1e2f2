"""The slim build pipeline: ``build(BuildConfig) -> BuildResult``.

Probe the base image, fetch the wheels for it, assemble the deps, model and app layers and
write the image (``image.py``); ``advisor.sandbox.runner.run_image`` starts any built image
without a Docker engine.
"""

from __future__ import annotations

from advisor.slim.image import DEFAULT_BASE, BuildConfig, BuildResult
from advisor.slim.image import build_serving_image as build

__all__ = ["DEFAULT_BASE", "BuildConfig", "BuildResult", "build"]
