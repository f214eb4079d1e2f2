"""sentence-transformers folders, built in the test, exported and served like ``encode`` does.

Each folder wraps a tiny random BERT (``modules.json``: Transformer, Pooling, optional
Normalize). The reference is sentence-transformers itself loading the same folder; the
candidate is advisor's artifacts run by the serving image's own ``Model`` (onnxruntime and
tokenizers only).
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from advisor.errors import ExportError
from advisor.export import ExportConfig, export_model
from advisor.serve.model import Model
from tests.export.conftest import TinyFactory

TEXTS = ["a good movie", "bad plot and a boring story", "the actor was great",
         "not good not bad", "this is really a very very nice scene and a great film"]
MODULE = "sentence_transformers.models."


def make_folder(tiny: Path, dest: Path, modes: list[str], normalize: bool,
                legacy_keys: bool = False, extra: str | None = None) -> Path:
    shutil.copytree(tiny, dest)
    modules = [{"idx": 0, "name": "0", "path": "", "type": MODULE + "Transformer"},
               {"idx": 1, "name": "1", "path": "1_Pooling", "type": MODULE + "Pooling"}]
    if normalize:
        modules.append({"idx": 2, "name": "2", "path": "2_Normalize", "type": MODULE + "Normalize"})
        (dest / "2_Normalize").mkdir()
    if extra:
        modules.append({"idx": len(modules), "name": "x", "path": f"x_{extra}", "type": MODULE + extra})
    (dest / "modules.json").write_text(json.dumps(modules))
    (dest / "1_Pooling").mkdir()
    pooling: dict[str, object] = {"embedding_dimension": 32, "pooling_mode": modes}
    if legacy_keys:
        names = {"cls": "cls_token", "max": "max_tokens", "mean": "mean_tokens",
                 "mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                 "weightedmean": "weightedmean_tokens", "lasttoken": "lasttoken"}
        pooling = {"word_embedding_dimension": 32,
                   **{f"pooling_mode_{v}": k in modes for k, v in names.items()}}
    (dest / "1_Pooling" / "config.json").write_text(json.dumps(pooling))
    (dest / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 48,
                                                                "do_lower_case": False}))
    return dest


def st_encode(folder: Path) -> np.ndarray:
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(folder), device="cpu")
    return np.asarray(model.encode(TEXTS, convert_to_numpy=True, batch_size=8))


def served(artifacts: Path) -> np.ndarray:
    model = Model(str(artifacts), intra_op_threads=1)
    return np.array([r.as_json()["embedding"] for r in model.predict(TEXTS)])


@pytest.mark.parametrize(("modes", "normalize", "legacy"), [
    (["mean"], True, False),
    (["cls"], False, False),
    (["max"], True, True),
    (["lasttoken"], False, False),
    (["weightedmean"], True, False),
    (["mean_sqrt_len_tokens"], False, True),
    (["cls", "mean"], True, False),
])
def test_export_serves_what_sentence_transformers_encodes(
        tiny_model: TinyFactory, tmp_path: Path, modes: list[str], normalize: bool,
        legacy: bool) -> None:
    folder = make_folder(tiny_model("bert", "feature-extraction"), tmp_path / "st", modes,
                         normalize, legacy)
    out = tmp_path / "artifacts"
    result = export_model(ExportConfig(model_dir=folder, artifacts_dir=out, quantize="none"))
    serving = json.loads((out / "serving.json").read_text())
    assert serving["task"] == "feature-extraction"
    assert serving["pooling"] == {"modes": modes, "normalize": normalize,
                                  "source": "sentence-transformers"}
    assert serving["max_length"] == 48  # the folder's own max_seq_length
    assert result.validation["pooling"] == serving["pooling"]
    expected, got = st_encode(folder), served(out)
    assert got.shape == expected.shape == (len(TEXTS), 32 * len(modes))
    np.testing.assert_allclose(got, expected, atol=1e-5, rtol=1e-4)
    if normalize:
        np.testing.assert_allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_int8_embeddings_stay_close_to_sentence_transformers(tiny_model: TinyFactory,
                                                             tmp_path: Path) -> None:
    folder = make_folder(tiny_model("bert", "feature-extraction"), tmp_path / "st", ["mean"], True)
    out = tmp_path / "artifacts"
    export_model(ExportConfig(model_dir=folder, artifacts_dir=out))
    expected, got = st_encode(folder), served(out)
    cosine = (expected * got).sum(axis=1)  # both unit length
    assert cosine.min() > 0.98, cosine


@pytest.mark.parametrize("module", ["Dense", "LayerNorm"])
def test_a_module_advisor_does_not_export_is_refused_by_name(tiny_model: TinyFactory,
                                                             tmp_path: Path, module: str) -> None:
    folder = make_folder(tiny_model("bert", "feature-extraction"), tmp_path / "st", ["mean"],
                         False, extra=module)
    with pytest.raises(ExportError) as info:
        export_model(ExportConfig(model_dir=folder, artifacts_dir=tmp_path / "out"))
    assert module in str(info.value) and info.value.exit_code == 5
    assert not (tmp_path / "out").exists()
