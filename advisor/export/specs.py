"""What advisor can export, declared as data: architectures and tasks.

An architecture spec names the ONNX inputs the model takes (in order), the tolerance its fp32
export must meet, and the model type onnxruntime's transformer optimizer fuses it as. A task
spec names the Auto class that loads it, its output and that output's dynamic axes. The code
that runs the export (``advisor.export.exporter``) only reads these; adding an architecture is
one entry here plus its tiny-model test (``tests/export/test_specs.py`` fails without one).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from advisor.errors import ExportError

BATCH = "batch"
SEQUENCE = "sequence"


@dataclass(frozen=True)
class ArchSpec:
    model_type: str  # config.json "model_type"
    inputs: Sequence[str]  # ONNX input names, in the order the graph takes them
    ort_model_type: str = "bert"  # onnxruntime.transformers.optimizer model_type
    atol: float = 1e-4  # fp32 logits parity vs torch


@dataclass(frozen=True)
class TaskSpec:
    name: str  # contract name (serving.json "task")
    auto_class: str  # transformers Auto class that loads the model for this task
    output: str  # the single ONNX output name
    output_axes: Sequence[str]  # symbolic axes of the output; others are static
    head_suffix: str  # class-name suffix in config.json "architectures"


ARCHITECTURES: Mapping[str, ArchSpec] = {
    spec.model_type: spec
    for spec in (
        ArchSpec("bert", ("input_ids", "attention_mask", "token_type_ids")),
        ArchSpec("distilbert", ("input_ids", "attention_mask")),
        ArchSpec("roberta", ("input_ids", "attention_mask")),
        ArchSpec("albert", ("input_ids", "attention_mask", "token_type_ids")),
        ArchSpec("electra", ("input_ids", "attention_mask", "token_type_ids")),
    )
}

TASKS: Mapping[str, TaskSpec] = {
    spec.name: spec
    for spec in (
        TaskSpec("text-classification", "AutoModelForSequenceClassification", "logits",
                 (BATCH,), "ForSequenceClassification"),
        TaskSpec("token-classification", "AutoModelForTokenClassification", "logits",
                 (BATCH, SEQUENCE), "ForTokenClassification"),
        TaskSpec("feature-extraction", "AutoModel", "last_hidden_state",
                 (BATCH, SEQUENCE), "Model"),
    )
}


def supported_summary() -> str:
    return (f"architectures {', '.join(sorted(ARCHITECTURES))}; "
            f"tasks {', '.join(sorted(TASKS))}")


def arch_spec(model_type: str) -> ArchSpec:
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        raise ExportError(
            f"model type '{model_type}' is not supported for export",
            hint=f"advisor exports {supported_summary()}",
        ) from None


def task_spec(name: str) -> TaskSpec:
    try:
        return TASKS[name]
    except KeyError:
        raise ExportError(
            f"task '{name}' is not supported for export",
            hint=f"advisor exports {supported_summary()}",
        ) from None


def infer_task(architectures: Sequence[str]) -> TaskSpec:
    """The task a config's ``architectures`` names (``BertForSequenceClassification`` -> ...)."""
    for arch in architectures:
        for spec in sorted(TASKS.values(), key=lambda s: -len(s.head_suffix)):
            if arch.endswith(spec.head_suffix):
                return spec
    raise ExportError(
        f"cannot tell the task from architectures {list(architectures)}",
        hint=f"pass the task explicitly; advisor exports {supported_summary()}",
    )


def dynamic_axes(arch: ArchSpec, task: TaskSpec) -> dict[str, dict[int, str]]:
    """Dynamic batch and sequence axes for every input and the output."""
    axes: dict[str, dict[int, str]] = {name: {0: BATCH, 1: SEQUENCE} for name in arch.inputs}
    axes[task.output] = dict(enumerate(task.output_axes))
    return axes
