"""Graph fusion (onnxruntime.transformers optimizer) and int8 quantisation, dynamic or static.

Fusion needs the head count and hidden size from config.json: with ``num_heads=0`` the
optimizer must guess them from the graph, fails on these exports and silently leaves
attention unfused. Quantisation runs on the fused model and needs
``DefaultTensorType=FLOAT`` there, or it stops at "Unable to find data type for weight_name".

Options measured and left out of the race (the graphs benchmarks/export/int8_study.py builds;
sample model, 2 threads, fastest CPU ms of interleaved runs, two runs at load 7-13, 2026-12):
per-channel weights (same accuracy) 1.04-1.14x slower at b1 and 1.2-1.3x at b8; the attention
score MatMuls in int8 too (``MatMulConstBOnly=False``, -0.5 point) 0.94-1.14x at b1, 1.36-1.4x
slower at b8; u8 weights (u8u8, one run) 1.45-1.65x slower (no VNNI u8s8 kernel). onnxruntime
1.32 already runs the s8 GEMMs on AMX here (``tdpbusd`` in the hot path under perf): they are
~42 % of the kernel time at b8, the rest is fp32 (LayerNorm, Gelu, attention MatMuls, Softmax)
and per-op dispatch.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from advisor.errors import ExportError, MissingDependencyError

# Static int8 calibration: min/max ranges over the calibration rows, only the weight MatMuls
# (the attention score MatMuls stay fp32, as in the dynamic graph). Percentile (99.999) took
# 3x longer to calibrate on the sample model (89 vs 27 s) and scored lower (74.5 vs 75.4 %).
CALIBRATION_NAME = "minmax"
CALIBRATION_OPTIONS = {"MatMulConstBOnly": True}

# A protobuf cannot pass 2 GiB; write weights to ``NAME.data`` well before that.
EXTERNAL_DATA_THRESHOLD = 1_800_000_000


def heads_and_hidden(config: Mapping[str, Any]) -> tuple[int, int]:
    heads = config.get("num_attention_heads", config.get("n_heads"))
    hidden = config.get("hidden_size", config.get("dim"))
    if not isinstance(heads, int) or not isinstance(hidden, int):
        raise ExportError("config.json names no attention head count or hidden size",
                          hint="re-run with --no-optimize to skip graph fusion")
    return heads, hidden


def fuse(src: Path, dest: Path, config: Mapping[str, Any], model_type: str,
         attention: bool = True) -> dict[str, int]:
    """Write the fused model to ``dest``; return the non-zero fused operator counts.
    ``attention=False`` keeps attention as MatMul / Softmax (int8 then quantises its
    projections as MatMulInteger) and fuses the rest (LayerNorm, Gelu, embeddings)."""
    try:
        from onnxruntime.transformers import optimizer
        from onnxruntime.transformers.fusion_options import FusionOptions
    except ImportError as e:
        raise MissingDependencyError("onnxruntime", "export") from e
    heads, hidden = heads_and_hidden(config)
    options = FusionOptions(model_type)
    options.enable_attention = attention
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # the optimizer logs per-node warnings at import and run
    try:
        opt = optimizer.optimize_model(str(src), model_type=model_type, num_heads=heads,
                                       hidden_size=hidden, opt_level=0,
                                       optimization_options=options)
        stats = {k: int(v) for k, v in opt.get_fused_operator_statistics().items() if v}
        opt.save_model_to_file(str(dest), use_external_data_format=needs_external(opt.model))
    except (ValueError, RuntimeError, AssertionError, KeyError, AttributeError) as e:
        raise ExportError(f"graph fusion failed: {e}",
                          hint="re-run with --no-optimize to export without fusion") from e
    finally:
        logging.disable(previous)
    return dict(sorted(stats.items()))


def needs_external(model: Any) -> bool:
    """A model past ``EXTERNAL_DATA_THRESHOLD`` keeps its tensors in a side file. Past
    protobuf's 2 GiB ``ByteSize()`` cannot even count it: it raises ``EncodeError``."""
    from google.protobuf.message import EncodeError

    try:
        return int(model.ByteSize()) > EXTERNAL_DATA_THRESHOLD
    except EncodeError:
        return True


def quantize_int8(src: Path, dest: Path) -> None:
    """Dynamic int8 quantisation of the MatMul/Gemm weights (activations quantised at run time)."""
    try:
        import onnx
        from onnxruntime.quantization import QuantType, quantize_dynamic
    except ImportError as e:
        raise MissingDependencyError("onnxruntime", "export") from e
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)  # "consider pre-processing" is advice for CNNs, not here
    try:
        quantize_dynamic(
            str(src), str(dest), weight_type=QuantType.QInt8, per_channel=False,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT},
        )
    except (ValueError, RuntimeError, KeyError) as e:
        raise ExportError(f"int8 quantisation failed: {e}",
                          hint="re-run with --quantize none to ship the fp32 model") from e
    finally:
        logging.disable(previous)


def quantize_int8_static(src: Path, dest: Path, batches: Sequence[Mapping[str, Any]]) -> None:
    """Static int8 (QDQ) of the MatMuls and embedding Gathers (as the dynamic candidate: fp32
    embeddings would keep it 2.6x the size), activation ranges calibrated on ``batches`` (feeds of
    real labelled text): no quantisation at run time, onnxruntime folds each QDQ MatMul into
    a QLinearMatMul. u8 activations and s8 weights, the pair x86 int8 kernels (VNNI) take.
    Only a candidate: the race ships it when it is faster within the accuracy gate."""
    try:
        import onnx
        from onnxruntime.quantization import (
            CalibrationDataReader,
            CalibrationMethod,
            QuantFormat,
            QuantType,
            quantize_static,
        )
    except ImportError as e:
        raise MissingDependencyError("onnxruntime", "export") from e

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._batches = iter(batches)

        def get_next(self) -> dict[str, Any] | None:
            batch = next(self._batches, None)
            return None if batch is None else dict(batch)

    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        quantize_static(
            str(src), str(dest), _Reader(), quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["MatMul", "Gather"], activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8, per_channel=False, calibrate_method=CalibrationMethod.MinMax,
            extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT, **CALIBRATION_OPTIONS},
        )
    except (ValueError, RuntimeError, KeyError) as e:
        raise ExportError(f"static int8 quantisation failed: {e}",
                          hint="re-run without --data to skip the static candidate") from e
    finally:
        logging.disable(previous)


def count_ops(path: Path) -> dict[str, int]:
    """Operator histogram of a saved model (what fusion and quantisation left in the graph)."""
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    counts: dict[str, int] = {}
    for node in model.graph.node:
        counts[node.op_type] = counts.get(node.op_type, 0) + 1
    return dict(sorted(counts.items()))
