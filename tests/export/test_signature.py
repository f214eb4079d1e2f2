"""The graph's inputs come from the model: its forward signature x its tokenizer's names."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from advisor.errors import ExportError
from advisor.export.signature import derive_graph, forward_inputs, tokenizer_inputs
from advisor.export.specs import TASKS
from tests.export.conftest import TinyFactory

TEXT = TASKS["text-classification"]


def _model(folder: Path) -> object:
    from transformers import AutoModelForSequenceClassification

    return AutoModelForSequenceClassification.from_pretrained(folder)


@pytest.mark.parametrize(("arch", "accepted", "inputs"), [
    ("bert", ("input_ids", "attention_mask", "token_type_ids"),
     ("input_ids", "attention_mask", "token_type_ids")),
    ("distilbert", ("input_ids", "attention_mask"), ("input_ids", "attention_mask")),
    # the forward accepts token types; the tokenizer class never emits them
    ("xlm-roberta", ("input_ids", "attention_mask", "token_type_ids"), ("input_ids", "attention_mask")),
    # Fourier mixing: no attention mask at all
    ("fnet", ("input_ids", "token_type_ids"), ("input_ids", "token_type_ids")),
])
def test_inputs_are_the_forward_signature_narrowed_by_the_tokenizer(
        tiny_model: TinyFactory, arch: str, accepted: tuple[str, ...],
        inputs: tuple[str, ...]) -> None:
    folder = tiny_model(arch, "text-classification")
    model = _model(folder)
    assert forward_inputs(model) == accepted
    graph = derive_graph(model, folder, arch, TEXT)
    assert graph.inputs == inputs and graph.output == "logits"
    assert "forward signature x" in graph.inputs_from


def test_the_folders_tokenizer_config_wins(tiny_model: TinyFactory, tmp_path: Path) -> None:
    folder = tmp_path / "m"
    shutil.copytree(tiny_model("bert", "text-classification"), folder)
    (folder / "tokenizer_config.json").write_text(json.dumps(
        {"model_input_names": ["input_ids", "attention_mask"]}))
    assert tokenizer_inputs(folder, "bert") == (("input_ids", "attention_mask"),
                                                "tokenizer_config.json")
    assert derive_graph(_model(folder), folder, "bert", TEXT).inputs == ("input_ids", "attention_mask")


def test_a_model_that_reads_no_token_ids_is_refused() -> None:
    class EmbedsOnly:
        def forward(self, inputs_embeds: object = None, attention_mask: object = None) -> None: ...

    with pytest.raises(ExportError, match="no input_ids"):
        derive_graph(EmbedsOnly(), Path("/nonexistent"), "bert", TEXT)
