"""serving.json: what the export writes is what the one reader reads (the server, the slim
build and the bench all call ``read_serving``); a malformed file is one clear error."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from advisor.export.artifacts import ServingInfo
from advisor.serve.contract import ServingFileError, read_serving


def test_what_the_export_writes_reads_back(tmp_path: Path) -> None:
    info = ServingInfo(task="feature-extraction", model_name="mini", architecture="BertModel", max_length=64,
                       inputs=("input_ids", "attention_mask", "token_type_ids"), outputs=("last_hidden_state",),
                       quantization="int8", optimization="fused", pooling={"modes": ["mean"]})
    (tmp_path / "serving.json").write_text(json.dumps(info.as_dict("ab" * 32)))
    got = read_serving(tmp_path)
    assert (got.task, got.model_name, got.architecture, got.max_length) == ("feature-extraction", "mini", "BertModel", 64)
    assert got.inputs == ("input_ids", "attention_mask", "token_type_ids") and got.outputs == ("last_hidden_state",)
    assert (got.quantization, got.optimization, got.onnx_sha256) == ("int8", "fused", "ab" * 32)
    assert got.onnx_file == "model.onnx" and got.pooling == {"modes": ["mean"]} and got.advisor_version


@pytest.mark.parametrize(("text", "words"), [
    (None, "missing serving.json"),
    ("{not json", "not valid JSON"),
    ('{"schema_version": 2, "task": "x"}', "schema_version 1"),
    ('[1, 2]', "schema_version 1"),
    ('{"schema_version": 1, "task": "x", "max_length": "long"}', "serving.json:"),
])
def test_a_bad_file_is_one_error(tmp_path: Path, text: str | None, words: str) -> None:
    if text is not None:
        (tmp_path / "serving.json").write_text(text)
    with pytest.raises(ServingFileError, match=words):
        read_serving(tmp_path)
