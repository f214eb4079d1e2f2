from __future__ import annotations

from pathlib import Path

import pytest

from advisor.bench.sizes import area_of, measure_sizes
from tests.oci.helpers import FileSpec, make_image_written

LAYERS = [
    {
        "usr/bin/python3": b"\x7fELF" + b"p" * 996,
        "usr/local/lib/python3.11/site-packages/torch/lib/libtorch.so": b"t" * 5000,
        "usr/local/lib/python3.11/site-packages/torch/__init__.py": b"i" * 100,
        "tmp/cache.bin": b"c" * 3000,
    },
    {
        "app/model/model.safetensors": b"w" * 4000,
        "app/model/config.json": b"{}",
        "app/deps/tokenizers/tokenizers.so": b"k" * 700,
        "app/deps/tokenizers-0.23.3.dist-info/RECORD": b"r" * 10,
        "tmp/cache.bin": FileSpec(whiteout=True),
    },
]


@pytest.mark.parametrize("fmt", ["oci", "docker-archive"])
def test_sizes_of_a_real_image(tmp_path: Path, fmt: str) -> None:
    ref, written = make_image_written(
        tmp_path,
        LAYERS,
        fmt=fmt,
        history=["RUN install python torch", "COPY model /app/model"],  # type: ignore[arg-type]
    )
    sizes = measure_sizes(ref)
    # The whiteout removes the cache from the merged filesystem, not from layer 0's bytes.
    assert sizes.size_bytes == 1000 + 5000 + 100 + 4000 + 2 + 710
    assert sizes.layers_size_bytes == sizes.size_bytes + 3000
    assert sizes.file_count == 7
    assert [layer.size_bytes for layer in sizes.layers] == [9100, 4712]
    assert [layer.files for layer in sizes.layers] == [4, 4]
    assert [layer.created_by for layer in sizes.layers] == [
        "RUN install python torch",
        "COPY model /app/model",
    ]
    assert sizes.compressed_size_bytes == sum(b.size for b in written.layers)
    assert sizes.categories["python: torch"] == 5100
    assert sizes.categories["model weights"] == 4000
    assert sizes.categories["python: tokenizers"] == 710  # a `pip install --target` folder
    assert sum(sizes.categories.values()) == sizes.size_bytes
    pull = sizes.pull_seconds()
    assert pull["1 Gbit/s"] == pytest.approx(sizes.compressed_size_bytes * 8 / 1e9)
    assert pull["100 Mbit/s"] == pytest.approx(10 * pull["1 Gbit/s"])


def test_areas() -> None:
    assert (
        area_of("app/deps/onnxruntime/capi/x.so", frozenset({"app/deps"})) == "python: onnxruntime"
    )
    assert area_of("app/deps/onnxruntime/capi/x.so") == "/app"
    assert area_of("usr/lib/python3/dist-packages/numpy/core.so") == "python: numpy"
    assert (
        area_of("opt/venv/lib/python3.11/site-packages/nvidia/cublas/lib/x.so") == "python: nvidia"
    )
    assert area_of("app/model/model.onnx") == "model weights"
    assert area_of("usr/lib/python3/dist-packages/torch/lib/x.bin") == "python: torch"
    assert area_of("usr/lib/x86_64-linux-gnu/libc.so.6") == "/usr/lib"
    assert area_of("etc/passwd") == "/etc"
