"""What to do about the findings: one recommendation per kind of fix, in claiming order.

Bytes two fixes would both remove are credited to the first one in ``RECOMMENDATIONS``
order, so the total never counts a byte twice.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class RecommendationDef:
    id: str
    title: str
    fix: str
    alternative_to: str = ""
    # Applied in the step that creates the files (same RUN): files the base image ships stay,
    # so they do not count towards what the fix saves on its own.
    same_step: bool = False


RECOMMENDATIONS: tuple[RecommendationDef, ...] = (
    RecommendationDef(
        "remove-secrets", "Take secrets out of the image and rotate them",
        "revoke and rotate every credential found; pass secrets at build time with "
        "RUN --mount=type=secret and at run time through the orchestrator, never COPY or ENV them "
        "(deleting them in a later layer does not remove them from the image)",
    ),
    RecommendationDef(
        "onnx-runtime", "Export the model to ONNX and serve it with onnxruntime (no torch, no transformers)",
        "advisor export IMAGE --output oci:slim:latest --quantize int8  (or: pip install --no-cache-dir "
        "onnxruntime numpy && pip install --no-cache-dir --no-deps tokenizers; drop torch and transformers)",
    ),
    RecommendationDef(
        "cpu-torch", "Install the CPU-only torch wheel",
        "pip install --no-cache-dir --index-url https://download.pytorch.org/whl/cpu torch==VERSION "
        "before the other requirements (no nvidia-*, no triton)",
        alternative_to="onnx-runtime",
    ),
    RecommendationDef(
        "remove-dev-tools", "Keep dev, test and notebook tools out of the production image",
        "split requirements.txt (runtime) from requirements-dev.txt and install only the runtime one "
        "in the final stage",
    ),
    RecommendationDef(
        "drop-unused-packages", "Install only what the served entrypoint imports",
        "requirements.txt from --write-fixes lists the distributions the entry script imports; "
        "training, notebook and analysis packages go to their own image or requirements file",
    ),
    RecommendationDef(
        "dedupe-models", "Ship each model once, in the one format the server loads",
        "copy only the serving format (e.g. model.safetensors or model.onnx); do not bake the Hugging "
        "Face hub cache into the image next to a copied model",
    ),
    RecommendationDef(
        "clean-caches", "Do not leave package-manager caches in layers",
        "pip install --no-cache-dir (or ENV PIP_NO_CACHE_DIR=1); apt-get install --no-install-recommends "
        "... && rm -rf /var/lib/apt/lists/* in the same RUN; apt-get clean",
    ),
    RecommendationDef(
        "slim-base", "Use a slim base and a multi-stage build",
        "FROM python:X.Y-slim for the final stage; compile or build wheels in a builder stage and "
        "COPY --from=build only the installed environment",
    ),
    RecommendationDef(
        "dockerignore", "Keep repository junk out of the build context",
        "add a .dockerignore (.git, notebooks, data, tests, caches) and COPY only what the app needs",
    ),
    RecommendationDef(
        "squash-layers", "Delete files in the same step that creates them",
        "a file removed by a later RUN still ships in the earlier layer: remove it in the same RUN, or "
        "build in a builder stage",
    ),
    RecommendationDef(
        "trim-python", "Trim what site-packages does not need at run time",
        "delete tests/, *.a, headers and __pycache__ in the install step (same RUN); "
        "ENV PYTHONDONTWRITEBYTECODE=1; pip install --no-compile",
        same_step=True,
    ),
    RecommendationDef(
        "strip-binaries", "Strip symbols from shared objects",
        "find /opt/venv -name '*.so*' -exec strip --strip-unneeded {} + in the build stage",
        same_step=True,
    ),
)


def recommendation_def(rec_id: str) -> RecommendationDef:
    return next(r for r in RECOMMENDATIONS if r.id == rec_id)
