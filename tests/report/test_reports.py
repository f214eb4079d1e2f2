"""Reports: the json contract, text and markdown content, and a self-contained HTML page
rendered by a real headless Chromium (non-blank screenshot, no console errors)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from advisor.advise.advice import Advice, build_advice
from advisor.errors import UsageError
from advisor.report.advise import render
from tests.advise.test_advice import _combined

CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--enable-logging=stderr", "--v=0")


@pytest.fixture(scope="module")
def advice() -> Advice:
    return build_advice(_combined(with_model=True).context())


def test_json_contract(advice: Advice) -> None:
    data = json.loads(render(advice, "json"))
    assert data["schema_version"] == 1
    assert {"reference", "digest", "os", "architecture", "size_bytes", "compressed_size_bytes"} <= set(data["image"])
    for layer in data["layers"]:
        assert {"index", "digest", "diff_id", "size_bytes", "compressed_size_bytes", "files", "created_by", "empty_layer"} <= set(layer)
    assert 0.0 <= data["efficiency"] <= 1.0 and isinstance(data["wasted_bytes"], int)
    assert data["python"]["environments"][0] == {"path": "/usr/local/lib/python3.11/site-packages", "python_version": "3.11",
                                                 "kind": "system", "root": "usr/local",
                                                 "size_bytes": data["python"]["environments"][0]["size_bytes"]}
    for d in data["python"]["distributions"]:
        assert {"name", "version", "size_bytes", "environment", "files"} <= set(d)
    for f in data["findings"]:
        assert {"rule", "severity", "bytes", "paths", "message"} <= set(f)
        assert f["severity"] in ("info", "low", "medium", "high", "critical")
    for r in data["recommendations"]:
        assert {"id", "title", "estimated_savings_bytes", "fix", "findings"} <= set(r)
        assert all(0 <= i < len(data["findings"]) for i in r["findings"])
    assert data["total_estimated_savings_bytes"] == sum(r["estimated_savings_bytes"] for r in data["recommendations"])
    assert sum(data["categories"].values()) == data["image"]["size_bytes"]


def test_text_and_markdown(advice: Advice) -> None:
    text = render(advice, "text")
    assert "Recommendations" in text and "ml-cuda-torch" in text and "Total estimated savings" in text
    md = render(advice, "markdown")
    assert md.startswith("# advisor report") and "| `ml-onnx-export` |" in md
    with pytest.raises(UsageError):
        render(advice, "yaml")


def test_html_is_self_contained(advice: Advice) -> None:
    page = render(advice, "html")
    assert page.startswith("<!DOCTYPE html>") and page.count("<svg") >= 3
    assert "<script" not in page and not re.search(r"""(src|href)=["']?(https?:)?//""", page)
    assert "Bytes by category" in page and "Bytes by layer" in page


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.fail("chromium is missing: apt-get install -y chromium")
    return exe


def _shoot(html: Path, out: Path) -> tuple[bytes, str]:
    png = out / "shot.png"
    argv = [_chromium(), *CHROMIUM_FLAGS, f"--user-data-dir={out / 'profile'}", f"--screenshot={png}",
            "--window-size=1200,1600", html.resolve().as_uri()]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return png.read_bytes(), proc.stderr


def _console_errors(log: str) -> list[str]:
    return [ln for ln in log.splitlines() if "CONSOLE" in ln or "Uncaught" in ln]


def _distinct_colours(png: bytes) -> int:
    import tempfile

    from tests.bench.chromium import png_pixels  # a small PNG decoder (stdlib only)

    with tempfile.NamedTemporaryFile(suffix=".png") as fh:
        fh.write(png)
        fh.flush()
        width, _h, rows = png_pixels(Path(fh.name))
    colours: set[bytes] = set()
    for row in rows[::8]:
        for x in range(0, width * 3, 3 * 8):
            colours.add(row[x:x + 3])
    return len(colours)


@pytest.mark.slow
def test_html_renders_in_headless_chromium(advice: Advice, tmp_path: Path) -> None:
    page = tmp_path / "report.html"
    page.write_text(render(advice, "html"), encoding="utf-8")
    png, log = _shoot(page, tmp_path)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert _distinct_colours(png) >= 6, "screenshot looks blank"
    assert _console_errors(log) == [], _console_errors(log)


@pytest.mark.slow
def test_console_error_detector_catches_errors(tmp_path: Path) -> None:
    page = tmp_path / "bad.html"
    page.write_text("<!DOCTYPE html><html><body><p>x</p><script>console.error('boom');undefinedFn()</script></body></html>")
    _png, log = _shoot(page, tmp_path)
    assert _console_errors(log), "a page with console errors must be caught"
