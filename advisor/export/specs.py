"""What advisor can export, declared as data, and the one answer to "can this be exported".

What a graph takes is derived from the model itself (``advisor.export.signature``: its forward
signature and its tokenizer's ``model_input_names``), so an architecture spec keeps only what
differs between encoders: the tolerance its fp32 export must meet (with the reason when it is
not 1e-4), the model type onnxruntime's transformer optimizer fuses it as (``None``: it fuses
nothing of it), the exporters to try in order (the first one that exports a graph onnxruntime
runs within tolerance ships; validation.json records which), and config overrides the export
needs. Every entry has a tiny-model test (``tests/export/test_specs.py`` fails without one).

``judge(config)`` is the verdict advise's ``ml-onnx-export`` rule, the image model finder and
the export itself all use: exportable, or the reason it is not. It imports nothing heavy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from advisor.errors import ExportError

BATCH = "batch"
SEQUENCE = "sequence"
Exporter = Literal["legacy", "dynamo"]
LEGACY_FIRST: tuple[Exporter, ...] = ("legacy", "dynamo")
DYNAMO_FIRST: tuple[Exporter, ...] = ("dynamo", "legacy")


@dataclass(frozen=True)
class ArchSpec:
    model_type: str  # config.json "model_type"
    ort_model_type: str | None = "bert"  # onnxruntime.transformers.optimizer model_type
    atol: float = 1e-4  # fp32 output parity vs torch
    atol_reason: str = ""  # why, when atol is not the default
    exporters: tuple[Exporter, ...] = LEGACY_FIRST  # tried in order; see advisor.export.exporter
    overrides: Mapping[str, Any] = field(default_factory=dict)  # config changes for export
    notes: str = ""


@dataclass(frozen=True)
class TaskSpec:
    name: str  # contract name (serving.json "task")
    auto_class: str  # transformers Auto class that loads the model for this task
    output: str  # the single ONNX output name
    output_axes: Sequence[str]  # symbolic axes of the output; others are static
    head_suffix: str  # class-name suffix in config.json "architectures"


def _specs(*specs: ArchSpec) -> dict[str, ArchSpec]:
    return {s.model_type: s for s in specs}


# Every type below exports all three tasks from a tiny random model in tests/export; the
# evidence behind each quirk is in benchmarks/export/coverage.md (one run, both exporters).
ARCHITECTURES: Mapping[str, ArchSpec] = _specs(
    ArchSpec("albert"),
    ArchSpec("bert"),
    ArchSpec("big_bird", overrides={"attention_type": "original_full"},
             notes="block-sparse attention is data-dependent control flow; below "
                   "(5 + 2 * num_random_blocks) * block_size tokens (704 by default) transformers "
                   "itself runs full attention, which is what is exported"),
    ArchSpec("camembert"),
    ArchSpec("convbert"),
    ArchSpec("data2vec-text"),
    ArchSpec("deberta", ort_model_type=None),
    ArchSpec("deberta-v2", ort_model_type=None),
    ArchSpec("distilbert"),
    ArchSpec("electra"),
    ArchSpec("ernie"),
    ArchSpec("eurobert", ort_model_type=None),
    ArchSpec("flaubert", ort_model_type=None),
    ArchSpec("fnet", ort_model_type=None, exporters=DYNAMO_FIRST,
             notes="the TorchScript exporter has no aten::fft_fftn; dynamo emits DFT"),
    ArchSpec("gte", ort_model_type=None),
    ArchSpec("funnel", ort_model_type=None, overrides={"attention_type": "factorized"},
             notes="the default relative_shift attention gathers with indices traced for one "
                   "sequence length (the graph fails at others); factorized computes the same "
                   "positional attention (transformers: 'faster on TPU') and traces generally"),
    ArchSpec("ibert"),
    ArchSpec("jina_embeddings_v3", ort_model_type=None),
    ArchSpec("megatron-bert"),
    ArchSpec("mobilebert", ort_model_type=None),
    ArchSpec("modernbert", ort_model_type=None),
    ArchSpec("mpnet", ort_model_type=None),
    ArchSpec("mra", ort_model_type=None),
    ArchSpec("nomic_bert", ort_model_type=None),
    ArchSpec("rembert"),
    ArchSpec("roberta"),
    ArchSpec("roberta-prelayernorm"),
    ArchSpec("roformer", ort_model_type=None),
    ArchSpec("squeezebert", ort_model_type=None),
    ArchSpec("xlm", ort_model_type=None),
    ArchSpec("xlm-roberta"),
    ArchSpec("xlm-roberta-xl"),
    ArchSpec("yoso", ort_model_type=None),
)

# Model types people meet that advisor does not export, and why (the verdict's reason).
REFUSED: Mapping[str, str] = {
    "layoutlm": "it reads a bounding box per token (bbox), which text alone does not give",
    "layoutlmv2": "it reads page images and bounding boxes",
    "layoutlmv3": "it reads page images and bounding boxes",
    "lilt": "it reads a bounding box per token (bbox)",
    "markuplm": "it reads XPath tags and subscripts per token",
    "tapas": "it reads table coordinates as seven token_type_ids per token",
    "luke": "it reads entity ids and positions beside the words",
    "roc_bert": "it reads shape and pronunciation ids per token",
    "perceiver": "a multimodal latent-array model, not a text encoder advisor exports",
    "longformer": "its sliding-window attention does not export with a dynamic sequence length "
                  "(torch 2.13): TorchScript traces the chunk count of one length into "
                  "as_strided and slice assignments (the graph fails or is off by >1 at others), "
                  "with onnx_export it has no Unfold of dynamic size, and dynamo stops at the "
                  "data-dependent global-attention branch (.any().item())",
    "nystromformer": "torch itself runs it only at sequence length segment_means_seq_len (its "
                     "landmark attention reshapes by it; 512 by default): a fixed-length model, "
                     "not a graph for the variable lengths advisor serves",
    "reformer": "LSH attention buckets with random rotations per run: its outputs are not "
                "reproducible, so parity cannot be checked",
    "canine": "a character-level model with no tokenizer.json (no fast tokenizer)",
    "esm": "a protein model whose tokenizer has no fast (tokenizer.json) version",
    "t5": "an encoder-decoder model (generation); advisor exports encoders",
    "bart": "an encoder-decoder model (generation); advisor exports encoders",
    "mbart": "an encoder-decoder model (generation); advisor exports encoders",
    "xlnet": "permutation language model with relative memory; its graph does not export "
             "with dynamic sequence length",
}
DECODER_HINT = "a decoder-only (causal) language model; advisor exports encoders"
# Decoders people put a classification head on (transformers has *ForSequenceClassification
# for them): refused as decoders, whatever the head.
DECODERS = frozenset({
    "gpt2", "gpt_neo", "gpt_neox", "gptj", "gpt_bigcode", "llama", "mistral", "mixtral", "qwen2",
    "qwen2_moe", "qwen3", "qwen3_moe", "phi", "phi3", "gemma", "gemma2", "gemma3", "falcon",
    "bloom", "opt", "mpt", "starcoder2", "olmo", "olmo2", "stablelm", "persimmon", "ctrl",
    "openai-gpt", "biogpt", "transfo-xl", "xglm", "codegen", "deepseek_v3", "granite", "smollm3",
})

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
    return (f"{len(ARCHITECTURES)} encoder types ({', '.join(sorted(ARCHITECTURES))}); "
            f"tasks {', '.join(sorted(TASKS))}")


@dataclass(frozen=True)
class Verdict:
    """Whether a model folder's config.json is one advisor exports, and if not, why."""

    model_type: str
    task: str | None  # the task its architectures name, when advisor exports that task
    reason: str = ""  # empty: exportable

    @property
    def ok(self) -> bool:
        return not self.reason

    def error(self) -> ExportError:
        return ExportError(f"cannot export this {self.model_type} model: {self.reason}",
                           hint=f"advisor exports {supported_summary()}")


