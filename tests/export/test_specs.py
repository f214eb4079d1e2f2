"""The declared architectures and tasks, the one verdict, and the guarantee each type is tested."""

from __future__ import annotations

import pytest

from advisor.errors import ExportError
from advisor.export.specs import (
    ARCHITECTURES,
    REFUSED,
    TASKS,
    arch_spec,
    dynamic_axes,
    infer_task,
    judge,
    task_spec,
)
from tests.export import test_architectures
from tests.export.tiny import tiny_config

# The encoders issue 13 names: each must be exported, not only listed.
NAMED = ("xlm-roberta", "camembert", "deberta", "deberta-v2", "mpnet", "modernbert", "mobilebert",
         "squeezebert", "convbert", "roformer", "megatron-bert", "data2vec-text", "ernie",
         "rembert", "funnel", "big_bird", "xlm", "flaubert", "fnet", "ibert", "bert",
         "distilbert", "roberta", "albert", "electra")


def test_at_least_thirty_encoder_types_among_them_the_named_ones() -> None:
    assert len(ARCHITECTURES) >= 30
    assert set(NAMED) <= set(ARCHITECTURES)
    assert not set(ARCHITECTURES) & set(REFUSED)


def test_every_declared_architecture_has_a_tiny_model_test() -> None:
    assert {arch for arch, _ in test_architectures.MATRIX} == set(ARCHITECTURES)
    assert {task for _, task in test_architectures.MATRIX} == set(TASKS)


@pytest.mark.parametrize("arch", sorted(ARCHITECTURES))
def test_every_declared_architecture_has_a_tiny_config(arch: str) -> None:
    config = tiny_config(arch, "text-classification")
    assert config.model_type == arch
    assert judge({"model_type": arch, "architectures": ["XForSequenceClassification"]}).ok


def test_a_tolerance_other_than_the_default_says_why() -> None:
    for spec in ARCHITECTURES.values():
        assert spec.atol == 1e-4 or spec.atol_reason, spec.model_type
        assert spec.exporters and set(spec.exporters) <= {"legacy", "dynamo"}


@pytest.mark.parametrize(("archs", "task"), [
    (["BertForSequenceClassification"], "text-classification"),
    (["DistilBertForTokenClassification"], "token-classification"),
    (["RobertaModel"], "feature-extraction"),
    (["SomethingElse", "ElectraForSequenceClassification"], "text-classification"),
])
def test_infer_task_from_architectures(archs: list[str], task: str) -> None:
    assert infer_task(archs).name == task
    assert judge({"model_type": "bert", "architectures": archs}).task == task


def test_unknown_head_names_what_is_supported() -> None:
    with pytest.raises(ExportError) as info:
        infer_task(["BertForMaskedLM"])
    assert "text-classification" in info.value.hint


@pytest.mark.parametrize(("config", "why"), [
    ({"model_type": "gpt2", "architectures": ["GPT2LMHeadModel"]}, "decoder-only"),
    ({"model_type": "t5", "architectures": ["T5ForConditionalGeneration"]}, "encoder-decoder"),
    ({"model_type": "layoutlm", "architectures": ["LayoutLMForTokenClassification"]}, "bbox"),
    ({"model_type": "longformer", "architectures": ["LongformerForSequenceClassification"]},
     "sequence length"),
    ({"model_type": "bert", "architectures": ["BertForMaskedLM"]}, "head (BertForMaskedLM)"),
    ({"model_type": "bert", "architectures": ["BertModel"], "auto_map": {"AutoModel": "m.M"}},
     "custom code"),
    ({"model_type": "my-own-encoder", "architectures": ["MyModel"]}, "not one of the encoders"),
])
def test_the_verdict_says_why_a_model_does_not_export(config: dict[str, object], why: str) -> None:
    verdict = judge(config)
    assert not verdict.ok and why in verdict.reason
    error = verdict.error()
    assert error.exit_code == 5
    assert str(config["model_type"]) in str(error) and "\n" not in str(error)
    assert "xlm-roberta" in error.hint


def test_unsupported_model_type_names_what_is_supported() -> None:
    with pytest.raises(ExportError) as info:
        arch_spec("gpt2")
    assert "gpt2" in str(info.value)
    assert "bert" in info.value.hint and "roberta" in info.value.hint
    with pytest.raises(ExportError):
        task_spec("translation")


def test_dynamic_axes_cover_batch_and_sequence() -> None:
    axes = dynamic_axes(("input_ids", "attention_mask", "token_type_ids"), TASKS["token-classification"])
    assert axes["input_ids"] == {0: "batch", 1: "sequence"}
    assert axes["token_type_ids"] == {0: "batch", 1: "sequence"}
    assert axes["logits"] == {0: "batch", 1: "sequence"}
    assert dynamic_axes(("input_ids",), TASKS["text-classification"])["logits"] == {0: "batch"}


def test_importing_the_export_api_stays_light() -> None:
    # `advisor advise` imports advisor.export (model detection): torch & co load only on export.
    import subprocess
    import sys

    code = ("import sys, advisor.export, advisor.advise.rules; heavy = {'torch', 'onnx', 'onnxruntime', "
            "'transformers', 'numpy', 'tokenizers'}; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]"
