"""``run_bench``: the original image vs the slim one, each measured in its own environment."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import tempfile
from pathlib import Path
from typing import Any

from advisor import __version__
from advisor.bench.data import default_data_path, load_csv
from advisor.bench.locate import find_model_dir, find_python, read_slim_artifacts, split_env
from advisor.bench.measure import Measured, OriginalSpec, SlimSpec, measure
from advisor.bench.model import (
    BenchConfig,
    BenchReport,
    ImageSizes,
    ProgressFn,
    SideResult,
    no_progress,
)
from advisor.bench.rootfs import require_tools, unpack_image
from advisor.bench.sandbox import Sandbox
from advisor.bench.sizes import image_sizes
from advisor.errors import BadInputError
from advisor.image.model import ImageConfig


def _inspect(reference: str, insecure: bool) -> tuple[ImageSizes, ImageConfig]:
    from advisor.image.loader import open_image
    from advisor.image.walk import read_layers

    with open_image(reference, insecure=insecure) as image:
        return image_sizes(image, read_layers(image)), image.config


def _sandbox(name: str, rootfs: Path, config: ImageConfig) -> Sandbox:
    env = split_env(config.env)
    return Sandbox(
        name=name,
        rootfs=rootfs,
        env=env,
        command=(*config.entrypoint, *config.cmd),
        workdir=config.working_dir or "/",
        python=find_python(rootfs, env),
    )


def _slim_spec(reference: str, sandbox: Sandbox) -> SlimSpec:
    art = read_slim_artifacts(sandbox)
    return SlimSpec(
        reference,
        sandbox,
        art["onnx_path"],
        art["tokenizer_path"],
        art["labels"],
        art["max_length"],
    )


def machine() -> dict[str, Any]:
    """Where the numbers were taken: they only compare within one machine."""
    cpu = ""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        pass
    return {
        "date": dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "advisor_version": __version__,
        "machine": platform.machine(),
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "kernel": platform.release(),
        "host_python": platform.python_version(),
    }


def _load_advice(path: Path | None) -> dict[str, Any] | None:
    if path is None:
        return None
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise BadInputError(
            f"cannot read the advice JSON {path}: {e}",
            hint="pass the output of `advisor advise --format json`",
        ) from e
    if not isinstance(doc, dict) or "recommendations" not in doc:
        raise BadInputError(
            f"{path} is not an advise JSON report",
            hint="pass the output of `advisor advise --format json`",
        )
    return doc


def assemble(
    measured: Measured,
    sizes: tuple[ImageSizes | None, ImageSizes | None],
    config: BenchConfig,
    data_path: str,
    samples: int,
) -> BenchReport:
    """Attach sizes and context to the measurements."""
    from dataclasses import replace

    original: SideResult = replace(measured.original, sizes=sizes[0])
    slim: SideResult = replace(measured.slim, sizes=sizes[1])
    env = {**machine(), "threads": config.threads, "rounds": config.rounds}
    return BenchReport(
        original=original,
        slim=slim,
        agreement=measured.agreement,
        data_path=data_path,
        samples=samples,
        cases=config.cases,
        environment=env,
        advice=_load_advice(config.advice),
    )


def run_bench(config: BenchConfig, progress: ProgressFn = no_progress) -> BenchReport:
    """Measure ``config.original`` against ``config.slim``; raise ``BuildError`` if one cannot run."""
    data_path = config.data or default_data_path()
    if config.data is None and not data_path.is_file():
        raise BadInputError(
            f"no --data given and the sample held-out set {data_path} does not exist",
            hint="pass --data CSV (text,label), or build the sample model: python sample_models/build_sentiment.py",
        )
    data = load_csv(data_path, config.max_samples)
    _load_advice(config.advice)  # fail on a bad --advice before minutes of measuring
    require_tools()
    with tempfile.TemporaryDirectory(prefix="advisor-bench-", dir=config.workdir) as tmp:
        work = Path(tmp)
        progress(0, 0, f"reading {config.original}")
        original_sizes, original_cfg = _inspect(config.original, config.insecure)
        progress(0, 0, f"reading {config.slim}")
        slim_sizes, slim_cfg = _inspect(config.slim, config.insecure)
        progress(0, 0, f"unpacking {config.original}")
        original_root = unpack_image(config.original, work / "original", insecure=config.insecure)
        progress(0, 0, f"unpacking {config.slim}")
        slim_root = unpack_image(config.slim, work / "slim", insecure=config.insecure)
        original_box = _sandbox("original", original_root, original_cfg)
        model_dir = config.original_model_path or find_model_dir(original_root)
        original = OriginalSpec(config.original, original_box, model_dir)
        slim = _slim_spec(config.slim, _sandbox("slim", slim_root, slim_cfg))
        measured = measure(original, slim, data, config, work, progress)
    return assemble(measured, (original_sizes, slim_sizes), config, str(data_path), len(data))
