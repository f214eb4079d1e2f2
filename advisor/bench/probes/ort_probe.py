"""Probe for the SLIM image: its own onnxruntime + tokenizers run the exported model in-process.

Run as ``python3 ort_probe.py CONFIG.json`` inside the image's root filesystem. CONFIG holds
``model_path`` (the .onnx file), ``tokenizer_path`` (tokenizer.json), ``labels`` (names in
class order, may be empty) and ``threads``. Standard library + onnxruntime, numpy, tokenizers.
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _protocol import serve


class OrtBackend:
    def __init__(self, config: dict[str, Any]) -> None:
        import numpy
        import onnxruntime
        from tokenizers import Tokenizer

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = int(config.get("threads", 2))
        options.inter_op_num_threads = 1
        # Idle spinning threads would steal the cores the other side is being timed on.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self._np = numpy
        self._session = onnxruntime.InferenceSession(
            config["model_path"], options, providers=["CPUExecutionProvider"]
        )
        self._inputs = {i.name for i in self._session.get_inputs()}
        self._tokenizer = Tokenizer.from_file(config["tokenizer_path"])
        # Keep the file's pad token (not every vocabulary pads with id 0), drop its fixed length.
        padding = self._tokenizer.padding or {}
        self._pad = {
            "pad_id": int(padding.get("pad_id", 0)),
            "pad_token": str(padding.get("pad_token", "[PAD]")),
            "pad_type_id": int(padding.get("pad_type_id", 0)),
        }
        self._labels = [str(x) for x in config.get("labels") or []]

    def _encode(self, texts: list[str], max_length: int, pad_to_max: bool) -> dict[str, Any]:
        tok = self._tokenizer
        tok.enable_truncation(max_length=max_length)
        tok.enable_padding(length=max_length if pad_to_max else None, **self._pad)
        encodings = tok.encode_batch(texts)
        arrays = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        return {
            k: self._np.asarray(v, dtype=self._np.int64)
            for k, v in arrays.items()
            if k in self._inputs
        }

    def classify(self, texts: list[str], max_length: int, pad_to_max: bool) -> list[str]:
        logits = self._session.run(None, self._encode(texts, max_length, pad_to_max))[0]
        return [self._label(int(i)) for i in logits.argmax(-1).tolist()]

    def _label(self, index: int) -> str:
        return self._labels[index] if index < len(self._labels) else f"LABEL_{index}"

    def fit(self, texts: list[str], seq: int) -> list[str]:
        tok = self._tokenizer
        tok.enable_truncation(max_length=seq)
        tok.no_padding()
        encodings = tok.encode_batch(texts)
        return [text[: max(end for _, end in e.offsets)] for text, e in zip(texts, encodings)]  # noqa: B905

    def label_names(self) -> list[str]:
        return list(self._labels)

    def versions(self) -> dict[str, str]:
        import onnxruntime
        import tokenizers

        return {"onnxruntime": onnxruntime.__version__, "tokenizers": tokenizers.__version__}


if __name__ == "__main__":
    serve(OrtBackend)
