"""``serving.json``, the export's contract with the server (docs/DESIGN.md, "Serving API"),
read in one place: the server (``serve.model``), the slim build (``slim.image``) and the bench
(``bench.locate``) all parse it with ``read_serving``. Standard library only: this module
ships inside the slim image with the rest of ``advisor/serve``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCHEMA_VERSION = 1
DEFAULT_INPUTS = ("input_ids", "attention_mask")


class ServingFileError(ValueError):
    """``serving.json`` is missing, not JSON, or not schema 1; the message says which."""


@dataclass(frozen=True)
class ServingFile:
    task: str
    model_name: str = ""
    architecture: str = ""
    max_length: int = 512
    inputs: tuple[str, ...] = DEFAULT_INPUTS
    outputs: tuple[str, ...] = ("logits",)
    onnx_file: str = "model.onnx"
    onnx_sha256: str = ""
    quantization: str = "none"
    optimization: str = ""
    advisor_version: str = ""
    pooling: Mapping[str, Any] | None = None  # feature-extraction: how the server pools


def parse_serving(data: object) -> ServingFile:
    """The typed content of a parsed ``serving.json``; ``ServingFileError`` if it is not one."""
    if not isinstance(data, dict) or data.get("schema_version") != SCHEMA_VERSION:
        raise ServingFileError(f"serving.json: expected an object with schema_version {SCHEMA_VERSION}")
    try:
        return ServingFile(
            task=str(data.get("task", "")),
            model_name=str(data.get("model_name", "")),
            architecture=str(data.get("architecture", "")),
            max_length=int(data.get("max_length", 512)),
            inputs=tuple(str(x) for x in data.get("inputs", DEFAULT_INPUTS)),
            outputs=tuple(str(x) for x in data.get("outputs", ["logits"])),
            onnx_file=str(data.get("onnx_file", "model.onnx")),
            onnx_sha256=str(data.get("onnx_sha256", "")),
            quantization=str(data.get("quantization", "none")),
            optimization=str(data.get("optimization", "")),
            advisor_version=str(data.get("advisor_version", "")),
            pooling=data["pooling"] if isinstance(data.get("pooling"), dict) else None,
        )
    except (TypeError, ValueError) as e:
        raise ServingFileError(f"serving.json: {e}") from e


def read_serving(folder: str | Path) -> ServingFile:
    """``FOLDER/serving.json``, typed."""
    path = Path(folder) / "serving.json"
    try:
        return parse_serving(json.loads(path.read_text(encoding="utf-8")))
    except FileNotFoundError as e:
        raise ServingFileError(f"missing serving.json in {folder}") from e
    except OSError as e:
        raise ServingFileError(f"cannot read {path}: {e}") from e
    except json.JSONDecodeError as e:
        raise ServingFileError(f"serving.json is not valid JSON: {e}") from e
