"""Models inside real images (written with advisor's image writer): found, copied out, exported."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from advisor.errors import BadInputError
from advisor.export import (
    ExportConfig,
    export_model,
    find_models_in_image,
    materialize_model_from_image,
)
from advisor.export.locate import merged_tree
from advisor.oci.loader import open_image
from tests.export.conftest import TinyFactory
from tests.oci.helpers import FileSpec, make_image

HF = "root/.cache/huggingface/hub/models--acme--tiny-sentiment"
REV = "0123abcd"


def _plain_layer(model: Path, prefix: str) -> dict[str, bytes | FileSpec]:
    return {f"{prefix}/{p.name}": FileSpec(source=p) for p in sorted(model.iterdir())}


def _hf_cache_layer(model: Path) -> dict[str, bytes | FileSpec]:
    layer: dict[str, bytes | FileSpec] = {}
    for p in sorted(model.iterdir()):
        blob = hashlib.sha256(p.read_bytes()).hexdigest()
        layer[f"{HF}/blobs/{blob}"] = FileSpec(source=p)
        layer[f"{HF}/snapshots/{REV}/{p.name}"] = FileSpec(symlink=f"../../blobs/{blob}")
    layer[f"{HF}/refs/main"] = REV.encode()
    return layer


@pytest.fixture
def image_ref(tiny_model: TinyFactory, tmp_path: Path) -> str:
    clf = tiny_model("bert", "text-classification")
    ner = tiny_model("distilbert", "token-classification")
    layers = [
        {"etc/app/config.json": b'{"workers": 2}', "usr/lib/x/config.json": b"not json"},
        _plain_layer(clf, "app/model"),
        _hf_cache_layer(ner),
        {"opt/lm/config.json": json.dumps({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}).encode(),
         "opt/lm/model.safetensors": b"\0" * 4096,
         "opt/noweights/config.json": b'{"model_type": "bert", "architectures": ["BertModel"]}'},
    ]
    return make_image(tmp_path, layers)


def test_finds_plain_and_hf_cache_models(image_ref: str, tiny_model: TinyFactory) -> None:
    image = open_image(image_ref)
    try:
        found = {m.path: m for m in find_models_in_image(image)}
    finally:
        image.source.close()
    assert set(found) == {"app/model", f"{HF}/snapshots/{REV}", "opt/lm"}
    plain = found["app/model"]
    assert (plain.model_type, plain.task, plain.supported) == ("bert", "text-classification", True)
    assert plain.weight_files == ("model.safetensors",)
    assert plain.weights_bytes == (tiny_model("bert", "text-classification") / "model.safetensors").stat().st_size
    cached = found[f"{HF}/snapshots/{REV}"]
    assert (cached.hf_name, cached.revision) == ("acme/tiny-sentiment", REV)
    assert (cached.model_type, cached.task, cached.supported) == ("distilbert", "token-classification", True)
    assert cached.weights_bytes > 0  # the size of the blob behind the symlink
    assert found["opt/lm"].supported is False


def test_materialize_and_export_from_image(image_ref: str, tiny_model: TinyFactory, tmp_path: Path) -> None:
    image = open_image(image_ref)
    try:
        tree = merged_tree(image)
        dest = materialize_model_from_image(image, f"/{HF}/snapshots/{REV}", tmp_path / "m", tree)
        plain = materialize_model_from_image(image, "app/model", tmp_path / "p", tree)
    finally:
        image.source.close()
    src = tiny_model("distilbert", "token-classification")
    assert sorted(p.name for p in dest.iterdir()) == sorted(p.name for p in src.iterdir())
    for p in dest.iterdir():
        assert not p.is_symlink()
        assert p.read_bytes() == (src / p.name).read_bytes()
        assert p.stat().st_mode & 0o777 == 0o644
    result = export_model(ExportConfig(model_dir=dest, artifacts_dir=tmp_path / "a", max_length=32))
    assert result.task == "token-classification"
    result = export_model(ExportConfig(model_dir=plain, artifacts_dir=tmp_path / "b", max_length=32,
                                       quantize="none"))
    assert result.architecture == "bert"


def test_materialize_rejects_a_folder_without_config(image_ref: str, tmp_path: Path) -> None:
    image = open_image(image_ref)
    try:
        with pytest.raises(BadInputError, match=r"no config\.json"):
            materialize_model_from_image(image, "etc", tmp_path / "m")
    finally:
        image.source.close()
