"""``export.run(ExportJob) -> ExportResult``: the export pipeline as one library call.

SOURCE is a local model folder or an image holding one. From an image, the model folder is
found (or named with ``model_path``) and its files are copied out of the layers into a
temporary folder that lives as long as the export; then ``export_model`` writes the validated
artifacts into ``artifacts_dir``. Building the slim image from those artifacts is the next
pipeline, ``advisor.slim.build``.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

from advisor.errors import BadInputError, ExportError, UsageError
from advisor.export.config import (
    ExportConfig,
    ExportResult,
    Graph,
    ProgressFn,
    Quantize,
    no_progress,
)
from advisor.export.locate import (
    ModelLocation,
    find_models_in_image,
    materialize_model_from_image,
    merged_tree,
)
from advisor.oci.loader import open_image
from advisor.oci.model import Platform

#: A SOURCE that is meant as a path on this machine, never as an image name.
_PATH_PREFIXES = ("/", "./", "../", "~")


@dataclass(frozen=True)
class ExportJob:
    """What to export and how; the knobs are ``ExportConfig``'s (see there)."""

    source: str  # a model folder, or an image reference (docs/DESIGN.md, "Image references")
    artifacts_dir: Path
    model_path: str | None = None  # the model folder inside the image; None: the only one found
    platform: Platform | None = None
    insecure: bool = False
    task: str | None = None
    max_length: int = 128
    quantize: Quantize = "int8"
    optimize: bool = True
    graph: Graph = "auto"
    data_csv: Path | None = None
    max_accuracy_drop: float = 1.0
    limit: int | None = None
    race_cache: Path | None = None
    remeasure: bool = False
    progress: ProgressFn = field(default=no_progress, compare=False, repr=False)


def check(job: ExportJob) -> None:
    """Refuse a job that cannot work, before the model or the image is read."""
    if job.graph in ("fused", "partial") and not job.optimize:  # export_model says the same
        raise UsageError(f"--graph {job.graph} needs fusion, and --no-optimize skips it",
                         hint="drop --no-optimize, or use --graph auto or unfused")


def run(job: ExportJob) -> ExportResult:
    """Export the model SOURCE holds to validated, optimised ONNX artifacts."""
    check(job)
    from advisor.oci.localref import has_transport

    local = Path(job.source).expanduser()
    named = has_transport(job.source)
    if local.is_dir() and not named and not (local / "oci-layout").is_file():
        return _export(job, local, local.resolve().name)
    if not named and not local.exists() and job.source.startswith(_PATH_PREFIXES):
        raise BadInputError(f"no model folder at {job.source}",
                            hint="give a folder with config.json, weights and a tokenizer, or an image reference")
    # an image archive or OCI layout named without its transport is read as that image
    with tempfile.TemporaryDirectory(prefix="advisor-model-") as tmp:
        model_dir, name = pull_model(job, Path(tmp))
        return _export(job, model_dir, name)


def _export(job: ExportJob, model_dir: Path, name: str) -> ExportResult:
    from advisor.export.pipeline import export_model

    return export_model(ExportConfig(
        model_dir=model_dir, artifacts_dir=job.artifacts_dir, task=job.task, max_length=job.max_length,
        quantize=job.quantize, optimize=job.optimize, graph=job.graph, data_csv=job.data_csv,
        max_accuracy_drop=job.max_accuracy_drop, limit=job.limit, model_name=name,
        race_cache=job.race_cache, remeasure=job.remeasure, progress=job.progress,
    ))


def pull_model(job: ExportJob, workdir: Path) -> tuple[Path, str]:
    """Copy the model folder out of the image ``job.source`` into ``workdir/model``."""
    job.progress("reading the model out of the image", 0, 0)
    with open_image(job.source, platform=job.platform, insecure=job.insecure) as image:
        tree = merged_tree(image)
        path = job.model_path or only_model(job.source, find_models_in_image(image, tree))
        dest = materialize_model_from_image(image, path, workdir / "model", tree=tree)
    return dest, PurePosixPath(path.rstrip("/")).name


def only_model(source: str, found: Sequence[ModelLocation]) -> str:
    """The one exportable model among ``found`` (``ModelLocation``s), or why there is none."""
    supported = [m for m in found if m.supported]
    if len(supported) == 1:
        return supported[0].path
    if not found:
        raise BadInputError(f"no model folder found in {source}",
                            hint="name it with --model-path (a folder with config.json and weights)")
    if not supported:
        from advisor.export.specs import supported_summary

        why = "; ".join(f"/{m.path}: {m.reason}" for m in found)
        raise ExportError(f"no exportable model in {source} ({why})",
                          hint=f"advisor exports {supported_summary()}")
    listing = ", ".join("/" + m.path for m in supported)
    raise UsageError(f"{len(supported)} models in {source}: {listing}", hint="choose one with --model-path")
