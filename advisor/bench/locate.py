"""Find what to run inside an unpacked image: its Python, and the slim image's ONNX artifacts
(the export contract: serving.json, labels.json, tokenizer.json in MODEL_DIR)."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from advisor.errors import BenchError
from advisor.sandbox.environment import Sandbox
from advisor.serve.contract import read_serving

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
    raise BenchError(
        "no python3 on the image's PATH", hint="bench runs the image's own Python; is it installed?"
    )


def read_slim_artifacts(sandbox: Sandbox) -> dict[str, Any]:
    """``model_dir``, ``onnx_path``, ``tokenizer_path``, ``labels``, ``max_length`` of the slim image."""
    model_dir = sandbox.env.get("MODEL_DIR", DEFAULT_MODEL_DIR)
    try:
        serving = read_serving(sandbox.host_path(model_dir))
        labels = json.loads(sandbox.host_path(f"{model_dir}/labels.json").read_text("utf-8"))
    except (OSError, ValueError) as e:  # ServingFileError is a ValueError
        raise BenchError(
            f"the slim image has no readable serving.json/labels.json in {model_dir}",
            hint="bench expects an image built by `advisor export` (MODEL_DIR holds the artifacts)",
        ) from e
    return {
        "model_dir": model_dir,
        "onnx_path": f"{model_dir}/{serving.onnx_file}",
        "tokenizer_path": f"{model_dir}/tokenizer.json",
        "labels": tuple(str(x) for x in labels),
        "max_length": serving.max_length,
    }