def judge(config: Mapping[str, Any], task: str | None = None) -> Verdict:
    """The verdict on a config.json (``task`` given: that task instead of the head's)."""
    model_type = str(config.get("model_type") or "<missing>")
    name = task if task in TASKS else None
    if task is None:
        head = _head_task(_architectures(config))
        name = head.name if head else None
    reason = _type_reason(model_type, config)
    if not reason and task is not None and task not in TASKS:
        reason = f"task '{task}' is not one advisor exports"
    elif not reason and name is None:
        reason = (f"its head ({', '.join(_architectures(config)) or 'none named'}) is not one "
                  f"advisor exports (the task's: {', '.join(sorted(TASKS))}; or pass --task)")
    return Verdict(model_type, name, reason)


def _type_reason(model_type: str, config: Mapping[str, Any]) -> str:
    if config.get("auto_map") or config.get("trust_remote_code"):
        return ("it needs custom code from the model folder (auto_map); advisor does not run "
                "code shipped with a model")
    if model_type in ARCHITECTURES:
        return ""
    if model_type in REFUSED:
        return REFUSED[model_type]
    if config.get("is_encoder_decoder"):
        return "an encoder-decoder model (generation); advisor exports encoders"
    if model_type in DECODERS or config.get("is_decoder") or any(
            a.endswith(("ForCausalLM", "LMHeadModel")) for a in _architectures(config)):
        return DECODER_HINT
    return f"model type '{model_type}' is not one of the encoders advisor has verified"


def _architectures(config: Mapping[str, Any]) -> list[str]:
    archs = config.get("architectures") or []
    return [str(a) for a in archs] if isinstance(archs, list) else []


def _head_task(architectures: Sequence[str]) -> TaskSpec | None:
    for arch in architectures:
        for spec in sorted(TASKS.values(), key=lambda s: -len(s.head_suffix)):
            if arch.endswith(spec.head_suffix):
                return spec
    return None


def arch_spec(model_type: str) -> ArchSpec:
    try:
        return ARCHITECTURES[model_type]
    except KeyError:
        raise judge({"model_type": model_type}, "feature-extraction").error() from None


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
    spec = _head_task(architectures)
    if spec is None:
        raise ExportError(
            f"cannot tell the task from architectures {list(architectures)}",
            hint=f"pass the task explicitly; advisor exports {supported_summary()}",
        )
    return spec


@dataclass(frozen=True)
class GraphSpec:
    """What one exported graph takes and gives, derived from the loaded model and tokenizer."""

    inputs: tuple[str, ...]  # ONNX input names, in the order the graph takes them
    output: str
    output_axes: tuple[str, ...]
    inputs_from: str = ""  # how the inputs were derived (validation.json)

    def dynamic_axes(self) -> dict[str, dict[int, str]]:
        """Dynamic batch and sequence axes for every input and the output."""
        axes: dict[str, dict[int, str]] = {name: {0: BATCH, 1: SEQUENCE} for name in self.inputs}
        axes[self.output] = dict(enumerate(self.output_axes))
        return axes


def dynamic_axes(inputs: Sequence[str], task: TaskSpec) -> dict[str, dict[int, str]]:
    return GraphSpec(tuple(inputs), task.output, tuple(task.output_axes)).dynamic_axes()
