"""What a graph takes, read from the model itself instead of declared per architecture.

The inputs are the text inputs the model's ``forward`` accepts, narrowed to those its tokenizer
produces (``model_input_names``): RoBERTa's forward accepts ``token_type_ids`` but its
tokenizer never emits them (one type embedding), DistilBERT's and ModernBERT's forward takes
none, FNet's takes no ``attention_mask`` (it mixes tokens with a Fourier transform, padding
included, as transformers does). The output is the task's.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from advisor.errors import ExportError
from advisor.export.specs import GraphSpec, TaskSpec

TEXT_INPUTS = ("input_ids", "attention_mask", "token_type_ids")


def forward_inputs(model: Any) -> tuple[str, ...]:
    """The text inputs ``model.forward`` accepts, in the canonical order."""
    params = inspect.signature(model.forward).parameters
    return tuple(name for name in TEXT_INPUTS if name in params)


def tokenizer_inputs(model_dir: Path, model_type: str) -> tuple[tuple[str, ...], str] | None:
    """The tokenizer's ``model_input_names`` and where they came from, or None if unknown:
    the folder's tokenizer_config.json, else the class attribute of the tokenizer class it
    names, else of the one transformers maps the model type to (no tokenizer is built)."""
    config = _read_json(model_dir / "tokenizer_config.json")
    names = config.get("model_input_names")
    if isinstance(names, list) and names and all(isinstance(n, str) for n in names):
        return tuple(names), "tokenizer_config.json"
    try:
        from transformers.models.auto.tokenization_auto import (
            TOKENIZER_MAPPING_NAMES,
            tokenizer_class_from_name,
        )
    except ImportError:
        return None
    mapped = TOKENIZER_MAPPING_NAMES.get(model_type)
    candidates = [config.get("tokenizer_class"),
                  *([mapped] if isinstance(mapped, str) else list(mapped or ()))]
    for name in [str(c) for c in candidates if c]:
        try:
            cls = tokenizer_class_from_name(name)
        except Exception:  # an unknown or unimportable class only means "ask the next one"
            continue
        names = getattr(cls, "model_input_names", None)
        if names:
            return tuple(str(n) for n in names), f"{name}.model_input_names"
    return None


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def derive_graph(model: Any, model_dir: Path, model_type: str, task: TaskSpec) -> GraphSpec:
    """The graph's inputs (forward signature x tokenizer) and the task's output."""
    accepted = forward_inputs(model)
    produced = tokenizer_inputs(model_dir, model_type)
    if produced is None:
        inputs: Sequence[str] = accepted
        origin = "forward signature"
    else:
        inputs = [n for n in accepted if n in produced[0]]
        origin = f"forward signature x {produced[1]}"
    if "input_ids" not in inputs:
        raise ExportError(f"the model's forward takes no input_ids (it takes {list(accepted)})",
                          hint="advisor exports text encoders that read token ids")
    return GraphSpec(tuple(inputs), task.output, tuple(task.output_axes), origin)
