"""Same inputs, same artifacts, same image: the race is decided once per model digest and CPU,
and what differs per run (timings) stays out of validation.json and out of the image."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.export import ExportConfig, ExportResult, export_model, race
from tests.export.conftest import TinyFactory
from tests.slim.fixtures import NEEDS_ROOT_TOOLS

ADVISOR = [sys.executable, "-m", "advisor.cli"]
SHIPPED = ("model.onnx", "tokenizer.json", "labels.json", "serving.json", "validation.json")
# Big enough that weights, not graph overhead, make the file size: every fp32 candidate is
# then within the race's size slack and really timed (hidden 32 drops all but one on size).
DIMS = {"hidden_size": 128, "intermediate_size": 256, "num_attention_heads": 2}


def _export(model: Path, out: Path, cache: Path, **kwargs: object) -> ExportResult:
    return export_model(ExportConfig(model_dir=model, artifacts_dir=out, max_length=32,
                                     quantize="none", race_cache=cache, **kwargs))  # type: ignore[arg-type]


@pytest.fixture(autouse=True)
def quick_race(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(race, "TIMING_SECONDS", 0.05)


def test_the_second_export_reuses_the_ranking_and_writes_the_same_bytes(
        tiny_model: TinyFactory, tmp_path: Path) -> None:
    model, cache = tiny_model("bert", "text-classification", 0, DIMS), tmp_path / "race"
    first = _export(model, tmp_path / "a", cache)
    second = _export(model, tmp_path / "b", cache)
    assert first.timings["race"]["source"] == "measured"
    assert second.timings["race"]["source"] == "recorded"
    assert first.timings["race"]["key"] == second.timings["race"]["key"]
    assert [p.name for p in cache.iterdir()] == [f"{first.timings['race']['key']}.json"]
    for name in SHIPPED:
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    # the recorded timings come back with the ranking (timings.json), never in validation.json
    assert second.timings["race"]["latency_ms"] == first.timings["race"]["latency_ms"]
    assert "latency_ms" not in json.dumps(first.validation)


def test_remeasure_or_another_cpu_races_again(tiny_model: TinyFactory, tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    model, cache = tiny_model("bert", "text-classification", 0, DIMS), tmp_path / "race"
    first = _export(model, tmp_path / "a", cache)
    again = _export(model, tmp_path / "b", cache, remeasure=True)
    assert again.timings["race"]["source"] == "measured"
    monkeypatch.setattr(race, "cpu_fingerprint", lambda: "riscv64 imaginary [v]")
    other = _export(model, tmp_path / "c", cache)
    assert other.timings["race"]["source"] == "measured"
    assert other.timings["race"]["key"] != first.timings["race"]["key"]
    assert len(list(cache.iterdir())) == 2


def test_a_changed_model_is_a_new_decision(tiny_model: TinyFactory, tmp_path: Path) -> None:
    cache = tmp_path / "race"
    a = _export(tiny_model("bert", "text-classification", 0, DIMS), tmp_path / "a", cache)
    b = _export(tiny_model("bert", "text-classification", 1, DIMS), tmp_path / "b", cache)
    assert a.timings["race"]["key"] != b.timings["race"]["key"]
    assert b.timings["race"]["source"] == "measured"


@NEEDS_ROOT_TOOLS
def test_two_exports_to_an_image_give_one_digest(tiny_model: TinyFactory, tmp_path: Path,
                                                 debian_base: str) -> None:
    model = tiny_model("bert", "text-classification", 0, DIMS)
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}  # the shared race cache: run two reuses run one
    digests, races = [], []
    for run in ("one", "two"):
        proc = subprocess.run(
            [*ADVISOR, "export", str(model), "--base", debian_base, "--quantize", "none",
             "--max-length", "32", "--output", f"oci:{tmp_path / run}:v1", "--format", "json"],
            capture_output=True, text=True, timeout=900, env=env)
        assert proc.returncode == 0, proc.stderr
        summary = json.loads(proc.stdout)
        digests.append(summary["image"]["manifest_digest"])
        races.append(summary["export"]["race"])
    assert races[1] == "recorded"
    assert digests[0] == digests[1]
