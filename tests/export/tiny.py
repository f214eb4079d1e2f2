"""Tiny random models (hidden 32, 2 layers) in real Hugging Face folders, built in seconds.

``make_tiny_model(dest, "bert", "text-classification")`` writes config.json, model.safetensors
and a WordPiece tokenizer.json that covers the words of ``WORDS``; other engineers may use it to
get a real exported model cheaply (export it with ``advisor.export.export_model``).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>", "<pad>"]
WORDS = ["good", "great", "fine", "nice", "love", "happy", "bad", "awful", "poor", "hate", "boring",
         "sad", "movie", "film", "plot", "the", "a", "was", "is", "it", "this", "and", "not", "very",
         "really", "story", "actor", "scene"]
VOCAB = SPECIALS + WORDS + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz")
LABELS = ["NEGATIVE", "POSITIVE"]

_CONFIGS = {
    "bert": ("BertConfig", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                            "intermediate_size": 64, "max_position_embeddings": 256}),
    "distilbert": ("DistilBertConfig", {"dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64,
                                        "max_position_embeddings": 256}),
    "roberta": ("RobertaConfig", {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2,
                                  "intermediate_size": 64, "max_position_embeddings": 260,
                                  "pad_token_id": 0, "bos_token_id": 5, "eos_token_id": 6}),
    "albert": ("AlbertConfig", {"hidden_size": 32, "embedding_size": 16, "num_hidden_layers": 2,
                                "num_attention_heads": 2, "intermediate_size": 64,
                                "max_position_embeddings": 256}),
    "electra": ("ElectraConfig", {"hidden_size": 32, "embedding_size": 16, "num_hidden_layers": 2,
                                  "num_attention_heads": 2, "intermediate_size": 64,
                                  "max_position_embeddings": 256}),
}
_AUTO = {
    "text-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "feature-extraction": "AutoModel",
}
TINY_ARCHS = tuple(sorted(_CONFIGS))


def write_tokenizer(dest: Path) -> None:
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors

    vocab = {tok: i for i, tok in enumerate(VOCAB)}
    tok = Tokenizer(models.WordPiece(vocab, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", vocab["[CLS]"]), ("[SEP]", vocab["[SEP]"])])
    tok.save(str(dest / "tokenizer.json"))


def make_tiny_model(dest: Path, arch: str = "bert", task: str = "text-classification",
                    seed: int = 0) -> Path:
    import torch
    import transformers

    cls_name, kwargs = _CONFIGS[arch]
    config = getattr(transformers, cls_name)(vocab_size=len(VOCAB), **kwargs)
    if task != "feature-extraction":
        config.id2label = dict(enumerate(LABELS if task == "text-classification" else ["O", "B-X", "I-X"]))
        config.label2id = {v: k for k, v in config.id2label.items()}
    torch.manual_seed(seed)
    model = getattr(transformers, _AUTO[task]).from_config(config)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    write_tokenizer(dest)
    return dest


def write_csv(path: Path, rows: list[tuple[str, int | str]]) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


SENTENCES = [("a good movie", 1), ("bad plot", 0), ("the actor was great", 1), ("awful film", 0),
             ("i love this story", 1), ("boring and sad", 0), ("really nice scene", 1),
             ("not good", 0)]
