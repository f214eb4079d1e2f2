from __future__ import annotations

import json
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from advisor.errors import BuildError
from advisor.oci.filetree import FileTree, merge_layers
from advisor.oci.layers import read_layers
from advisor.oci.loader import open_image
from advisor.oci.writer import write_image
from advisor.slim.image import BuildConfig, BuildResult, build_serving_image
from tests.slim.fixtures import NEEDS_ROOT_TOOLS


def skopeo_inspect(ref: str, *flags: str) -> dict[str, Any]:
    out = subprocess.run(
        ["skopeo", "inspect", *flags, ref], check=True, capture_output=True, text=True, timeout=120
    )
    return json.loads(out.stdout)


def test_a_base_without_python_is_refused(tmp_path: Path, tiny_artifacts: Path) -> None:
    elf = b"\x7fELF\x02\x01\x01" + b"\0" * 9 + struct.pack("<HH", 2, 62) + b"\0" * 40
    base = f"oci:{tmp_path / 'base'}:v1"
    write_image(
        base, [{"bin/busybox": elf, "etc/passwd": b"root:x:0:0::/:/bin/sh\n"}], {"config": {}}
    )
    with pytest.raises(BuildError, match="no usable Python 3") as err:
        build_serving_image(
            BuildConfig(
                artifacts=tiny_artifacts, base=base, destination=f"oci:{tmp_path / 'out'}:v1"
            )
        )
    assert err.value.hint and "--base" in err.value.hint
    assert not (tmp_path / "out").exists()


@pytest.fixture(scope="module")
def tree(built: BuildResult) -> FileTree:
    image = open_image(built.destination)
    try:
        return merge_layers(read_layers(image)).tree
    finally:
        image.close()


@pytest.mark.slow
@NEEDS_ROOT_TOOLS
def test_layers_and_sizes(built: BuildResult) -> None:
    assert [layer.name for layer in built.layers] == ["deps", "model", "app"]
    assert built.target.abi == "cp311" and built.target.libc.flavour == "glibc"
    expected = built.packages_size_bytes + built.model_size_bytes
    assert built.added_size_bytes <= 1.1 * expected  # the target
    assert built.bytecode == "imported"


@pytest.mark.slow
@NEEDS_ROOT_TOOLS
def test_image_holds_no_torch_transformers_pip_or_host_leftovers(tree: FileTree) -> None:
    paths = [f.path for f in tree]
    deps = [p for p in paths if p.startswith("app/deps/")]
    tops = {p.split("/")[2] for p in deps}
    assert {"onnxruntime", "numpy", "tokenizers"} <= tops
    assert not any(
        t.startswith(("torch", "transformers", "huggingface_hub", "pip", "sympy")) for t in tops
    )
    heavy = re.compile(
        r"(^|/)(site-packages|dist-packages|deps)/(torch|transformers|pip)([-_./]|$)"
    )
    assert not [p for p in paths if heavy.search(p)]
    assert not any(".cache/pip" in p or p.endswith("direct_url.json") for p in paths)
    assert "app/deps/bin" not in tree
    tools = ("gcc", "cc", "g++", "pip", "pip3")
    assert not [p for p in paths if "/bin/" in f"/{p}" and p.rsplit("/", 1)[-1] in tools]
    assert "app/model/model.onnx" in tree and "app/advisor/serve/server.py" in tree
    assert any(p.startswith("app/deps/numpy/") and p.endswith(".cpython-311.pyc") for p in paths)
    assert "app/advisor/serve/__pycache__/server.cpython-311.pyc" in tree


@pytest.mark.slow
@NEEDS_ROOT_TOOLS
def test_config_runs_as_non_root_with_port_labels_and_healthcheck(
    built: BuildResult, tree: FileTree
) -> None:
    info = skopeo_inspect(built.destination, "--config", "--raw")
    cfg = info["config"]
    assert cfg["User"] == "10001:10001"
    assert cfg["ExposedPorts"] == {"8080/tcp": {}}
    assert cfg["Entrypoint"] == ["/usr/bin/python3.11", "-m", "advisor.serve"]
    assert "PORT=8080" in cfg["Env"] and "MODEL_DIR=/app/model" in cfg["Env"]
    # not baked by default: the server sizes its workers to the CPUs where it runs
    assert not [e for e in cfg["Env"] if e.startswith(("WORKERS=", "ORT_INTRA_OP_THREADS="))]
    assert cfg["Labels"]["org.opencontainers.image.base.digest"].startswith("sha256:")
    assert cfg["Labels"]["io.advisor.model.onnx-sha256"]
    assert cfg["Healthcheck"]["Test"][0] == "CMD"
    passwd = tree.read("etc/passwd")
    assert passwd is None or b"advisor:x:10001:10001:" in passwd


@pytest.mark.slow
@NEEDS_ROOT_TOOLS
def test_same_inputs_same_digest(
    built: BuildResult, tiny_artifacts: Path, debian_base: str, tmp_path: Path
) -> None:
    again = build_serving_image(
        BuildConfig(
            artifacts=tiny_artifacts, base=debian_base, destination=f"oci:{tmp_path / 'again'}:v1"
        )
    )
    assert again.manifest_digest == built.manifest_digest
    assert [layer.digest for layer in again.layers] == [layer.digest for layer in built.layers]


@pytest.mark.slow
@NEEDS_ROOT_TOOLS
def test_skopeo_accepts_every_output_format(
    built: BuildResult, tiny_artifacts: Path, debian_base: str, tmp_path: Path, registry: Any
) -> None:
    assert skopeo_inspect(built.destination)["Digest"] == built.manifest_digest
    archive = f"docker-archive:{tmp_path / 'img.tar'}:advisor/slim:v1"
    build_serving_image(
        BuildConfig(artifacts=tiny_artifacts, base=debian_base, destination=archive)
    )
    assert skopeo_inspect(archive)["Architecture"] == "amd64"
    pushed = f"docker://{registry.host}/advisor/slim:v1"
    result = build_serving_image(
        BuildConfig(artifacts=tiny_artifacts, base=debian_base, destination=pushed)
    )
    remote = skopeo_inspect(pushed, "--tls-verify=false")
    assert remote["Digest"] == result.manifest_digest == built.manifest_digest


def test_unserved_task_fails_before_reading_the_base(tmp_path: Path, tiny_artifacts: Path) -> None:
    art = tmp_path / "art"
    shutil.copytree(tiny_artifacts, art)
    serving = json.loads((art / "serving.json").read_text()) | {"task": "image-segmentation"}
    (art / "serving.json").write_text(json.dumps(serving))
    with pytest.raises(BuildError, match="image-segmentation"):
        build_serving_image(
            BuildConfig(
                artifacts=art, base="oci:/nonexistent:v1", destination=f"oci:{tmp_path / 'o'}:v1"
            )
        )
