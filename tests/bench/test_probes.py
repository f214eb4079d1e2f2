"""The probes run for real (host Python, tiny real model) through the same process plumbing
the benchmark uses inside image root filesystems."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from advisor.bench.data import load_csv
from advisor.bench.probes import PROBE_FILES, PROBES_DIR
from advisor.errors import SandboxError
from advisor.sandbox.environment import ProbeProcess, Sandbox
from tests.bench.conftest import LABELS, TinyModel


def _start(tmp_path: Path, script: str, config: dict[str, Any]) -> ProbeProcess:
    import sys

    box = Sandbox("host", python=sys.executable)
    inner = box.stage_probes(tmp_path, PROBES_DIR, PROBE_FILES)
    cfg = tmp_path / f"{script}.json"
    cfg.write_text(json.dumps(config))
    return ProbeProcess(box, f"{inner}/{script}", str(cfg), {"HF_HUB_OFFLINE": "1"})


@pytest.fixture(scope="module")
def probes(
    tiny_model: TinyModel, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[ProbeProcess, ProbeProcess]]:
    tmp = tmp_path_factory.mktemp("probes")
    torch_probe = _start(
        tmp, "torch_probe.py", {"model_dir": str(tiny_model.model_dir), "threads": 1}
    )
    onnx = tiny_model.onnx_dir
    ort_config = {
        "model_path": str(onnx / "model.onnx"),
        "tokenizer_path": str(onnx / "tokenizer.json"),
        "labels": list(LABELS),
        "threads": 1,
    }
    ort_probe = _start(tmp, "ort_probe.py", ort_config)
    try:
        torch_probe.wait_ready(180)
        ort_probe.wait_ready(60)
        yield torch_probe, ort_probe
    finally:
        torch_probe.close()
        ort_probe.close()


def test_ready_reports_cold_start_labels_versions(
    probes: tuple[ProbeProcess, ProbeProcess],
) -> None:
    torch_probe, ort_probe = probes
    for probe, lib in ((torch_probe, "torch"), (ort_probe, "onnxruntime")):
        assert 0 < probe.ready["cold_start_s"] < 180
        assert probe.ready["labels"] == list(LABELS)
        assert lib in probe.ready["versions"]


def test_fit_cuts_real_text_to_the_token_budget(
    probes: tuple[ProbeProcess, ProbeProcess], tiny_model: TinyModel
) -> None:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tiny_model.onnx_dir / "tokenizer.json"))
    long_text = " ".join(["an unexpectedly wonderful, heartwarming film"] * 20)
    for probe in probes:
        (cut,) = probe.request("fit", texts=[long_text], seq=32)["texts"]
        assert long_text.startswith(cut) and len(cut) < len(long_text)
        assert 30 <= sum(tok.encode(cut).attention_mask) <= 32  # the file pads to 128


def test_both_runtimes_predict_the_same_labels(
    probes: tuple[ProbeProcess, ProbeProcess], tiny_model: TinyModel
) -> None:
    data = load_csv(tiny_model.data_csv)
    torch_labels = probes[0].request(
        "predict", texts=list(data.texts), max_length=128, batch_size=8
    )["labels"]
    ort_labels = probes[1].request("predict", texts=list(data.texts), max_length=128, batch_size=8)[
        "labels"
    ]
    assert len(torch_labels) == len(data) and set(torch_labels) <= set(LABELS)
    assert torch_labels == ort_labels  # same fp32 weights, two runtimes


def test_time_and_throughput_and_memory(probes: tuple[ProbeProcess, ProbeProcess]) -> None:
    for probe in probes:
        samples = probe.request("time", texts=["a film"] * 2, seq=16, iterations=5, warmup=1)[
            "samples_ms"
        ]
        assert len(samples) == 5 and all(s > 0 for s in samples)
        tp = probe.request("throughput", texts=["a film"], seq=16, seconds=0.2)
        assert tp["items"] >= 1 and tp["seconds"] >= 0.2
        mem = probe.request("stats")
        assert mem["peak_rss_bytes"] >= mem["rss_bytes"] > 10_000_000


def test_a_bad_request_is_an_error_not_a_crash(probes: tuple[ProbeProcess, ProbeProcess]) -> None:
    with pytest.raises(SandboxError, match="failed during 'fit'") as info:
        probes[1].request("fit", texts=None, seq=8)
    assert "TypeError" in info.value.hint or "Error" in info.value.hint
    assert probes[1].request("stats")["rss_bytes"] > 0  # still serving


def test_a_model_that_cannot_load_is_a_build_error_with_its_output(tmp_path: Path) -> None:
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "config.json").write_text('{"model_type": "bert"}')
    probe = _start(tmp_path, "torch_probe.py", {"model_dir": str(tmp_path / "broken")})
    try:
        with pytest.raises(SandboxError) as info:
            probe.wait_ready(180)
    finally:
        probe.close()
    assert info.value.exit_code == 6
    assert "Error" in info.value.hint  # the probe's traceback tail, for the user
