from __future__ import annotations

import marshal
import shutil
from pathlib import Path

import numpy

from advisor.slim.probe import Libc, PythonTarget
from advisor.slim.wheels import compile_bytecode, default_requirements, target_args

TARGET = PythonTarget("/usr/bin/python3.11", (3, 11), "cp311", Libc("glibc", (2, 36)), "amd64", {})


def test_target_args_name_the_base_not_the_host() -> None:
    args = target_args(TARGET)
    assert args[:1] == ["--only-binary=:all:"]
    assert args[args.index("--python-version") : args.index("--python-version") + 2] == [
        "--python-version",
        "3.11",
    ]
    assert "--abi" in args and "cp311" in args
    assert "manylinux_2_36_x86_64" in args and "manylinux_2_37_x86_64" not in args


def test_requirements_are_pinned() -> None:
    reqs = default_requirements()
    assert [r.split("==")[0] for r in reqs] == [
        "onnxruntime", "numpy", "tokenizers", "uvicorn", "h11", "click", "prometheus_client"]
    assert all("==" in r for r in reqs)


def test_bytecode_is_reproducible_and_names_the_image_path(tmp_path: Path) -> None:
    src = Path(numpy.__file__).parent / "_core" / "arrayprint.py"
    digests = []
    for run in ("a", "b"):
        root = tmp_path / run
        (root / "numpy").mkdir(parents=True)
        shutil.copyfile(src, root / "numpy" / "arrayprint.py")
        assert compile_bytecode(root, "/app/deps", TARGET, [root / "numpy" / "arrayprint.py"])
        pyc = root / "numpy" / "__pycache__" / "arrayprint.cpython-311.pyc"
        data = pyc.read_bytes()
        assert int.from_bytes(data[4:8], "little") == 0b01  # hash-based, unchecked: no mtime inside
        assert marshal.loads(data[16:]).co_filename == "/app/deps/numpy/arrayprint.py"
        digests.append(data)
    assert digests[0] == digests[1]
