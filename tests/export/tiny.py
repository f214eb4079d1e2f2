"""Tiny random models (hidden 32, 2 layers) in real Hugging Face folders, for every exported type.

``make_tiny_model(dest, "xlm-roberta", "text-classification")`` writes config.json (from
transformers' own config class, shrunk), model.safetensors and a WordPiece tokenizer.json that
covers the words of ``WORDS``; ``tiny_model_dir(arch, task)`` caches it under
``$ADVISOR_CACHE/tiny-models/KEY`` (KEY hashes what it is built from). Other engineers may use
these to get a real exported model cheaply (export it with ``advisor.export.export_model``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

SPECIALS = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "<s>", "</s>", "<pad>"]
WORDS = ["good", "great", "fine", "nice", "love", "happy", "bad", "awful", "poor", "hate", "boring",
         "sad", "movie", "film", "plot", "the", "a", "was", "is", "it", "this", "and", "not", "very",
         "really", "story", "actor", "scene"]
VOCAB = SPECIALS + WORDS + [f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz"] + list("abcdefghijklmnopqrstuvwxyz")
LABELS = ["NEGATIVE", "POSITIVE"]
TOKEN_LABELS = ["O", "B-X", "I-X"]

# Shrunk for every config class that has the key (names differ between families).
SMALL: dict[str, Any] = {
    "hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 64,
    "dim": 32, "n_layers": 2, "n_heads": 2, "hidden_dim": 64, "emb_dim": 32, "embedding_size": 16,
    "max_position_embeddings": 256, "d_model": 32, "d_inner": 64, "n_head": 2, "d_head": 16,
    "intra_bottleneck_size": 16, "input_embedding_size": 16, "output_embedding_size": 16,
    "num_key_value_heads": 2, "global_attn_every_n_layers": 1, "local_attention": 16,
    "attention_window": 16, "block_size": 4, "num_random_blocks": 2, "num_landmarks": 4,
    "segment_means_seq_len": 64, "pooler_hidden_size": 32, "embedding_dim": 32,
    "block_sizes": [1, 1], "num_decoder_layers": 1, "conv_kernel_size": 3,
    "initializer_range": 0.2,  # std 0.02 makes logits ~1e-3: parity would prove little
}
# Per type, what SMALL gets wrong (tiny dims the architecture needs to hold together).
OVERRIDES: dict[str, dict[str, Any]] = {
    "mobilebert": {"embedding_size": 32, "true_hidden_size": 16, "intra_bottleneck_size": 16,
                   "num_feedforward_networks": 1},
    "squeezebert": {"embedding_size": 32, "q_groups": 2, "k_groups": 2, "v_groups": 2,
                    "post_attention_groups": 2, "intermediate_groups": 2, "output_groups": 2},
    "funnel": {"block_sizes": [1, 1], "block_repeats": [1, 1], "n_head": 2, "d_head": 16},
    "mra": {"max_position_embeddings": 258, "block_per_row": 2, "approx_mode": "full"},
    "yoso": {"max_position_embeddings": 258},
    "nystromformer": {"segment_means_seq_len": 64, "num_landmarks": 4},
    "modernbert": {"global_attn_every_n_layers": 1, "local_attention": 16},
    "longformer": {"attention_window": [16, 16]},
}
AUTO = {
    "text-classification": "AutoModelForSequenceClassification",
    "token-classification": "AutoModelForTokenClassification",
    "feature-extraction": "AutoModel",
}


def tiny_config(arch: str, task: str, dims: dict[str, Any] | None = None) -> Any:
    """``dims``: overrides on top of the tiny sizes (a bigger model whose weights, not its
    graph, dominate the file: the graph race then compares candidates of like size)."""
    from transformers import AutoConfig

    config = AutoConfig.for_model(arch)
    present = config.to_dict()
    for key, value in {**SMALL, **OVERRIDES.get(arch, {}), **(dims or {})}.items():
        if key in present:
            setattr(config, key, value)
    config.vocab_size = len(VOCAB)
    if isinstance(getattr(config, "layer_types", None), list):  # one entry per layer
        config.layer_types = config.layer_types[: config.num_hidden_layers]
    for key in ("pad_token_id", "bos_token_id", "eos_token_id", "sep_token_id", "cls_token_id",
                "unk_token_id", "mask_token_id"):
        if isinstance(getattr(config, key, None), int) and getattr(config, key) >= len(VOCAB):
            setattr(config, key, {"pad_token_id": 0, "bos_token_id": 5, "eos_token_id": 6}.get(key, 1))
    if getattr(config, "pad_token_id", 0) is None:
        config.pad_token_id = 0
    if task != "feature-extraction":
        names = LABELS if task == "text-classification" else TOKEN_LABELS
        config.id2label = dict(enumerate(names))
        config.label2id = {v: k for k, v in config.id2label.items()}
    return config


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
                    seed: int = 0, dims: dict[str, Any] | None = None) -> Path:
    import torch
    import transformers

    config = tiny_config(arch, task, dims)
    config.architectures = config.architectures or []  # funnel's AutoModel iterates it
    torch.manual_seed(seed)
    model = getattr(transformers, AUTO[task]).from_config(config)
    dest.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(dest)
    write_tokenizer(dest)
    return dest


def cache_root() -> Path:
    return Path(os.environ.get("ADVISOR_CACHE") or Path.home() / ".cache" / "advisor") / "tiny-models"


def tiny_key(arch: str, task: str, seed: int = 0, dims: dict[str, Any] | None = None) -> str:
    """What the folder is built from: this file, the libraries, the type, task, seed, dims."""
    import torch
    import transformers

    h = hashlib.sha256(Path(__file__).read_bytes())
    h.update(json.dumps([arch, task, seed, dims or {}, torch.__version__, transformers.__version__],
                        sort_keys=True).encode())
    return f"{arch}-{task}-{h.hexdigest()[:12]}"


def tiny_model_dir(arch: str, task: str = "text-classification", seed: int = 0,
                   dims: dict[str, Any] | None = None) -> Path:
    """The cached tiny model folder (built once; treat it as read-only)."""
    dest = cache_root() / tiny_key(arch, task, seed, dims)
    if (dest / "config.json").is_file():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        make_tiny_model(tmp / "m", arch, task, seed, dims)
        try:
            (tmp / "m").rename(dest)
        except OSError:  # another process built it first
            if not (dest / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
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
