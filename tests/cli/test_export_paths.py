"""``export`` of an image named by its path alone (``./img.tar``, an OCI layout directory)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import run
from tests.oci.helpers import FileSpec, make_image


@pytest.mark.parametrize("fmt", ["docker-archive", "oci"])
def test_export_reads_an_image_named_by_its_path(tmp_path: Path, fmt: str) -> None:
    from tests.export.tiny import make_tiny_model

    model = make_tiny_model(tmp_path / "tiny", "bert", "text-classification")
    layer = {f"app/model/{p.name}": FileSpec(source=p) for p in sorted(model.iterdir())}
    ref = make_image(tmp_path, [{"etc/hostname": b"x\n"}, layer], fmt=fmt)  # type: ignore[arg-type]
    path = ref.split(":")[1]
    out = tmp_path / "artifacts"
    proc = run("export", path, "--artifacts", str(out), "--quantize", "none", "--graph", "unfused",
               "--max-length", "32", "--format", "json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["export"]["architecture"]
    assert (out / "model.onnx").is_file()
