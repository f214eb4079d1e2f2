"""Refusal is data: a model advisor cannot export exits 5 with one line naming the reason and
the architecture, no traceback, and nothing written."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.errors import ExportError
from advisor.export import ExportConfig, export_model, specs
from advisor.export.validation import open_session
from tests.export.conftest import TinyFactory

ADVISOR = [sys.executable, "-m", "advisor.cli"]


def _cli_refuses(model: Path, tmp_path: Path) -> str:
    out = tmp_path / "artifacts"
    proc = subprocess.run([*ADVISOR, "export", str(model), "--artifacts", str(out)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert proc.returncode == 5, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert [line.split(":")[0] for line in lines] == ["error", "hint"], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not out.exists() and sorted(p.name for p in tmp_path.iterdir()) == ["m"]
    return lines[0]


def _copy_with(src: Path, dest: Path, **config: object) -> Path:
    shutil.copytree(src, dest)
    cfg = json.loads((dest / "config.json").read_text())
    cfg.update(config)
    (dest / "config.json").write_text(json.dumps(cfg))
    return dest


@pytest.mark.parametrize(("config", "words"), [
    ({"model_type": "gpt2", "architectures": ["GPT2ForSequenceClassification"]},
     ["gpt2", "decoder"]),
    ({"auto_map": {"AutoModelForSequenceClassification": "modeling.MyModel"}},
     ["bert", "custom code"]),
    ({"model_type": "layoutlm", "architectures": ["LayoutLMForSequenceClassification"]},
     ["layoutlm", "bounding box"]),
])
def test_cli_refuses_with_one_line(tiny_model: TinyFactory, tmp_path: Path,
                                   config: dict[str, object], words: list[str]) -> None:
    model = _copy_with(tiny_model("bert", "text-classification"), tmp_path / "m", **config)
    line = _cli_refuses(model, tmp_path)
    assert all(w in line for w in words), line


def test_a_tokenizer_without_a_fast_version_is_refused(tiny_model: TinyFactory,
                                                       tmp_path: Path) -> None:
    # XLM's tokenizer exists only as Python code over vocab.json + merges.txt (and sacremoses):
    # the serving image runs the `tokenizers` library alone, so there is nothing to ship.
    model = tmp_path / "m"
    shutil.copytree(tiny_model("xlm", "text-classification"), model)
    (model / "tokenizer.json").unlink()
    (model / "vocab.json").write_text(json.dumps({"<s>": 0, "</s>": 1, "<pad>": 2, "a</w>": 3}))
    (model / "merges.txt").write_text("#version: 0.2\n")
    line = _cli_refuses(model, tmp_path)
    assert "fast" in line and "tokenizer" in line


def test_an_operator_the_exporter_lacks_is_refused_naming_the_architecture(
        tiny_model: TinyFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # FNet mixes tokens with an FFT; the TorchScript exporter has no aten::fft_fftn (that is
    # why its spec tries dynamo first). With only that exporter the export must refuse.
    spec = specs.ARCHITECTURES["fnet"]
    monkeypatch.setitem(specs.ARCHITECTURES, "fnet", specs.ArchSpec(  # type: ignore[index]
        "fnet", ort_model_type=None, exporters=("legacy",)))
    with pytest.raises(ExportError) as info:
        export_model(ExportConfig(model_dir=tiny_model("fnet", "text-classification"),
                                  artifacts_dir=tmp_path / "out", max_length=32))
    message = str(info.value)
    assert message.startswith("cannot export this fnet model: legacy:")
    assert "fft" in message and "\n" not in message
    assert not (tmp_path / "out").exists()
    assert spec.exporters[0] == "dynamo"


def test_a_graph_onnxruntime_cannot_run_is_an_export_error(tmp_path: Path) -> None:
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("FancyAttention", ["x"], ["y"], domain="com.example")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("com.example", 1)])
    onnx.save(model, str(tmp_path / "model.onnx"))
    with pytest.raises(ExportError) as info:
        open_session(tmp_path / "model.onnx", 1, "fp32")
    assert "onnxruntime cannot run the fp32 graph" in str(info.value)
    assert info.value.exit_code == 5 and "\n" not in str(info.value)


def _load_base(tiny_model: TinyFactory, arch: str) -> object:
    import transformers

    model_dir = tiny_model(arch, "feature-extraction")
    return transformers.AutoModel.from_pretrained(model_dir, attn_implementation="eager").eval()


def test_nystromformer_refusal_holds_torch_runs_one_length_only(tiny_model: TinyFactory) -> None:
    """The refusal's reason, checked: torch itself fails off segment_means_seq_len. When a
    future transformers runs other lengths, this fails and the type can be declared."""
    import torch

    model = _load_base(tiny_model, "nystromformer")
    fixed = model.config.segment_means_seq_len  # type: ignore[attr-defined]
    assert "segment_means_seq_len" in specs.REFUSED["nystromformer"]
    with torch.inference_mode():
        model(input_ids=torch.full((1, fixed), 7))  # type: ignore[operator]
        for length in (fixed // 2, fixed + 2):
            with pytest.raises(RuntimeError, match="invalid for input of size"):
                model(input_ids=torch.full((1, length), 7))  # type: ignore[operator]


def test_longformer_refusal_holds_both_exporters_fail(tiny_model: TinyFactory,
                                                      tmp_path: Path) -> None:
    """The refusal's reason, checked with the exporters themselves: TorchScript's graph,
    traced at one length, fails or disagrees with torch at another; dynamo stops at the
    data-dependent global-attention branch. Either one starting to work fails this test."""
    import numpy as np

    from advisor.export.exporter import export_onnx
    from advisor.export.specs import GraphSpec
    from advisor.export.validation import random_feeds, torch_outputs

    model = _load_base(tiny_model, "longformer")
    graph = GraphSpec(("input_ids", "attention_mask"), "last_hidden_state",
                      ("batch", "sequence"))
    vocab = int(model.config.vocab_size)  # type: ignore[attr-defined]
    legacy = export_onnx(model, graph, tmp_path / "legacy.onnx", 17, vocab, "legacy")
    session = open_session(legacy, 1)
    window = max(model.config.attention_window)  # type: ignore[attr-defined]
    feeds = random_feeds(graph.inputs, 2, 3 * window, vocab, seed=0)  # not the traced length
    try:
        got = session.run(None, feeds)[0]
        off = float(np.abs(got - torch_outputs(model, graph.output, feeds)).max())
    except Exception:  # onnxruntime's own error types: the graph fails at this length
        off = float("inf")
    assert off > 1e-2, f"the TorchScript graph now matches torch ({off:.1e}): declare longformer"
    (tmp_path / "dynamo").mkdir()
    with pytest.raises(ExportError, match="dynamo") as info:
        export_onnx(model, graph, tmp_path / "dynamo" / "model.onnx", 18, vocab, "dynamo")
    chain = f"{info.value.__cause__!r} {info.value.__cause__.__cause__!r}"  # type: ignore[union-attr]
    assert "data-dependent" in chain or "DataDependent" in chain, chain
    assert "data-dependent" in specs.REFUSED["longformer"]
