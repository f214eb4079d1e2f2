"""sentence-transformers folders: which transformer they wrap and how they pool it (no torch).

A sentence-transformers model is a folder with ``modules.json`` naming its modules in order:
a ``Transformer`` (its files in the folder itself or a sub-folder), a ``Pooling`` (its
``config.json`` says how token vectors become one sentence vector) and optionally
``Normalize`` (unit length). advisor exports the transformer as feature-extraction and writes
the pooling into serving.json, where the serving image applies it the way
``SentenceTransformer.encode`` does. Any other module (``Dense``, ``LayerNorm``, a router...)
is refused by name: its output would differ from ``encode``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor.errors import BadInputError, ExportError

MODULES_FILE = "modules.json"
POOLING_MODES = ("cls", "max", "mean", "mean_sqrt_len_tokens", "weightedmean", "lasttoken")
# sentence-transformers < 6 wrote one boolean per mode; 6 writes "pooling_mode".
_LEGACY_KEYS = {"pooling_mode_cls_token": "cls", "pooling_mode_max_tokens": "max",
                "pooling_mode_mean_tokens": "mean",
                "pooling_mode_mean_sqrt_len_tokens": "mean_sqrt_len_tokens",
                "pooling_mode_weightedmean_tokens": "weightedmean",
                "pooling_mode_lasttoken": "lasttoken"}
_KINDS = {"Transformer": "transformer", "Pooling": "pooling", "Normalize": "normalize"}


@dataclass(frozen=True)
class Pooling:
    """How the server turns ``last_hidden_state`` into one vector (serving.json "pooling")."""

    modes: tuple[str, ...] = ("mean",)  # concatenated in this order, as sentence-transformers does
    normalize: bool = True
    source: str = "default"  # "sentence-transformers" when read from a folder

    def as_dict(self) -> dict[str, Any]:
        return {"modes": list(self.modes), "normalize": self.normalize, "source": self.source}


@dataclass(frozen=True)
class SentenceModel:
    transformer_dir: Path  # the folder holding config.json and the weights
    pooling: Pooling
    max_seq_length: int | None


def is_sentence_transformers(path: Path) -> bool:
    return (path / MODULES_FILE).is_file()


def read_sentence_model(path: Path) -> SentenceModel:
    """Parse ``modules.json`` and the Pooling config; ExportError for modules not exported."""
    modules = _json(path / MODULES_FILE)
    if not isinstance(modules, list) or not all(isinstance(m, dict) for m in modules):
        raise BadInputError(f"{path / MODULES_FILE} is not a list of modules",
                            hint="the sentence-transformers folder is corrupt")
    kinds: dict[str, Path] = {}
    for module in sorted(modules, key=lambda m: int(m.get("idx", 0))):
        kind = str(module.get("type", "")).rsplit(".", 1)[-1]
        if kind not in _KINDS or _KINDS[kind] in kinds:
            raise ExportError(
                f"cannot export this sentence-transformers model: its module {kind or '?'} "
                f"({module.get('path') or 'root'}) is not one advisor exports",
                hint="advisor exports Transformer + Pooling (+ Normalize) pipelines")
        kinds[_KINDS[kind]] = path / str(module.get("path", ""))
    if "transformer" not in kinds or "pooling" not in kinds:
        raise ExportError("cannot export this sentence-transformers model: it needs a Transformer "
                          "and a Pooling module", hint="check modules.json")
    pooling = Pooling(_modes(kinds["pooling"]), "normalize" in kinds, "sentence-transformers")
    return SentenceModel(kinds["transformer"], pooling, _max_seq_length(path, kinds["transformer"]))


def _modes(pooling_dir: Path) -> tuple[str, ...]:
    cfg = _json(pooling_dir / "config.json")
    if not isinstance(cfg, dict):
        raise BadInputError(f"{pooling_dir / 'config.json'} is not a JSON object",
                            hint="the sentence-transformers folder is corrupt")
    if cfg.get("include_prompt") is False:
        raise ExportError("cannot export this sentence-transformers model: its pooling excludes "
                          "prompts (include_prompt false), which the server cannot tell apart",
                          hint="re-save the model with include_prompt true")
    raw = cfg.get("pooling_mode")
    if raw is None:
        modes = tuple(mode for key, mode in _LEGACY_KEYS.items() if cfg.get(key))
        modes = tuple(m for m in POOLING_MODES if m in modes)
    else:
        modes = (str(raw),) if isinstance(raw, str) else tuple(str(m) for m in raw)
    unknown = [m for m in modes if m not in POOLING_MODES]
    if not modes or unknown:
        raise ExportError(f"cannot export this sentence-transformers model: pooling "
                          f"{list(modes)} is not one of {list(POOLING_MODES)}",
                          hint="check 1_Pooling/config.json")
    return modes


def _max_seq_length(path: Path, transformer_dir: Path) -> int | None:
    for folder in (transformer_dir, path):
        if not (folder / "sentence_bert_config.json").is_file():
            continue
        cfg = _json(folder / "sentence_bert_config.json")
        if isinstance(cfg, dict) and isinstance(cfg.get("max_seq_length"), int):
            return int(cfg["max_seq_length"])
    return None


def _json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise BadInputError(f"missing {path}", hint="the sentence-transformers folder is incomplete") from e
    except (OSError, ValueError) as e:
        raise BadInputError(f"cannot read {path}: {e}", hint="the folder is corrupt") from e
