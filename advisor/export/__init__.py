"""Export a transformer classifier to validated, optimised, int8 ONNX artifacts.

Public API (the CLI calls these; nothing heavy is imported until they run):
``export_model(ExportConfig) -> ExportResult``, ``find_models_in_image(image)`` and
``materialize_model_from_image(image, path, dest)``.
"""

from __future__ import annotations

from advisor.export.config import DEFAULT_SHAPES, ExportConfig, ExportResult, ProgressFn
from advisor.export.locate import ModelLocation, find_models_in_image, materialize_model_from_image
from advisor.export.pipeline import export_model
from advisor.export.specs import ARCHITECTURES, TASKS

__all__ = [
    "ARCHITECTURES",
    "DEFAULT_SHAPES",
    "TASKS",
    "ExportConfig",
    "ExportResult",
    "ModelLocation",
    "ProgressFn",
    "export_model",
    "find_models_in_image",
    "materialize_model_from_image",
]
