"""The export pipeline: a transformer model to validated, optimised, int8 ONNX artifacts.

Public API (nothing heavy is imported until they run): ``run(ExportJob) -> ExportResult``
(a model folder, or an image holding one, to artifacts; what the CLI calls),
``export_model(ExportConfig) -> ExportResult`` (a model folder to artifacts),
``find_models_in_image(image)`` and ``materialize_model_from_image(image, path, dest)``.

Only the config types and the architecture specs load with the package: advise imports
``advisor.export.specs`` (is the model in the image exportable?) and must not pay for the
pipeline's modules. The rest loads on first use (PEP 562).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from advisor.export.config import DEFAULT_SHAPES, ExportConfig, ExportResult, ProgressFn
from advisor.export.specs import ARCHITECTURES, TASKS

if TYPE_CHECKING:
    from advisor.export.job import ExportJob, check, run
    from advisor.export.locate import (
        ModelLocation,
        find_models_in_image,
        materialize_model_from_image,
    )
    from advisor.export.pipeline import export_model

_LAZY = {
    "ExportJob": "advisor.export.job", "check": "advisor.export.job", "run": "advisor.export.job",
    "ModelLocation": "advisor.export.locate", "find_models_in_image": "advisor.export.locate",
    "materialize_model_from_image": "advisor.export.locate", "export_model": "advisor.export.pipeline",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'advisor.export' has no attribute {name!r}")


__all__ = [
    "ARCHITECTURES",
    "DEFAULT_SHAPES",
    "TASKS",
    "ExportConfig",
    "ExportJob",
    "ExportResult",
    "ModelLocation",
    "ProgressFn",
    "check",
    "export_model",
    "find_models_in_image",
    "materialize_model_from_image",
    "run",
]
