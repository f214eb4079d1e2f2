"""The tokenizer that ships with the artifacts, and encoding text into ONNX feeds.

The serving image loads ``tokenizer.json`` with ``tokenizers.Tokenizer.from_file`` alone, so
truncation (``max_length``) and padding (to the longest in the batch) are configured inside
the file. Validation encodes with this same file, so what is checked is what is served.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from advisor.errors import BadInputError, ExportError, MissingDependencyError
from advisor.export.exporter import first_line


def load_serving_tokenizer(model_dir: Path, max_length: int) -> Any:
    """A ``tokenizers.Tokenizer`` with truncation and padding set for serving."""
    try:
        from tokenizers import Tokenizer
    except ImportError as e:
        raise MissingDependencyError("tokenizers", "export") from e
    path = model_dir / "tokenizer.json"
    if not path.is_file():
        tok = _from_slow_files(model_dir)
    else:
        try:
            tok = Tokenizer.from_file(str(path))
        except Exception as e:  # tokenizers raises plain Exception for malformed files
            raise BadInputError(f"cannot load the tokenizer of {model_dir}: {e}",
                                hint="the folder needs a valid tokenizer.json") from e
    tok.enable_truncation(max_length=max_length)
    pad_token = _pad_token(tok)
    tok.enable_padding(pad_id=tok.token_to_id(pad_token) or 0, pad_token=pad_token)
    return tok


def _from_slow_files(model_dir: Path) -> Any:
    """The fast tokenizer transformers converts the folder's slow files into, or ExportError:
    the serving image runs ``tokenizers`` alone, so a tokenizer with no fast version cannot ship."""
    try:
        from transformers import AutoTokenizer
    except ImportError as e:
        raise MissingDependencyError("transformers", "export") from e
    try:
        tok = AutoTokenizer.from_pretrained(model_dir)
    except Exception as e:  # converters raise anything from ValueError to ImportError
        raise ExportError(f"cannot build a fast tokenizer (tokenizer.json) for {model_dir.name}: "
                          f"{first_line(e)}",
                          hint="save the model with a fast tokenizer (tokenizer.json)") from e
    backend = getattr(tok, "backend_tokenizer", None)
    if backend is None:
        raise ExportError(f"the tokenizer of {model_dir.name} ({type(tok).__name__}) has no fast "
                          f"version (tokenizer.json), which the serving image needs",
                          hint="advisor serves tokenizers that the `tokenizers` library runs")
    return backend


def _pad_token(tok: Any) -> str:
    padding = tok.padding
    if padding and padding.get("pad_token"):
        return str(padding["pad_token"])
    for candidate in ("[PAD]", "<pad>"):
        if tok.token_to_id(candidate) is not None:
            return candidate
    return "[PAD]"


def encode(tok: Any, texts: Sequence[str], inputs: Sequence[str],
           pad_to: int | None = None) -> dict[str, Any]:
    """ONNX feeds (int64 arrays) for ``texts``, only the inputs the graph takes; ``pad_to``
    pads every row to that length (calibration batches must all have one shape)."""
    import numpy as np

    encs = tok.encode_batch(list(texts))
    if pad_to is not None:
        pad_id = (tok.padding or {}).get("pad_id", 0)
        for e in encs:
            e.pad(pad_to, pad_id=pad_id, pad_token=(tok.padding or {}).get("pad_token", "[PAD]"))
    arrays = {
        "input_ids": np.array([e.ids for e in encs], dtype=np.int64),
        "attention_mask": np.array([e.attention_mask for e in encs], dtype=np.int64),
        "token_type_ids": np.array([e.type_ids for e in encs], dtype=np.int64),
    }
    return {name: arrays[name] for name in inputs}
