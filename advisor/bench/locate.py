"""Find what to run inside an unpacked image: its Python, the original's model folder, the
slim image's ONNX artifacts (the export contract: serving.json, labels.json, tokenizer.json)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from advisor.bench.sandbox import Sandbox
from advisor.errors import BuildError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")
_SKIP_DIRS = {"proc", "sys", "dev", "site-packages", "dist-packages", "__pycache__", ".git"}
DEFAULT_MODEL_DIR = "/app/model"


def split_env(pairs: Any) -> dict[str, str]:
    """``["K=V", ...]`` (an image config's Env) as a dict."""
    out: dict[str, str] = {}
    for pair in pairs:
        key, _, value = str(pair).partition("=")
        if key:
            out[key] = value
    return out


def find_python(rootfs: Path, env: Mapping[str, str]) -> str:
    """The image's ``python3`` (or ``python``) on its own PATH, as the sandbox sees it."""
    dirs = env.get("PATH", "/usr/local/bin:/usr/bin:/bin").split(":")
    for name in ("python3", "python"):
        for d in dirs:
            inner = f"{d.rstrip('/')}/{name}"
            if os.path.lexists(rootfs / inner.lstrip("/")):
                return inner
    raise BuildError(
        "no python3 on the image's PATH", hint="bench runs the image's own Python; is it installed?"
    )


def _weights_bytes(directory: Path) -> int:
    return sum((directory / n).stat().st_size for n in WEIGHT_FILES if (directory / n).is_file())


def _is_classifier(config_path: Path) -> bool:
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    archs = config.get("architectures") if isinstance(config, dict) else None
    return any(str(a).endswith("ForSequenceClassification") for a in archs or ())


def find_model_dir(rootfs: Path) -> str:
    """The largest Hugging Face sequence-classification folder in the image (outside packages)."""
    found: list[tuple[int, str]] = []
    for current, dirs, files in os.walk(rootfs):
        dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS)
        here = Path(current)
        has_weights = "config.json" in files and any(n in files for n in WEIGHT_FILES)
        if has_weights and _is_classifier(here / "config.json"):
            found.append((_weights_bytes(here), "/" + str(here.relative_to(rootfs))))
    if not found:
        raise BuildError(
            "no Hugging Face text-classification model found in the original image",
            hint="name its folder with --original-model-path /path/in/image",
        )
    return max(found, key=lambda f: (f[0], f[1]))[1]


def read_slim_artifacts(sandbox: Sandbox) -> dict[str, Any]:
    """``model_dir``, ``onnx_path``, ``tokenizer_path``, ``labels``, ``max_length`` of the slim image."""
    model_dir = sandbox.env.get("MODEL_DIR", DEFAULT_MODEL_DIR)
    try:
        serving = json.loads(sandbox.host_path(f"{model_dir}/serving.json").read_text("utf-8"))
        labels = json.loads(sandbox.host_path(f"{model_dir}/labels.json").read_text("utf-8"))
    except (OSError, ValueError) as e:
        raise BuildError(
            f"the slim image has no readable serving.json/labels.json in {model_dir}",
            hint="bench expects an image built by `advisor export` (MODEL_DIR holds the artifacts)",
        ) from e
    return {
        "model_dir": model_dir,
        "onnx_path": f"{model_dir}/{serving.get('onnx_file', 'model.onnx')}",
        "tokenizer_path": f"{model_dir}/tokenizer.json",
        "labels": tuple(str(x) for x in labels),
        "max_length": int(serving.get("max_length", 128)),
    }
