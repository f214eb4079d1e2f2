from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor.slim.debian_base import base_key, dependency_closure, parse_status
from tests.slim.fixtures import NEEDS_ROOT_TOOLS

STATUS = """Package: python3.11
Status: install ok installed
Depends: python3.11-minimal (= 3.11.2), libc6 (>= 2.34) | libc6-udeb

Package: python3.11-minimal
Status: install ok installed
Pre-Depends: libc6 (>= 2.36)
Depends: libexpat1 (>= 2.1~beta3), zlib1g:amd64

Package: libc6
Status: install ok installed
Depends: libgcc-s1

Package: libgcc-s1
Status: install ok installed

Package: libexpat1
Status: install ok installed

Package: zlib1g
Status: install ok installed

Package: bash
Status: install ok installed
Depends: base-files

Package: removed
Status: deinstall ok config-files
"""


def test_closure_follows_depends_and_pre_depends_only() -> None:
    deps = parse_status(STATUS)
    assert "removed" not in deps
    closure = dependency_closure(deps, ["python3.11", "not-installed"])
    assert closure == {
        "python3.11",
        "python3.11-minimal",
        "libc6",
        "libgcc-s1",
        "libexpat1",
        "zlib1g",
    }


def test_key_changes_with_the_sources() -> None:
    assert base_key(b"deb a") != base_key(b"deb b")
    assert base_key(b"deb a") == base_key(b"deb a")


@pytest.mark.slow
@NEEDS_ROOT_TOOLS
def test_slim_base_keeps_python_and_drops_package_tools(debian_base: str) -> None:
    from advisor.oci.filetree import merge_layers
    from advisor.oci.layers import read_layers
    from advisor.oci.loader import open_image
    from advisor.slim.debian_base import ensure_debian_base

    full, slim = ensure_debian_base("full"), ensure_debian_base("slim")
    assert 0 < slim.size_bytes < full.size_bytes / 2
    image = open_image(slim.reference)
    try:
        tree = merge_layers(read_layers(image)).tree
    finally:
        image.close()
    assert tree.resolve("usr/bin/python3") == "usr/bin/python3.11"
    # merged /usr links and the ELF interpreter chain the kernel follows to start python
    assert (
        tree.resolve("lib64/ld-linux-x86-64.so.2")
        == "usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    )
    assert tree.get("bin") is not None and tree.get("lib") is not None
    assert "usr/lib/python3.11/encodings/__init__.py" in tree
    assert any(p.path.endswith("libstdc++.so.6") for p in tree)
    for gone in (
        "usr/bin/apt-get",
        "usr/bin/dpkg",
        "usr/bin/bash",
        "usr/bin/dash",
        "usr/bin/sh",
        "usr/bin/perl",
    ):
        assert gone not in tree, gone
    assert not any(p.path.startswith(("usr/share/doc/", "var/lib/dpkg/")) for p in tree)
    assert Path(full.layout, "index.json").exists()


def test_excluded_packages_are_neither_kept_nor_followed() -> None:
    closure = dependency_closure(parse_status(STATUS), ["python3.11"], exclude=["libc6"])
    assert "libc6" not in closure and "libgcc-s1" not in closure


@pytest.mark.slow
@NEEDS_ROOT_TOOLS
def test_the_slim_base_serves_pruned_deps(tiny_artifacts: Path, tmp_path: Path) -> None:
    """The default build ships only what the traced server loaded: onnxruntime's unloaded
    libonnxruntime.so, its converters and numpy's tests go; the image answers like the
    host's in-process model, to the last bit, on /predict and on /v2 infer."""

    from advisor.sandbox.runner import run_image
    from advisor.serve.model import Model
    from advisor.slim.debian_base import ensure_debian_base
    from advisor.slim.image import BuildConfig, build_serving_image

    slim = ensure_debian_base("slim").reference
    dest = f"oci:{tmp_path / 'img'}:v1"
    result = build_serving_image(BuildConfig(artifacts=tiny_artifacts, base=slim, destination=dest))
    deps = next(layer for layer in result.layers if layer.name == "deps")
    assert result.pruned == "loaded" and result.pruned_bytes > 40e6
    assert deps.size_bytes < 0.7 * result.packages_size_bytes
    texts = ["fine", "awful", "a gripping, beautifully shot film"]
    expected = [p.as_json() for p in Model(str(tiny_artifacts), 0).predict(texts)]
    with run_image(dest, timeout=120) as run:
        rootfs = run.bundle.rootfs
        assert not (rootfs / "app/deps/numpy/_core/tests").exists()
        assert not (rootfs / "app/deps/onnxruntime/transformers").exists()
        assert not list((rootfs / "app/deps/onnxruntime/capi").glob("libonnxruntime.so*"))
        assert (rootfs / "app/deps/numpy/_core/__init__.py").exists()
        assert list(rootfs.glob("app/deps/onnxruntime-*.dist-info/RECORD"))
        conn = run.connection(timeout=30)
        conn.request("POST", "/predict", body=json.dumps({"texts": texts}))
        resp = conn.getresponse()
        assert resp.status == 200 and json.loads(resp.read())["predictions"] == expected
        body = json.dumps({"inputs": [{"name": "text", "datatype": "BYTES", "shape": [3], "data": texts}]})
        conn.request("POST", "/v2/models/tiny-bert-test/infer", body=body)
        resp = conn.getresponse()
        outputs = {o["name"]: o["data"] for o in json.loads(resp.read())["outputs"]}
        assert outputs["label"] == [p["label"] for p in expected]
        conn.request("GET", "/metrics")
        assert b"advisor_http_requests_total" in conn.getresponse().read()
        conn.close()
    assert run.returncode == 0
