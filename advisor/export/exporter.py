"""Run ``torch.onnx.export`` for a spec'd model, with dynamic batch and sequence axes.

Which exporter: the legacy TorchScript exporter (``dynamo=False``), chosen on evidence measured
here (MiniLM-L6 sentiment model, torch 2.13, onnxruntime 1.32, 2 threads; the run is
reproduced by benchmarks/export/run.py, rows ``onnx-legacy-*`` and ``onnx-dynamo-*``):

- fusion, the step int8 speed depends on: onnxruntime's BERT optimizer fuses the legacy graph
  completely (Attention 6, EmbedLayerNormalization 1, SkipLayerNormalization 12, BiasGelu 6),
  so ``quantize_dynamic`` then emits QAttention and QEmbedLayerNormalization; on the dynamo
  graph it finds no Attention and no EmbedLayerNormalization (only the LayerNorm/Gelu ones);
- export time: 1.4-1.6 s legacy vs 9.6-14.5 s dynamo for the same model;
- file layout: legacy writes one self-contained ``model.onnx`` (below 2 GB); dynamo always
  splits the weights into ``model.onnx.data``;
- parity: the same order for both (max abs logit diff 0.5-3e-7 vs torch);
- fp32 latency: within noise of each other once onnxruntime has applied its own
  load-time fusions (b1/s128 medians 35-41 ms for all four raw/fused variants on a loaded
  machine), so it does not decide.
The dynamo exporter stays selectable (``exporter="dynamo"``) so the benchmark can re-measure
it when torch or onnxruntime change. Both need ``attn_implementation="eager"`` (set by
``advisor.export.source``): with SDPA the attention pattern is not fused at all.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any, Literal

from advisor.errors import ExportError, MissingDependencyError
from advisor.export.specs import ArchSpec, TaskSpec, dynamic_axes

Exporter = Literal["legacy", "dynamo"]


def _wrap(model: Any, arch: ArchSpec, task: TaskSpec) -> Any:
    """A module taking the spec's inputs positionally and returning the one named output."""
    import torch

    class _Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any) -> Any:
            out = self.model(**dict(zip(arch.inputs, args, strict=True)), return_dict=True)
            return out[task.output]

    return _Wrapper().eval()


def dummy_inputs(arch: ArchSpec, vocab: int, batch: int = 2, sequence: int = 16) -> tuple[Any, ...]:
    import torch

    gen = torch.Generator().manual_seed(0)
    values = {
        "input_ids": torch.randint(5, max(6, vocab), (batch, sequence), generator=gen),
        "attention_mask": torch.ones(batch, sequence, dtype=torch.int64),
        "token_type_ids": torch.zeros(batch, sequence, dtype=torch.int64),
    }
    return tuple(values[name] for name in arch.inputs)


def export_onnx(model: Any, arch: ArchSpec, task: TaskSpec, path: Path, opset: int,
                vocab: int, exporter: Exporter = "legacy") -> Path:
    """Write ``path`` (and ``path.data`` with the dynamo exporter); return ``path``."""
    try:
        import torch
    except ImportError as e:
        raise MissingDependencyError("torch", "export") from e
    wrapper = _wrap(model, arch, task)
    args = dummy_inputs(arch, vocab)
    kwargs: dict[str, Any] = {
        "input_names": list(arch.inputs),
        "output_names": [task.output],
        "opset_version": opset,
    }
    if exporter == "legacy":
        kwargs.update(dynamo=False, dynamic_axes=dynamic_axes(arch, task), do_constant_folding=True)
    else:
        kwargs.update(dynamo=True, dynamic_shapes=_dynamo_shapes(arch), external_data=True,
                      verbose=False)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, args, str(path), **kwargs)
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ExportError(f"torch.onnx.export failed ({exporter}): {first}",
                          hint="re-run with --debug for the exporter's trace") from e
    return path


def _dynamo_shapes(arch: ArchSpec) -> tuple[tuple[dict[int, Any], ...]]:
    from torch.export import Dim

    batch, seq = Dim("batch", min=1, max=1024), Dim("sequence", min=2, max=4096)
    # forward(*args) takes one varargs parameter: its shapes nest one level down.
    return (tuple({0: batch, 1: seq} for _ in arch.inputs),)
