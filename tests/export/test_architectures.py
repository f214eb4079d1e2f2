"""Every declared encoder type x task, exported from a tiny random model built from
transformers' own config class (no hub), and checked against torch.

text-classification runs the whole pipeline for every type: export (the spec's exporters in
order), fp32 parity at three shapes within the spec's tolerance, fusion where onnxruntime has
one, int8, the graph race and the accuracy gate on a small labelled set. feature-extraction
(every type) and token-classification (one type per family: the head is one Linear on the same
trunk, and CI's budget is minutes) export under another head: fp32 parity at three shapes.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from advisor.export import ExportConfig, export_model, race
from advisor.export.specs import ARCHITECTURES, TASKS
from tests.export.conftest import TinyFactory
from tests.export.tiny import SENTENCES, write_csv

TOKEN_ARCHS = ("albert", "bert", "deberta-v2", "distilbert", "electra", "modernbert", "roberta",
               "xlm-roberta")
HEADS = [(arch, "feature-extraction") for arch in sorted(ARCHITECTURES)] + [
    (arch, "token-classification") for arch in TOKEN_ARCHS]
MATRIX = [(arch, "text-classification") for arch in sorted(ARCHITECTURES)] + HEADS
SHAPES = [(1, 8), (2, 32), (4, 64)]
GATE_POINTS = 12.5  # one flipped row in eight: int8 of a random tiny model is judged loosely


@pytest.fixture(autouse=True)
def quick_race(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(race, "TIMING_SECONDS", 0.02)
    monkeypatch.setattr(race, "TIMING_RUNS", 2)


def _graph_inputs(path: Path) -> list[str]:
    import onnx

    model = onnx.load(str(path), load_external_data=False)
    weights = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in weights]


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_text_classifier_exports_int8_within_the_gate(tiny_model: TinyFactory, tmp_path: Path,
                                                      arch: str) -> None:
    out = tmp_path / "artifacts"
    data = write_csv(tmp_path / "data.csv", SENTENCES)
    result = export_model(ExportConfig(model_dir=tiny_model(arch, "text-classification"),
                                       artifacts_dir=out, max_length=64, data_csv=data,
                                       max_accuracy_drop=GATE_POINTS))
    report = result.validation
    spec = ARCHITECTURES[arch]
    assert report["architecture"] == arch
    assert report["exporter"] in spec.exporters
    assert [a["exporter"] for a in report["exporter_attempts"]][-1] == report["exporter"]
    fp32 = [p for p in report["parity"] if p["enforced"]]
    assert fp32 and fp32[0]["variant"] == "fp32"
    for parity in fp32:
        assert [(s["batch"], s["sequence"]) for s in parity["shapes"]] == SHAPES
        assert all(s["max_abs_diff"] <= spec.atol for s in parity["shapes"]), parity
    assert ("fp32-fused" in [p["variant"] for p in fp32]) == bool(report["fusion"]["applied"])
    if spec.ort_model_type is None:
        assert not report["fusion"]["applied"]
    assert report["gate"]["checked"] and report["gate"]["drop_points"] <= GATE_POINTS
    assert report["quantization"] == "int8"
    assert any(op in report["operators"] for op in ("MatMulInteger", "QAttention",
                                                    "DynamicQuantizeLinear", "QuantizeLinear"))
    serving = json.loads((out / "serving.json").read_text())
    # what serving.json says the graph takes is what the graph takes, derived, not declared
    assert serving["inputs"] == report["inputs"]["names"] == _graph_inputs(out / "model.onnx")
    assert "input_ids" in serving["inputs"]
    _run_dynamic_shapes(out, serving["inputs"], (2,))


@pytest.mark.parametrize(("arch", "task"), HEADS)
def test_other_heads_export_with_fp32_parity(tiny_model: TinyFactory, tmp_path: Path, arch: str,
                                             task: str) -> None:
    out = tmp_path / "artifacts"
    result = export_model(ExportConfig(model_dir=tiny_model(arch, task), artifacts_dir=out,
                                       max_length=64, quantize="none", optimize=False))
    (parity,) = result.validation["parity"]
    assert parity["ok"] and [(s["batch"], s["sequence"]) for s in parity["shapes"]] == SHAPES
    assert all(s["max_abs_diff"] <= ARCHITECTURES[arch].atol for s in parity["shapes"])
    serving = json.loads((out / "serving.json").read_text())
    assert serving["task"] == task and serving["outputs"] == [TASKS[task].output]
    if task == "feature-extraction":
        assert serving["pooling"] == {"modes": ["mean"], "normalize": True, "source": "default"}
    _run_dynamic_shapes(out, serving["inputs"], None)


def _run_dynamic_shapes(out: Path, inputs: list[str], width: tuple[int, ...] | None) -> None:
    import onnxruntime as ort

    session = ort.InferenceSession(str(out / "model.onnx"), providers=["CPUExecutionProvider"])
    for batch, seq in [(3, 17), (1, 50)]:
        feeds = {name: np.full((batch, seq), 7 if name == "input_ids" else 1, dtype=np.int64)
                 for name in inputs}
        if "token_type_ids" in feeds:
            feeds["token_type_ids"][:] = 0
        (output,) = session.run(None, feeds)
        assert output.shape[:2] == ((batch, *width) if width else (batch, seq))
