"""Inputs that must fail loudly, with a hint, and publish nothing."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from advisor.errors import AdvisorError, BadInputError, ExportError, UsageError
from advisor.export import ExportConfig, export_model
from tests.export.conftest import TinyFactory
from tests.export.tiny import SENTENCES, write_csv


def _copy(src: Path, dest: Path) -> Path:
    shutil.copytree(src, dest)
    return dest


def _run(model: Path, out: Path, **kwargs: object) -> None:
    export_model(ExportConfig(model_dir=model, artifacts_dir=out, max_length=32, **kwargs))  # type: ignore[arg-type]


def test_missing_config(tiny_model: TinyFactory, tmp_path: Path) -> None:
    model = _copy(tiny_model("bert", "text-classification"), tmp_path / "m")
    (model / "config.json").unlink()
    with pytest.raises(BadInputError) as info:
        _run(model, tmp_path / "out")
    assert "config.json" in str(info.value) and info.value.hint
    assert not (tmp_path / "out").exists()


def test_config_not_json(tiny_model: TinyFactory, tmp_path: Path) -> None:
    model = _copy(tiny_model("bert", "text-classification"), tmp_path / "m")
    (model / "config.json").write_text("{not json")
    with pytest.raises(BadInputError, match=r"config\.json"):
        _run(model, tmp_path / "out")


def test_unsupported_architecture(tiny_model: TinyFactory, tmp_path: Path) -> None:
    model = _copy(tiny_model("bert", "text-classification"), tmp_path / "m")
    cfg = json.loads((model / "config.json").read_text())
    cfg.update(model_type="gpt2", architectures=["GPT2LMHeadModel"])
    (model / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ExportError) as info:
        _run(model, tmp_path / "out")
    assert info.value.exit_code == 5
    assert "gpt2" in str(info.value) and "distilbert" in info.value.hint


def test_unsupported_head(tiny_model: TinyFactory, tmp_path: Path) -> None:
    model = _copy(tiny_model("bert", "text-classification"), tmp_path / "m")
    cfg = json.loads((model / "config.json").read_text())
    cfg["architectures"] = ["BertForMaskedLM"]
    (model / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ExportError, match="task"):
        _run(model, tmp_path / "out")


def test_missing_weights(tiny_model: TinyFactory, tmp_path: Path) -> None:
    model = _copy(tiny_model("bert", "text-classification"), tmp_path / "m")
    (model / "model.safetensors").unlink()
    with pytest.raises(BadInputError, match="no weights") as info:
        _run(model, tmp_path / "out")
    assert "model.safetensors" in info.value.hint


@pytest.mark.parametrize("damage", ["truncate", "garbage"])
def test_corrupt_safetensors(tiny_model: TinyFactory, tmp_path: Path, damage: str) -> None:
    model = _copy(tiny_model("bert", "text-classification"), tmp_path / "m")
    weights = model / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[: len(data) // 2] if damage == "truncate" else b"\x10" * 64)
    with pytest.raises((ExportError, BadInputError)) as info:
        _run(model, tmp_path / "out")
    assert isinstance(info.value, AdvisorError) and info.value.hint
    assert "model" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_data_csv_without_header(tiny_model: TinyFactory, tmp_path: Path) -> None:
    data = tmp_path / "d.csv"
    data.write_text("sentence,y\nfine,1\n")
    with pytest.raises(BadInputError, match="text,label"):
        _run(tiny_model("bert", "text-classification"), tmp_path / "out", data_csv=data)


def test_data_csv_with_unknown_label(tiny_model: TinyFactory, tmp_path: Path) -> None:
    data = write_csv(tmp_path / "d.csv", [("fine", "MAYBE")])
    with pytest.raises(BadInputError, match="MAYBE"):
        _run(tiny_model("bert", "text-classification"), tmp_path / "out", data_csv=data)


def test_accuracy_gate_refuses_to_publish(tiny_model: TinyFactory, tmp_path: Path) -> None:
    # A negative allowance makes even a zero drop fail: the gate, not the model, is under test.
    data = write_csv(tmp_path / "d.csv", SENTENCES)
    with pytest.raises(ExportError, match=r"points below fp32 .*allowed: -1") as info:
        _run(tiny_model("bert", "text-classification"), tmp_path / "out", data_csv=data,
             max_accuracy_drop=-1.0)
    assert "--max-accuracy-drop" in info.value.hint
    assert not (tmp_path / "out").exists()


def test_fused_int8_without_fusion_is_a_usage_error(tiny_model: TinyFactory, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--no-optimize") as info:
        _run(tiny_model("bert", "text-classification"), tmp_path / "out", optimize=False,
             graph="fused")
    assert info.value.exit_code == 2
    assert not (tmp_path / "out").exists()


def test_parity_failure_lists_failures(tiny_model: TinyFactory, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="parity failed") as info:
        _run(tiny_model("bert", "feature-extraction"), tmp_path / "out", atol=1e-12, quantize="none")
    assert "max abs diff" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_refuses_to_overwrite_a_foreign_directory(tiny_model: TinyFactory, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "precious.txt").write_text("keep me")
    with pytest.raises(ExportError, match="not an advisor artifacts directory"):
        _run(tiny_model("bert", "text-classification"), out, quantize="none")
    assert (out / "precious.txt").read_text() == "keep me"


def test_unknown_quantization(tiny_model: TinyFactory, tmp_path: Path) -> None:
    with pytest.raises(ExportError, match="quantisation"):
        _run(tiny_model("bert", "text-classification"), tmp_path / "out", quantize="int4")
