"""A model folder on disk: what it claims to be (no torch) and loading it (torch, lazily).

The folder is a Hugging Face model folder, or a sentence-transformers folder (``modules.json``)
whose transformer is exported as feature-extraction with the folder's own pooling.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor.errors import BadInputError, ExportError, MissingDependencyError
from advisor.export.sentence import Pooling, is_sentence_transformers, read_sentence_model
from advisor.export.specs import ARCHITECTURES, ArchSpec, TaskSpec, judge, task_spec

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json",
                "pytorch_model.bin.index.json")
# A tokenizer in any form transformers can turn into a fast one (tokenizer.json).
TOKENIZER_FILES = ("tokenizer.json", "vocab.txt", "spiece.model", "sentencepiece.bpe.model",
                   "vocab.json", "tokenizer.model", "source.spm")


@dataclass(frozen=True)
class ModelSource:
    path: Path  # the transformer's folder (config.json, weights, tokenizer)
    arch: ArchSpec
    task: TaskSpec
    config: Mapping[str, Any]
    pooling: Pooling | None = None  # feature-extraction: how the server pools
    max_seq_length: int | None = None  # a sentence-transformers folder's own limit

    @property
    def labels(self) -> list[str]:
        if self.task.name == "feature-extraction":
            return []
        id2label = self.config.get("id2label") or {}
        return [str(id2label[k]) for k in sorted(id2label, key=int)]

    @property
    def max_positions(self) -> int:
        limits = [int(self.config.get("max_position_embeddings", 512))]
        if self.max_seq_length:
            limits.append(self.max_seq_length)
        return min(limits)

    @property
    def vocab(self) -> int:
        return int(self.config.get("vocab_size", 1000))


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
    sentence = read_sentence_model(path) if is_sentence_transformers(path) else None
    folder = sentence.transformer_dir if sentence else path
    cfg = read_config(folder)
    if sentence is not None and task not in (None, "feature-extraction"):
        raise ExportError(f"a sentence-transformers model is exported as feature-extraction, not {task}",
                          hint="drop --task, or point at a classifier folder")
    verdict = judge(cfg, "feature-extraction" if sentence else task)
    if not verdict.ok:
        raise verdict.error()
    assert verdict.task is not None
    spec = task_spec(verdict.task)
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise BadInputError(f"no weights in {folder}",
                            hint=f"expected one of {', '.join(WEIGHT_FILES)}")
    if not any((folder / name).is_file() for name in TOKENIZER_FILES):
        raise BadInputError(f"no tokenizer in {folder}",
                            hint="the folder needs tokenizer.json (or the files it is built from)")
    pooling = (sentence.pooling if sentence else Pooling()) if spec.name == "feature-extraction" else None
    return ModelSource(folder, ARCHITECTURES[verdict.model_type], spec, cfg, pooling,
                       sentence.max_seq_length if sentence else None)


def load_torch_model(source: ModelSource) -> Any:
    """The model in eval mode with eager attention (SDPA blocks onnxruntime's BERT fusion)."""
    try:
        import transformers
    except ImportError as e:
        raise MissingDependencyError("transformers", "export") from e
    transformers.utils.logging.disable_progress_bar()  # library code does not draw bars
    auto = getattr(transformers, source.task.auto_class)
    try:
        model = auto.from_pretrained(source.path, attn_implementation="eager",
                                     **dict(source.arch.overrides))
    except (OSError, ValueError, RuntimeError, KeyError, TypeError) as e:
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
