"""``run_bench`` for real: two images built in the test (no Docker daemon), unpacked, each side
run in its own root filesystem with its own Python (torch + transformers vs onnxruntime)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from advisor.bench.model import BenchConfig, BenchReport
from advisor.bench.run import run_bench
from advisor.errors import BenchError
from advisor.report.bench import write_reports
from tests.bench import images
from tests.bench.conftest import TinyModel

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not all(shutil.which(t) for t in ("umoci", "skopeo", "runc", "mmdebstrap")),
        reason="needs umoci, skopeo, runc and mmdebstrap (apt-get install -y ...)",
    ),
]

FAST = dict(rounds=2, iterations=4, max_case_seconds=8.0, throughput_seconds=0.5,
            concurrency=(2,), load_requests=20, load_seconds=2.0, threads=1)  # fmt: skip


@pytest.fixture(scope="module")
def built(tiny_model: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    from advisor.slim.debian_base import ensure_debian_base

    # The slim image on the slim base, as `advisor export` builds it; the original on the
    # full base (its torch needs more of Debian than the slim closure keeps).
    slim_base = ensure_debian_base("slim").reference
    full_base = ensure_debian_base("full").reference
    tmp = tmp_path_factory.mktemp("bench-images")
    slim = images.build_slim(f"oci:{tmp / 'slim'}:latest", slim_base, tiny_model.onnx_dir)
    original = images.build_original(f"oci:{tmp / 'fat'}:latest", full_base, tiny_model.model_dir)
    return original, slim


@pytest.fixture(scope="module")
def report(built: tuple[str, str], tiny_model: TinyModel) -> BenchReport:
    original, slim = built
    steps: list[str] = []
    config = BenchConfig(original=original, slim=slim, data=tiny_model.names_csv, **FAST)  # type: ignore[arg-type]
    result = run_bench(config, progress=lambda d, t, what: steps.append(what))
    assert any("unpacking" in s for s in steps) and steps[-1] == "done"
    return result


def test_each_side_ran_in_its_own_image(report: BenchReport) -> None:
    o, s = report.original, report.slim
    assert o.model_path == "/srv/models/sentiment"  # found in the image, not named
    assert o.runtime == "torch" and "torch" in o.versions and "onnxruntime" not in o.versions
    assert s.runtime == "onnxruntime" and "onnxruntime" in s.versions
    assert o.versions["python"].startswith("3.11") and s.versions["python"].startswith("3.11")
    assert report.agreement == pytest.approx(1.0)
    assert o.accuracy == pytest.approx(s.accuracy)
    # the served process, not runc (~11 MB) in front of it: onnxruntime + tokenizers alone pass 30 MB
    assert o.peak_rss_bytes > s.peak_rss_bytes > 30_000_000, (o.peak_rss_bytes, s.peak_rss_bytes)
    assert s.load and s.load[0].errors == 0


def test_both_sides_ran_under_runc_and_the_report_says_so(report: BenchReport, tmp_path: Path) -> None:
    box = report.environment["sandbox"]
    assert box["runtime"] == "runc" and box["runc_version"]
    assert box["limits"].startswith(("cgroup", "rlimit")) and box["runs"] == 5
    assert 0 < box["start_ms_p50"] < 5000 and box["teardown_ms_p50"] >= 0
    md = write_reports(report, tmp_path)["markdown"].read_text()
    assert f"limits by {box['limits']}" in md and "ms more to start than the host's Python" in md


def test_sizes_come_from_the_images(report: BenchReport, built: tuple[str, str]) -> None:
    o, s = report.original.sizes, report.slim.sizes
    assert o is not None and s is not None
    assert o.reference and s.reference
    assert o.size_bytes > s.size_bytes + 500_000_000  # torch and its friends are in the original
    assert o.categories["python: torch"] > 300_000_000
    assert not any(k.startswith("python: torch") for k in s.categories)
    assert len(o.layers) == len(s.layers) - 1  # base + packages + model vs base + deps/model/app


def test_reports_on_a_real_run(report: BenchReport, tmp_path: Path) -> None:
    paths = write_reports(report, tmp_path)
    shutil.copytree(tmp_path, Path(tmp_path.parent, "kept-report"), dirs_exist_ok=True)
    doc = json.loads(paths["json"].read_text())
    assert doc["schema_version"] == 1
    assert doc["ratios"]["size_bytes"] < 0.5
    assert set(doc["original"]["latency_ms"]) == set(doc["slim"]["latency_ms"])
    assert "b32_s128" in paths["markdown"].read_text()


def test_an_image_that_cannot_run_is_a_build_error(
    built: tuple[str, str], tiny_model: TinyModel
) -> None:
    original, slim = built
    config = BenchConfig(
        original=original, slim=slim, data=tiny_model.data_csv,
        original_model_path="/etc", startup_timeout_s=120.0, **FAST,  # type: ignore[arg-type]
    )  # fmt: skip
    with pytest.raises(BenchError) as info:
        run_bench(config)
    assert info.value.exit_code == 6
    assert "cannot run its model /etc" in info.value.message
    assert "torch_probe.py" in info.value.hint  # the probe's own last lines say what went wrong
