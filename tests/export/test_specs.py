"""The declared architectures and tasks, and the guarantee that each one is tested."""

from __future__ import annotations

import pytest

from advisor.errors import ExportError
from advisor.export.specs import (
    ARCHITECTURES,
    TASKS,
    arch_spec,
    dynamic_axes,
    infer_task,
    task_spec,
)
from tests.export import test_pipeline_tiny
from tests.export.tiny import TINY_ARCHS


def test_every_declared_architecture_has_a_tiny_model_test() -> None:
    tested = {arch for arch, _ in test_pipeline_tiny.MATRIX}
    assert tested == set(ARCHITECTURES), f"untested: {set(ARCHITECTURES) - tested}"
    assert set(TINY_ARCHS) == set(ARCHITECTURES)


def test_every_declared_task_is_tested() -> None:
    assert {task for _, task in test_pipeline_tiny.MATRIX} == set(TASKS)


@pytest.mark.parametrize(("archs", "task"), [
    (["BertForSequenceClassification"], "text-classification"),
    (["DistilBertForTokenClassification"], "token-classification"),
    (["RobertaModel"], "feature-extraction"),
    (["SomethingElse", "ElectraForSequenceClassification"], "text-classification"),
])
def test_infer_task_from_architectures(archs: list[str], task: str) -> None:
    assert infer_task(archs).name == task


def test_unknown_head_names_what_is_supported() -> None:
    with pytest.raises(ExportError) as info:
        infer_task(["BertForMaskedLM"])
    assert "text-classification" in info.value.hint


def test_unsupported_model_type_names_what_is_supported() -> None:
    with pytest.raises(ExportError) as info:
        arch_spec("gpt2")
    assert "gpt2" in str(info.value)
    assert "bert" in info.value.hint and "roberta" in info.value.hint
    with pytest.raises(ExportError):
        task_spec("translation")


def test_dynamic_axes_cover_batch_and_sequence() -> None:
    axes = dynamic_axes(ARCHITECTURES["bert"], TASKS["token-classification"])
    assert axes["input_ids"] == {0: "batch", 1: "sequence"}
    assert axes["token_type_ids"] == {0: "batch", 1: "sequence"}
    assert axes["logits"] == {0: "batch", 1: "sequence"}
    assert dynamic_axes(ARCHITECTURES["distilbert"], TASKS["text-classification"])["logits"] == {0: "batch"}


def test_importing_the_export_api_stays_light() -> None:
    # `advisor advise` imports advisor.export (model detection): torch & co load only on export.
    import subprocess
    import sys

    code = ("import sys, advisor.export; heavy = {'torch', 'onnx', 'onnxruntime', 'transformers', "
            "'numpy', 'tokenizers'}; print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
