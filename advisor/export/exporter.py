"""Run ``torch.onnx.export`` for a model, with dynamic batch and sequence axes.

Two exporters, tried in the order the architecture's spec names (``ArchSpec.exporters``); the
pipeline ships the first whose graph onnxruntime loads and that matches torch within
tolerance, and records every attempt in validation.json.

Why the legacy TorchScript exporter (``dynamo=False``) comes first for most encoders, measured
here (MiniLM-L6 sentiment model, torch 2.13, onnxruntime 1.32, 2 threads; reproduced by
benchmarks/export/run.py, rows ``onnx-legacy-*`` and ``onnx-dynamo-*``, and per architecture
by benchmarks/export/coverage.py):

- fusion, the step int8 speed depends on: onnxruntime's BERT optimizer fuses the legacy graph
  completely (Attention 6, EmbedLayerNormalization 1, SkipLayerNormalization 12, BiasGelu 6),
  so ``quantize_dynamic`` then emits QAttention and QEmbedLayerNormalization; on the dynamo
  graph it finds no Attention and no EmbedLayerNormalization (only the LayerNorm/Gelu ones);
- export time: 1.4-1.6 s legacy vs 9.6-14.5 s dynamo for the same model;
- file layout: legacy writes one self-contained ``model.onnx`` (below 2 GB); dynamo always
  splits the weights into ``model.onnx.data``;
- parity: the same order for both (max abs logit diff 0.5-3e-7 vs torch).
The dynamo exporter is the fallback (and first for architectures whose legacy graph fails).
Both need ``attn_implementation="eager"`` (set by ``advisor.export.source``): with SDPA the
attention pattern is not fused at all.

The legacy exporter drops inputs the graph never reads (DeBERTa with ``type_vocab_size=0``
has no token type embedding, so no ``token_type_ids``): ``graph_inputs`` reads what the
written graph really takes.
"""

from __future__ import annotations

import contextlib
import os
import sys
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from advisor.errors import ExportError, MissingDependencyError
from advisor.export.specs import Exporter, GraphSpec


def _wrap(model: Any, graph: GraphSpec) -> Any:
    """A module taking the graph's inputs positionally and returning the one named output."""
    import torch

    class _Wrapper(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *args: Any) -> Any:
            out = self.model(**dict(zip(graph.inputs, args, strict=True)), return_dict=True)
            return out[graph.output]

    return _Wrapper().eval()


def dummy_inputs(inputs: tuple[str, ...], vocab: int, batch: int = 2,
                 sequence: int = 16) -> tuple[Any, ...]:
    import torch

    gen = torch.Generator().manual_seed(0)
    values = {
        "input_ids": torch.randint(5, max(6, vocab), (batch, sequence), generator=gen),
        "attention_mask": torch.ones(batch, sequence, dtype=torch.int64),
        "token_type_ids": torch.zeros(batch, sequence, dtype=torch.int64),
    }
    return tuple(values[name] for name in inputs)


def export_onnx(model: Any, graph: GraphSpec, path: Path, opset: int, vocab: int,
                exporter: Exporter = "legacy") -> Path:
    """Write ``path`` (and ``path.data`` with the dynamo exporter); return ``path``."""
    try:
        import torch
    except ImportError as e:
        raise MissingDependencyError("torch", "export") from e
    wrapper = _wrap(model, graph)
    args = dummy_inputs(graph.inputs, vocab)
    kwargs: dict[str, Any] = {
        "input_names": list(graph.inputs),
        "output_names": [graph.output],
        "opset_version": opset,
    }
    if exporter == "legacy":
        kwargs.update(dynamo=False, dynamic_axes=graph.dynamic_axes(), do_constant_folding=True)
    else:
        kwargs.update(dynamo=True, dynamic_shapes=_dynamo_shapes(graph), external_data=True,
                      verbose=False)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad(), \
                _quiet(path.parent.with_suffix(".log")):
            warnings.simplefilter("ignore")
            torch.onnx.export(wrapper, args, str(path), **kwargs)
    except Exception as e:
        raise ExportError(f"torch.onnx.export failed ({exporter}): {first_line(e)}",
                          hint="re-run with --debug for the exporter's trace") from e
    return path


@contextlib.contextmanager
def _quiet(log: Path) -> Iterator[None]:
    """Send what the exporters print straight to file descriptors 1 and 2 (the TorchScript
    exporter dumps its whole graph on failure) to ``log`` instead of the user's terminal;
    ``log`` sits beside the graph's folder, whose files are the graph's size."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with log.open("ab") as f:
            os.dup2(f.fileno(), 1)
            os.dup2(f.fileno(), 2)
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        for fd, copy in zip((1, 2), saved, strict=True):
            os.dup2(copy, fd)
            os.close(copy)


def first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0][:300] if text else type(e).__name__


def graph_inputs(path: Path) -> tuple[str, ...]:
    """The input names of a written graph (initializers excluded), in graph order."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    weights = {t.name for t in model.graph.initializer}
    return tuple(i.name for i in model.graph.input if i.name not in weights)


def _dynamo_shapes(graph: GraphSpec) -> tuple[tuple[dict[int, Any], ...]]:
    from torch.export import Dim

    batch, seq = Dim("batch", min=1, max=1024), Dim("sequence", min=2, max=4096)
    # forward(*args) takes one varargs parameter: its shapes nest one level down.
    return (tuple({0: batch, 1: seq} for _ in graph.inputs),)
