"""The tokenizer that ships with the artifacts, and encoding text into ONNX feeds.

The serving image loads ``tokenizer.json`` with ``tokenizers.Tokenizer.from_file`` alone, so
truncation (``max_length``) and padding (to the longest in the batch) are configured inside
the file. Validation encodes with this same file, so what is checked is what is served.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from advisor.errors import BadInputError, MissingDependencyError


def load_serving_tokenizer(model_dir: Path, max_length: int) -> Any:
    """A ``tokenizers.Tokenizer`` with truncation and padding set for serving."""
    try:
        from tokenizers import Tokenizer
    except ImportError as e:
        raise MissingDependencyError("tokenizers", "export") from e
    path = model_dir / "tokenizer.json"
    try:
        tok = Tokenizer.from_file(str(path)) if path.is_file() else _from_slow_files(model_dir)
    except Exception as e:  # tokenizers raises plain Exception for malformed files
        raise BadInputError(f"cannot load the tokenizer of {model_dir}: {e}",
                            hint="the folder needs a valid tokenizer.json") from e
    tok.enable_truncation(max_length=max_length)
    pad_token = _pad_token(tok)
    tok.enable_padding(pad_id=tok.token_to_id(pad_token) or 0, pad_token=pad_token)
    return tok


def _from_slow_files(model_dir: Path) -> Any:
    from transformers import AutoTokenizer

    fast = AutoTokenizer.from_pretrained(model_dir, use_fast=True)
    return fast.backend_tokenizer


def _pad_token(tok: Any) -> str:
    padding = tok.padding
    if padding and padding.get("pad_token"):
        return str(padding["pad_token"])
    for candidate in ("[PAD]", "<pad>"):
        if tok.token_to_id(candidate) is not None:
            return candidate
    return "[PAD]"


def encode(tok: Any, texts: Sequence[str], inputs: Sequence[str]) -> dict[str, Any]:
    """ONNX feeds (int64 arrays) for ``texts``, only the inputs the graph takes."""
    import numpy as np

    encs = tok.encode_batch(list(texts))
    arrays = {
        "input_ids": np.array([e.ids for e in encs], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64),
    }
    return {name: arrays[name] for name in inputs}
