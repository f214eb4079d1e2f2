"""A real, small benchmark end to end: the tiny torch model against its ONNX export served by
advisor's own server (both on the host's Python), then the three reports, the HTML rendered
in headless Chromium."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from advisor.bench.data import load_csv
from advisor.bench.measure import Measured, OriginalSpec, SlimSpec, measure
from advisor.bench.model import BenchConfig, BenchReport
from advisor.bench.run import assemble
from advisor.bench.sizes import measure_sizes
from advisor.report.bench import report_json, write_reports
from advisor.sandbox.environment import Sandbox
from tests.bench import chromium
from tests.bench.conftest import LABELS, TinyModel
from tests.oci.helpers import make_image

CONFIG = BenchConfig(
    original="host:tiny-torch", slim="host:tiny-onnx", rounds=2, iterations=6,
    max_case_seconds=10.0, throughput_seconds=0.3, concurrency=(1, 3), load_requests=30,
    load_seconds=3.0, startup_timeout_s=180.0, threads=1,
)  # fmt: skip
PROGRESS: list[tuple[int, int, str]] = []


def _specs(tiny: TinyModel) -> tuple[OriginalSpec, SlimSpec]:
    py = sys.executable
    original = OriginalSpec("host:tiny-torch", Sandbox("original", python=py), str(tiny.model_dir))
    onnx = tiny.onnx_dir
    slim_box = Sandbox(
        "slim", python=py, command=(py, "-m", "advisor.serve"),
        env={"MODEL_DIR": str(onnx), "ORT_INTRA_OP_THREADS": "1"},
    )  # fmt: skip
    slim = SlimSpec(
        "host:tiny-onnx", slim_box, str(onnx / "model.onnx"), str(onnx / "tokenizer.json"), LABELS
    )
    return original, slim


def _images(tmp: Path, tiny: TinyModel) -> tuple[str, str]:
    """Real images holding the two model folders, so the size sections have something to show."""
    hf = {f"app/model/{p.name}": p.read_bytes() for p in tiny.model_dir.iterdir()}
    onnx = {f"app/model/{p.name}": p.read_bytes() for p in tiny.onnx_dir.iterdir()}
    base = {"usr/bin/python3": b"\x7fELF" + b"x" * 50_000}
    fat = make_image(
        tmp,
        [base, {"usr/lib/python3/dist-packages/torch/lib.so": b"t" * 300_000}, hf],
        name="fat",
        history=["FROM debian", "RUN pip install torch", "COPY model /app/model"],
    )
    slim = make_image(
        tmp, [base, onnx], name="slim", history=["FROM debian", "COPY model /app/model"]
    )
    return fat, slim


@pytest.fixture(scope="module")
def measured(tiny_model: TinyModel, tmp_path_factory: pytest.TempPathFactory) -> Measured:
    original, slim = _specs(tiny_model)
    data = load_csv(tiny_model.data_csv)
    work = tmp_path_factory.mktemp("measure")
    return measure(original, slim, data, CONFIG, work, lambda d, t, w: PROGRESS.append((d, t, w)))


@pytest.fixture(scope="module")
def report(
    measured: Measured, tiny_model: TinyModel, tmp_path_factory: pytest.TempPathFactory
) -> BenchReport:
    tmp = tmp_path_factory.mktemp("images")
    fat, slim = _images(tmp, tiny_model)
    advice = tmp / "advice.json"
    advice.write_text(json.dumps({
        "schema_version": 1, "image": {"reference": fat, "size_bytes": 1_000_000},
        "recommendations": [
            {"id": "ml-onnx-export", "title": "Export to ONNX", "estimated_savings_bytes": 600_000},
            {"id": "py-pip-cache", "title": "Drop the pip cache", "estimated_savings_bytes": 100_000},
        ],
        "total_estimated_savings_bytes": 700_000,
    }))  # fmt: skip
    config = BenchConfig(original=fat, slim=slim, advice=advice)
    sizes = (measure_sizes(fat), measure_sizes(slim))
    return assemble(measured, sizes, config, str(tiny_model.data_csv), 24)


@pytest.fixture(scope="module")
def written(
    report: BenchReport, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[dict[str, Path]]:
    yield write_reports(report, tmp_path_factory.mktemp("report") / "out")


def test_every_measurement_is_there_and_plausible(measured: Measured) -> None:
    o, s = measured.original, measured.slim
    cases = {c.name for c in CONFIG.cases}
    assert set(o.latency) == set(s.latency) == set(s.http_latency) == cases
    for side in (o, s):
        assert 0 < side.cold_start_s < 180
        assert side.peak_rss_bytes > 20_000_000
        assert side.throughput_per_s > 0
        for summary in side.latency.values():
            assert summary.count == 6  # 2 rounds x 3 samples
            assert 0 < summary.p50 <= summary.p95 <= summary.p99
    # torch is imported only by the original: its process is the heavier one.
    assert o.peak_rss_bytes > s.peak_rss_bytes
    assert len(o.predictions) == len(s.predictions) == 24
    assert measured.agreement == pytest.approx(1.0)  # same fp32 weights, two runtimes
    assert o.accuracy == pytest.approx(s.accuracy)
    assert [r.concurrency for r in s.load] == [1, 3]
    assert all(r.errors == 0 and r.requests > 0 and r.throughput_per_s > 0 for r in s.load)


def test_progress_reaches_its_total() -> None:
    assert PROGRESS, "no progress reported"
    done, total, _ = PROGRESS[-1]
    assert done == total > 0
    assert [d for d, _, _ in PROGRESS] == sorted(d for d, _, _ in PROGRESS)


def test_report_json_holds_the_contract(report: BenchReport, written: dict[str, Path]) -> None:
    doc = json.loads(written["json"].read_text())
    assert doc == json.loads(json.dumps(report_json(report)))
    assert doc["schema_version"] == 1
    assert 0.0 <= doc["agreement"] <= 1.0
    contract = {
        "reference",
        "size_bytes",
        "compressed_size_bytes",
        "accuracy",
        "cold_start_s",
        "peak_rss_bytes",
        "latency_ms",
        "throughput_per_s",
    }
    for side in ("original", "slim"):
        assert contract <= set(doc[side])
        assert isinstance(doc[side]["size_bytes"], int) and doc[side]["size_bytes"] > 0
        assert set(doc[side]["latency_ms"]) == set(doc["cases"])
        for lat in doc[side]["latency_ms"].values():
            assert {"p50", "p95", "p99"} <= set(lat)
    assert doc["original"]["size_bytes"] > doc["slim"]["size_bytes"]
    assert doc["ratios"]["size_bytes"] == pytest.approx(
        doc["slim"]["size_bytes"] / doc["original"]["size_bytes"], rel=1e-3
    )
    assert set(doc["slim"]["http_latency_ms"]) == set(doc["cases"])
    assert [s["size_after_bytes"] for s in doc["advice"]["recommendations"]] == [400_000, 300_000]


def test_markdown_has_the_tables(written: dict[str, Path]) -> None:
    md = written["markdown"].read_text()
    for heading in (
        "## Summary",
        "## Latency per case",
        "## Slim server under load",
        "### Layers of the original image",
        "## Recommendations",
        "## How this was measured",
    ):
        assert heading in md
    assert "| b32_s128 |" in md and "slim/original" in md
    rows = [line for line in md.splitlines() if line.startswith("|")]
    for line in rows:  # every table row is well formed
        assert line.endswith("|")


def test_html_is_self_contained(written: dict[str, Path]) -> None:
    html = written["html"].read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html.lower()
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
    assert html.count("<svg") >= 4 + 3 + 3  # a latency plot per case, size plots, resource bars
    assert "size after each recommendation" in html


@pytest.mark.skipif(
    chromium.chromium() is None, reason="chromium is not installed (apt-get install -y chromium)"
)
def test_html_renders_in_headless_chromium(written: dict[str, Path], tmp_path: Path) -> None:
    rendered = chromium.render(written["html"], tmp_path, width=900, height=1400)
    assert "CONSOLE" not in rendered.log, rendered.log[-2000:]
    assert "ERR_" not in rendered.log, rendered.log[-2000:]
    width, height, rows = chromium.png_pixels(rendered.png)
    assert (width, height) == (900, 1400)
    colours = {row[i : i + 3] for row in rows[::7] for i in range(0, len(row), 21)}
    assert len(colours) > 20, "the page rendered blank"
    # The original's orange bars must appear on the page (the plots drew, not just text).
    orange = bytes.fromhex("e8590c")
    assert any(orange in row for row in rows), "no plot colour in the screenshot"


def test_model_vs_model_on_this_machine(tiny_model: TinyModel, tmp_path: Path) -> None:
    """Folders instead of images: the host's torch vs advisor's server on the artifacts."""
    from advisor.bench.cases import BenchCase
    from advisor.bench.run import run_bench

    config = BenchConfig(
        original=str(tiny_model.model_dir), slim=str(tiny_model.onnx_dir), data=tiny_model.names_csv,
        cases=(BenchCase(2, 16),), rounds=1, iterations=3, throughput_seconds=0.2,
        concurrency=(1,), load_requests=5, load_seconds=1.0, threads=1,
    )  # fmt: skip
    result = run_bench(config)
    doc = report_json(result)
    assert doc["original"]["size_bytes"] is None and doc["slim"]["size_bytes"] is None
    assert set(doc["original"]["latency_ms"]) == set(doc["slim"]["latency_ms"]) == {"b2_s16"}
    assert doc["agreement"] == pytest.approx(1.0)
    paths = write_reports(result, tmp_path)
    assert "no sizes" in paths["html"].read_text()
    assert "n/a" in paths["markdown"].read_text()
