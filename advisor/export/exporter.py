"""Run ``torch.onnx.export`` for a spec'd model, with dynamic batch and sequence axes.

Which exporter (measured here, MiniLM-L6 sentiment model, torch 2.13, onnxruntime 1.32,
2 threads; numbers in benchmarks/export/report.md, "exporter choice"):

The legacy TorchScript exporter (``dynamo=False``) is the default. Evidence:
- after onnxruntime's BERT fusion, legacy graphs fuse completely (Attention 6,
  EmbedLayerNormalization 1, SkipLayerNormalization 12, BiasGelu 6 for 6 layers) while the
  dynamo graph's attention and embedding patterns are not recognised, so the fused legacy
  model is the faster one; the raw dynamo graph is faster only before fusion, which
  advisor always runs;
- export is several times faster and needs no onnxscript at run time;
- one self-contained ``model.onnx`` below 2 GB (dynamo always splits weights into
  ``model.onnx.data``), which keeps the serving image's model layer one file;
- fp32 parity is the same order (< 1e-6 max abs logit diff) for both.
The dynamo exporter stays selectable (``exporter="dynamo"``) so the benchmark can
re-measure it when torch or onnxruntime change.
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
