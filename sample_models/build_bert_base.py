"""Build a bert-base-uncased-shaped classifier for size and latency measurements only.

``BertConfig()`` defaults (12 layers, hidden 768, 30,522 WordPiece vocab), random weights from a
fixed seed, a 2-label head, and the uncased WordPiece tokenizer of all-MiniLM-L6-v2 (the same
30,522-token vocabulary as bert-base-uncased). About 440 MB of safetensors. Its predictions are
noise: never quote its accuracy. Cached under
``${ADVISOR_CACHE:-~/.cache/advisor}/models/bert-base-random-<key>``.

    python sample_models/build_bert_base.py

The last stdout line is JSON: ``{"model_dir", "built", "size_bytes"}``.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import _common

SEED = 0
LABELS = ("NEGATIVE", "POSITIVE")

CARD = """# bert-base-random

A `bert-base-uncased`-shaped `BertForSequenceClassification` (`BertConfig()` defaults: 12 layers,
hidden 768, 12 heads, 30,522-token uncased WordPiece vocabulary), **randomly initialised** with
seed {seed}, 2 labels. Built by `sample_models/build_bert_base.py` (recipe key `{key}`).

**Accuracy is meaningless: the weights are random.** Use it for file size, memory and latency
only. The tokenizer is all-MiniLM-L6-v2's, which has the same vocabulary as bert-base-uncased.
"""


def build(dest: Path, key: str) -> None:
    import torch
    from transformers import BertConfig, BertForSequenceClassification

    torch.manual_seed(SEED)
    config = BertConfig(num_labels=2, id2label=dict(enumerate(LABELS)),
                        label2id={label: i for i, label in enumerate(LABELS)})
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(dest)
    src = _common.minilm_dir()
    for name in ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json"):
        shutil.copyfile(src / name, dest / name)
    (dest / "README.md").write_text(CARD.format(seed=SEED, key=key), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    key = _common.recipe_key(Path(__file__).resolve(), {"seed": SEED})
    dest = _common.cache_root() / "models" / f"bert-base-random-{key}"
    built = _common.build_cached(dest, lambda tmp: build(tmp, key))
    size = (dest / "model.safetensors").stat().st_size
    _common.emit({"model_dir": str(dest), "built": built, "size_bytes": size})


if __name__ == "__main__":
    main()
