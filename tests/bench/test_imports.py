from __future__ import annotations

import subprocess
import sys


def test_bench_imports_no_ml_stack_on_the_host() -> None:
    """torch/onnxruntime run inside the images; the CLI's host process never loads them."""
    code = (
        "import sys, advisor.bench, advisor.report.bench.html, advisor.bench.measure;"
        "heavy = [m for m in ('torch', 'transformers', 'onnxruntime', 'onnx', 'numpy', 'tokenizers')"
        " if m in sys.modules]; print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_probes_import_nothing_from_advisor() -> None:
    """The probes run with the image's own Python, where advisor is not installed."""
    from advisor.bench.probes import PROBE_FILES, PROBES_DIR

    for name in PROBE_FILES:
        text = (PROBES_DIR / name).read_text()
        assert "import advisor" not in text and "from advisor" not in text, name
