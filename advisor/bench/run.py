"""``run_bench``: the original image vs the slim one, each measured in its own environment."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor import __version__
from advisor.bench.data import LabelledData, default_data_path, load_csv
from advisor.bench.locate import find_python, read_slim_artifacts, split_env
from advisor.bench.measure import Measured, OriginalSpec, SlimSpec, measure
from advisor.bench.model import (
    BenchConfig,
    BenchReport,
    ImageSizes,
    ProgressFn,
    SideResult,
    no_progress,
)
from advisor.bench.sizes import Inspected, inspect_image, measure_sizes
from advisor.errors import BadInputError, BenchError
from advisor.sandbox.environment import Sandbox

if TYPE_CHECKING:
    from advisor.sandbox.bundle import Bundle


def _model_dir(config: BenchConfig, found: tuple[str, ...]) -> str:
    if config.original_model_path:
        return "/" + config.original_model_path.strip("/")
    if not found:
        raise BenchError(
            f"no text-classification model found in {config.original}",
            hint="name its folder with --original-model-path /path/in/image",
        )
    return found[0]


def _sandbox(name: str, bundle: Bundle, config: BenchConfig) -> Sandbox:
    env = split_env(bundle.env)
    return Sandbox(
        name=name,
        rootfs=bundle.rootfs,
        env=env,
        command=bundle.entrypoint,
        workdir=bundle.working_dir or "/",
        python=find_python(bundle.rootfs, env),
        user=bundle.user,
        bundle=None if config.unsandboxed_host_run else bundle,
    )


def _require_sandbox(config: BenchConfig) -> None:
    """Refuse (exit 7) before any work when runc is missing, unless the user chose a host run."""
    from advisor.errors import MissingToolError
    from advisor.sandbox import runc

    if config.unsandboxed_host_run:
        return
    try:
        runc()
    except MissingToolError as e:
        e.hint = (
            f"{e.hint}; or, to run the images' code on this host as root with no sandbox, "
            "pass --unsandboxed-host-run"
        )
        raise


def _sandbox_info(config: BenchConfig, side: Sandbox | None) -> dict[str, Any]:
    """How the images' code ran, for the report: runc (its version, user namespace, which
    limits applied, its own start cost measured here) or the unsandboxed host run."""
    if side is None:
        return {"runtime": "host (model folders, this machine's Python)"}
    if side.bundle is None:
        return {"runtime": "unsandboxed host run (unshare as root, the host's network)"}
    from advisor.sandbox.limits import Limits
    from advisor.sandbox.overhead import runc_version, start_overhead

    policy = side.policy
    return {
        "runtime": "runc",
        "runc_version": runc_version(),
        "user_namespace": side.bundle.id_map is not None,
        "limits": Limits.choose(policy.memory_bytes, policy.pids).applied,
        "tmp_bytes": policy.tmp_bytes,
        **start_overhead(side.bundle, side.python),
    }


@contextmanager
def _unpacked(reference: str, config: BenchConfig, progress: ProgressFn) -> Iterator[Bundle]:
    """The image unpacked (skopeo + umoci) for the sandbox, or for a host run; removed after."""
    from advisor.sandbox.bundle import make_host_run_devices, unpack

    progress(0, 0, f"unpacking {reference}")
    host_run = config.unsandboxed_host_run
    bundle = unpack(reference, userns=False if host_run else None)
    try:
        if host_run:
            make_host_run_devices(bundle)
        yield bundle
    finally:
        shutil.rmtree(bundle.root, ignore_errors=True)


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
        # Other work on the machine skews every number: keep the load next to them.
        "loadavg": [round(x, 2) for x in os.getloadavg()],
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
    sandbox: dict[str, Any] | None = None,
) -> BenchReport:
    """Attach sizes and context to the measurements."""
    from dataclasses import replace

    original: SideResult = replace(measured.original, sizes=sizes[0])
    slim: SideResult = replace(measured.slim, sizes=sizes[1])
    env = {**machine(), "threads": config.threads, "rounds": config.rounds,
           **({"sandbox": sandbox} if sandbox else {})}  # fmt: skip
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


def _is_local(reference: str) -> bool:
    """A folder on this machine (model vs model, on the host's Python) rather than an image."""
    return Path(reference).is_dir()


def _local_original(config: BenchConfig) -> OriginalSpec:
    box = Sandbox("original", python=sys.executable)
    return OriginalSpec(config.original, box, str(Path(config.original).resolve()))


def _local_slim(config: BenchConfig) -> SlimSpec:
    artifacts = str(Path(config.slim).resolve())
    command = (sys.executable, "-m", "advisor.serve")
    box = Sandbox("slim", python=sys.executable, command=command, env={"MODEL_DIR": artifacts})
    return _slim_spec(config.slim, box)


def _read_images(
    config: BenchConfig, progress: ProgressFn
) -> tuple[Inspected | None, ImageSizes | None]:
    """Both images read (sizes, model folders) before minutes of unpacking: bad input fails fast."""
    inspected = sizes = None
    if not _is_local(config.original):
        progress(0, 0, f"reading {config.original}")
        inspected = inspect_image(config.original, insecure=config.insecure)
        _model_dir(config, inspected.model_dirs)
    if not _is_local(config.slim):
        progress(0, 0, f"reading {config.slim}")
        sizes = measure_sizes(config.slim, insecure=config.insecure)
    return inspected, sizes


def _data(config: BenchConfig) -> LabelledData:
    path = config.data or default_data_path()
    if config.data is None and not path.is_file():
        raise BadInputError(
            f"no --data given and the sample held-out set {path} does not exist",
            hint="pass --data CSV (text,label), or build the sample model: python sample_models/build_sentiment.py",
        )
    return load_csv(path, config.max_samples)


def run_bench(config: BenchConfig, progress: ProgressFn = no_progress) -> BenchReport:
    """Measure ``config.original`` against ``config.slim``; raise ``BenchError`` if one cannot run.

    Each is an image reference (run in its own unpacked root filesystem) or a local folder
    (a Hugging Face model / an export artifacts folder, run with this machine's Python).
    """
    data = _data(config)
    _load_advice(config.advice)  # fail on a bad --advice before minutes of measuring
    inspected, slim_sizes = _read_images(config, progress)
    if inspected is not None or slim_sizes is not None:
        _require_sandbox(config)
    with ExitStack() as stack:
        work = Path(
            stack.enter_context(
                tempfile.TemporaryDirectory(prefix="advisor-bench-", dir=config.workdir)
            )
        )
        if inspected is None:
            original = _local_original(config)
        else:
            bundle = stack.enter_context(_unpacked(config.original, config, progress))
            model_dir = _model_dir(config, inspected.model_dirs)
            sandbox = _sandbox("original", bundle, config)
            original = OriginalSpec(config.original, sandbox, model_dir)
        if slim_sizes is None:
            slim = _local_slim(config)
        else:
            bundle = stack.enter_context(_unpacked(config.slim, config, progress))
            slim = _slim_spec(config.slim, _sandbox("slim", bundle, config))
        measured = measure(original, slim, data, config, work, progress)
        image_side = slim.sandbox if slim_sizes is not None else None
        if image_side is None and inspected is not None:
            image_side = original.sandbox
        how = _sandbox_info(config, image_side)
    sizes = (inspected.sizes if inspected else None, slim_sizes)
    return assemble(measured, sizes, config, data.path, len(data), how)
