"""advise on the layout advisor's own slim image has (/app/deps on PYTHONPATH beside /app,
bytecode precompiled on purpose): no finding for what was done on purpose, none twice."""

from __future__ import annotations

import importlib.util
import py_compile
from pathlib import Path

from advisor.advise.advice import build_advice
from advisor.advise.pipeline import AdviseConfig, run
from tests.advise.rules import fixtures as fx
from tests.oci.helpers import make_image

SLIM_ENV = ["PYTHONPATH=/app/deps:/app", "PYTHONDONTWRITEBYTECODE=1"]


def _pyc(tmp_path: Path, name: str, mode: py_compile.PycInvalidationMode) -> bytes:
    src = tmp_path / f"{name}.py"
    src.write_text("VALUE = 1\n" * 50)
    out = Path(importlib.util.cache_from_source(str(src)))
    py_compile.compile(str(src), cfile=str(out), doraise=True, invalidation_mode=mode)
    return out.read_bytes()


def test_precompiled_bytecode_is_not_flagged(tmp_path: Path) -> None:
    unchecked = _pyc(tmp_path, "server", py_compile.PycInvalidationMode.UNCHECKED_HASH)
    stamped = _pyc(tmp_path, "left", py_compile.PycInvalidationMode.TIMESTAMP)
    layers = [{
        "app/deps/onnxruntime/__init__.py": b"x = 1\n",
        "app/deps/onnxruntime/__pycache__/__init__.cpython-311.pyc": unchecked,  # advisor's own
        "app/deps/numpy/__pycache__/core.cpython-311.pyc": unchecked,
        "app/deps/numpy/core.py": b"y = 2\n",
        "srv/tool/__pycache__/left.cpython-311.pyc": stamped,  # what a run leaves behind
        "srv/tool/left.py": b"z = 3\n",
    }]
    ref = make_image(tmp_path, layers, config={"config": {"Env": SLIM_ENV}})
    a = run(AdviseConfig(ref, use_cache=False))
    found = [f for f in a.findings if f.rule == "py-bytecode"]
    assert [f.paths for f in found] == [("srv",)]
    assert all("app/deps" not in p for f in found for p in f.frees)


def test_site_tests_listed_once_with_nested_environments() -> None:
    files: fx.Files = {
        **fx.dist("numpy", "2.1.0", {"numpy/core.py": 1000, "numpy/tests/test_core.py": 5000,
                                     "numpy/linalg/tests/test_la.py": 3000}, site="app/deps"),
        "app/server.py": 100,
    }
    img = fx.Img([{**fx.python_base(), **files}], env=SLIM_ENV)
    found = [f for f in build_advice(img.context()).findings if f.rule == "py-tests-in-site-packages"]
    assert len(found) == 1, [(f.paths, f.message) for f in found]
    assert found[0].paths == ("app/deps/numpy/linalg/tests", "app/deps/numpy/tests")
    assert found[0].bytes == 8000
