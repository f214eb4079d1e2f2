"""Build a bert-base-uncased-shaped (or xlm-roberta-base-, deberta-v3-base-shaped) classifier
for size and latency measurements only.

``BertConfig()`` defaults (12 layers, hidden 768, 30,522 WordPiece vocab), random weights from a
fixed seed, a 2-label head, and the uncased WordPiece tokenizer of all-MiniLM-L6-v2 (the same
30,522-token vocabulary as bert-base-uncased). About 440 MB of safetensors. Its predictions are
noise: never quote its accuracy. Cached under
``${ADVISOR_CACHE:-~/.cache/advisor}/models/bert-base-random-<key>``.

    python sample_models/build_bert_base.py [--shape bert-base|xlm-roberta-base|deberta-v3-base]

``--shape xlm-roberta-base``: ``XLMRobertaConfig`` with xlm-roberta-base's dimensions (250,002
tokens, 514 positions, one token type); ``deberta-v3-base``: ``DebertaV2Config`` with
deberta-v3-base's (hidden 768, 12 layers, 128,100 tokens, relative attention with 256
position buckets, no absolute positions). Both keep the MiniLM tokenizer (its ids are valid in either vocabulary), so the
shapes, not the tokenizers, are what is measured.

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


SHAPES = {
    "bert-base": ("BertConfig", {}),
    "xlm-roberta-base": ("XLMRobertaConfig", {
        "vocab_size": 250002, "max_position_embeddings": 514, "type_vocab_size": 1,
        "pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "layer_norm_eps": 1e-5}),
    # DebertaV2Config()'s own defaults are deberta-v2-xlarge's (1536 x 24 layers: 3.5 GB)
    "deberta-v3-base": ("DebertaV2Config", {
        "hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
        "intermediate_size": 3072, "vocab_size": 128100, "max_position_embeddings": 512,
        "relative_attention": True,
        "position_buckets": 256, "norm_rel_ebd": "layer_norm", "share_att_key": True,
        "pos_att_type": ["p2c", "c2p"], "position_biased_input": False, "type_vocab_size": 0,
        "max_relative_positions": -1, "layer_norm_eps": 1e-7, "pad_token_id": 0}),
}


def build(dest: Path, key: str, shape: str = "bert-base") -> None:
    import torch
    import transformers

    torch.manual_seed(SEED)
    cls_name, dims = SHAPES[shape]
    config = getattr(transformers, cls_name)(
        num_labels=2, id2label=dict(enumerate(LABELS)),
        label2id={label: i for i, label in enumerate(LABELS)}, **dims)
    model = transformers.AutoModelForSequenceClassification.from_config(config).eval()
    model.save_pretrained(dest)
    src = _common.minilm_dir()
    # bert-base shares MiniLM's tokenizer class; the other shapes keep their own (which
    # decides the graph's inputs), only tokenizer.json is MiniLM's
    names = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
    for name in names if shape == "bert-base" else ("tokenizer.json",):
        shutil.copyfile(src / name, dest / name)
    (dest / "README.md").write_text(CARD.format(seed=SEED, key=key).replace(
        "bert-base-random", f"{shape}-random"), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--shape", choices=sorted(SHAPES), default="bert-base")
    args = parser.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    key = _common.recipe_key(Path(__file__).resolve(), {"seed": SEED, "shape": args.shape})
    dest = _common.cache_root() / "models" / f"{args.shape}-random-{key}"
    built = _common.build_cached(dest, lambda tmp: build(tmp, key, args.shape))
    size = (dest / "model.safetensors").stat().st_size
    _common.emit({"model_dir": str(dest), "built": built, "size_bytes": size})


if __name__ == "__main__":
    main()
