"""Units every report and analysis shares: how bytes are written, which files are weights.

One definition each: the advise report, the bench report, the gate's messages and the charts
all write sizes with ``human_bytes``; the advise facts (capture, categories, models) and the
bench's size breakdown all recognise model weights by ``WEIGHT_SUFFIXES``.
"""

from __future__ import annotations

#: File name endings of model weights (PyTorch, safetensors, ONNX and its external data,
#: TensorFlow/Keras, Flax, Lightning/Keras checkpoints, llama.cpp, TensorFlow Lite).
WEIGHT_SUFFIXES: tuple[str, ...] = (
    ".safetensors", ".bin", ".onnx", ".onnx.data", ".pt", ".pth", ".h5", ".msgpack",
    ".ckpt", ".gguf", ".tflite",
)

_UNITS = (("B", 1), ("kB", 1000), ("MB", 1000**2), ("GB", 1000**3), ("TB", 1000**4))


def human_bytes(n: float | None) -> str:
    """Decimal units as dive and docker print them: ``512 B``, ``1.2 MB``, ``3.1 GB``; None: n/a."""
    if n is None:
        return "n/a"
    for unit, scale in reversed(_UNITS):
        if abs(n) >= scale or unit == "B":
            return f"{n:.0f} B" if unit == "B" else f"{n / scale:.1f} {unit}"
    return f"{n:.0f} B"
