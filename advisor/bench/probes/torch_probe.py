"""Probe for the ORIGINAL image: its own torch + transformers load the model and predict.

Run as ``python3 torch_probe.py CONFIG.json`` inside the image's root filesystem. CONFIG holds
``model_dir`` and ``threads``. Standard library + the image's torch/transformers only.
"""

from __future__ import annotations

import os
import sys
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from _protocol import serve


class TorchBackend:
    def __init__(self, config: dict[str, Any]) -> None:
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        torch.set_num_threads(int(config.get("threads", 2)))
        self._torch = torch
        self._tokenizer = AutoTokenizer.from_pretrained(config["model_dir"])
        model = AutoModelForSequenceClassification.from_pretrained(config["model_dir"])
        self._model = model.eval()
        id2label = getattr(model.config, "id2label", None) or {}
        count = int(getattr(model.config, "num_labels", len(id2label)) or len(id2label))
        self._labels = [str(id2label.get(i, f"LABEL_{i}")) for i in range(count)]

    def classify(self, texts: list[str], max_length: int, pad_to_max: bool) -> list[str]:
        padding = "max_length" if pad_to_max else True
        enc = self._tokenizer(
            texts, truncation=True, max_length=max_length, padding=padding, return_tensors="pt"
        )
        # inference_mode is torch >= 1.9; older images still have no_grad.
        with getattr(self._torch, "inference_mode", self._torch.no_grad)():
            logits = self._model(**enc).logits
        return [self._labels[i] for i in logits.argmax(-1).tolist()]

    def fit(self, texts: list[str], seq: int) -> list[str]:
        if not getattr(self._tokenizer, "is_fast", False):  # no offsets: cut by words
            return [" ".join(t.split()[: max(1, seq - 2)]) for t in texts]
        enc = self._tokenizer(texts, truncation=True, max_length=seq, return_offsets_mapping=True)
        pairs = zip(texts, enc["offset_mapping"])  # noqa: B905 (the image's Python may be < 3.10)
        return [text[: max(end for _, end in offsets)] for text, offsets in pairs]

    def label_names(self) -> list[str]:
        return list(self._labels)

    def versions(self) -> dict[str, str]:
        import transformers

        return {"torch": self._torch.__version__, "transformers": transformers.__version__}


if __name__ == "__main__":
    serve(TorchBackend)
