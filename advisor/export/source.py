"""A model folder on disk: what it claims to be (no torch) and loading it (torch, lazily)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor.errors import BadInputError, ExportError, MissingDependencyError
from advisor.export.specs import ArchSpec, TaskSpec, arch_spec, infer_task, task_spec

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")


@dataclass(frozen=True)
class ModelSource:
    path: Path
    arch: ArchSpec
    task: TaskSpec
    config: Mapping[str, Any]

    @property
    def labels(self) -> list[str]:
        if self.task.name == "feature-extraction":
            return []
        id2label = self.config.get("id2label") or {}
        return [str(id2label[k]) for k in sorted(id2label, key=int)]

    @property
    def max_positions(self) -> int:
        return int(self.config.get("max_position_embeddings", 512))


def read_config(path: Path) -> dict[str, Any]:
    cfg_path = path / "config.json"
    if not cfg_path.is_file():
        raise BadInputError(f"no config.json in {path}",
                            hint="point at a Hugging Face model folder (config.json, weights, tokenizer)")
    try:
        cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BadInputError(f"cannot read {cfg_path}: {e}", hint="the model folder is corrupt") from e
    if not isinstance(cfg, dict):
        raise BadInputError(f"{cfg_path} is not a JSON object", hint="the model folder is corrupt")
    return cfg


def inspect_model(path: Path, task: str | None = None) -> ModelSource:
    """Check a folder is an exportable model, without importing torch."""
    cfg = read_config(path)
    arch = arch_spec(str(cfg.get("model_type", "<missing>")))
    spec = task_spec(task) if task else infer_task(_architectures(cfg))
    if not any((path / name).is_file() for name in WEIGHT_FILES):
        raise BadInputError(f"no weights in {path}",
                            hint=f"expected one of {', '.join(WEIGHT_FILES)}")
    if not (path / "tokenizer.json").is_file() and not (path / "vocab.txt").is_file():
        raise BadInputError(f"no tokenizer in {path}",
                            hint="the folder needs tokenizer.json (or vocab.txt)")
    return ModelSource(path, arch, spec, cfg)


def _architectures(cfg: Mapping[str, Any]) -> Sequence[str]:
    archs = cfg.get("architectures") or []
    return [str(a) for a in archs] if isinstance(archs, list) else []


def load_torch_model(source: ModelSource) -> Any:
    """The model in eval mode with eager attention (SDPA blocks onnxruntime's BERT fusion)."""
    try:
        import transformers
    except ImportError as e:
        raise MissingDependencyError("transformers", "export") from e
    transformers.utils.logging.disable_progress_bar()  # library code does not draw bars
    auto = getattr(transformers, source.task.auto_class)
    try:
        model = auto.from_pretrained(source.path, attn_implementation="eager")
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ExportError(f"cannot load the model in {source.path}: {first}",
                          hint="check the weights file is complete and matches config.json") from e
    except Exception as e:  # safetensors raises its own SafetensorError for torn files
        if type(e).__name__ != "SafetensorError":
            raise
        raise BadInputError(f"cannot load the model in {source.path}: corrupt weights ({e})",
                          hint="the safetensors file is truncated or corrupt; re-save the model") from e
    model.eval()
    return model
