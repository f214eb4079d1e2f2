"""Write the artifacts directory the serving image reads (ARTIFACTS CONTRACT), atomically.

``DIR/model.onnx`` (+ ``model.onnx.data`` when the weights are external), ``tokenizer.json``
(truncation and padding configured), ``labels.json``, ``serving.json``, ``validation.json``
(the same for the same inputs) and ``timings.json`` (what differs per run, never shipped).
Everything is written into a temporary sibling directory and renamed into place, so a reader
never sees half an export; an existing ``DIR`` is replaced only if it is empty or an earlier
export (it holds ``serving.json``).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from advisor import __version__
from advisor.errors import ExportError
from advisor.export.optimize import needs_external

SCHEMA_VERSION = 1
ONNX_FILE = "model.onnx"
DATA_FILE = "model.onnx.data"
TIMINGS_FILE = "timings.json"  # differs per run: not shipped in the image


@dataclass(frozen=True)
class ServingInfo:
    task: str
    model_name: str
    architecture: str
    max_length: int
    inputs: Sequence[str]
    outputs: Sequence[str]
    quantization: str
    optimization: str
    pooling: Mapping[str, Any] | None = None  # feature-extraction: how the server pools

    def as_dict(self, onnx_sha256: str) -> dict[str, Any]:
        pooling = {"pooling": dict(self.pooling)} if self.pooling is not None else {}
        return pooling | {
            "schema_version": SCHEMA_VERSION, "task": self.task, "model_name": self.model_name,
            "architecture": self.architecture, "max_length": self.max_length,
            "inputs": list(self.inputs), "outputs": list(self.outputs), "onnx_file": ONNX_FILE,
            "onnx_sha256": onnx_sha256, "quantization": self.quantization,
            "optimization": self.optimization, "advisor_version": __version__,
        }


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _dump(path: Path, data: object) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def save_onnx(src: Path, dest_dir: Path) -> Path:
    """Copy ``src`` (and any external data it names) to ``dest_dir/model.onnx[.data]``."""
    import onnx

    model = onnx.load(str(src))  # pulls external tensors in, whatever their file names
    external = needs_external(model)
    out = dest_dir / ONNX_FILE
    onnx.save_model(model, str(out), save_as_external_data=external,
                    all_tensors_to_one_file=True, location=DATA_FILE, size_threshold=1024)
    return out


def write_artifacts(dest: Path, onnx_src: Path, tokenizer: Any, labels: Sequence[str],
                    serving: ServingInfo, validation: Mapping[str, Any],
                    timings: Mapping[str, Any]) -> tuple[Path, str]:
    """Publish the artifacts at ``dest``; return (path of model.onnx, its sha256)."""
    dest = dest.resolve()
    dest.parent.mkdir(parents=True, exist_ok=True)
    _check_replaceable(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        digest = sha256_file(save_onnx(onnx_src, tmp))
        tokenizer.save(str(tmp / "tokenizer.json"))
        _dump(tmp / "labels.json", list(labels))
        _dump(tmp / "serving.json", serving.as_dict(digest))
        _dump(tmp / "validation.json", dict(validation))
        _dump(tmp / TIMINGS_FILE, dict(timings))
        for f in tmp.iterdir():
            f.chmod(0o644)
        tmp.chmod(0o755)
        _swap_in(tmp, dest)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return dest / ONNX_FILE, digest


def _check_replaceable(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or (any(dest.iterdir()) and not (dest / "serving.json").is_file())):
        raise ExportError(f"{dest} exists and is not an advisor artifacts directory",
                          hint="choose an empty or new --artifacts directory")


def _swap_in(tmp: Path, dest: Path) -> None:
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.old{os.getpid()}")
        dest.rename(old)
    tmp.rename(dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def artifact_size(dest: Path) -> int:
    return sum((dest / n).stat().st_size for n in (ONNX_FILE, DATA_FILE) if (dest / n).is_file())
