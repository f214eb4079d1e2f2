"""``build_serving_image``: base + deps | model | app layers + config -> any writable ImageRef.

The steps, in order: open the base and walk it once (probe captures only), probe its
Python, fetch and install the wheels for that target, stage the model and the serving app,
optionally precompile bytecode, then hand the layers and the config to the writer. The
same inputs give the same bytes, hence the same manifest digest.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from advisor import __version__
from advisor.errors import BuildError
from advisor.oci.filetree import FileTree, merge_layers
from advisor.oci.layers import read_layers
from advisor.oci.loader import open_image
from advisor.oci.model import Capture, Entry, Image
from advisor.oci.writer import write_image
from advisor.serve.contract import ServingFile, ServingFileError, read_serving
from advisor.slim import layers as L
from advisor.slim.debian_base import cache_root
from advisor.slim.probe import PythonTarget, probe_capture, probe_python
from advisor.slim.trace import Trace, prune_unloaded, runs_here, trace_server
from advisor.slim.wheels import (
    compile_bytecode,
    default_requirements,
    download_wheels,
    install_wheels,
    tree_size,
)

DEFAULT_BASE = "docker.io/library/python:3.11-slim"
DEFAULT_PORT = 8080
Progress = Callable[[str], None]
Bytecode = Literal["imported", "all", "none"]


@dataclass(frozen=True)
class BuildConfig:
    """What to build: the artifacts (export's output dir), on which base, to where."""

    artifacts: Path
    destination: str
    base: str = DEFAULT_BASE
    port: int = DEFAULT_PORT
    user: L.User = field(default_factory=L.User)
    labels: Mapping[str, str] = field(default_factory=dict)
    bytecode: Bytecode = "imported"  # what to precompile: see benchmarks/build/report.md
    prune: bool = True  # drop the deps' files the running server never loads (slim.trace)
    requirements: tuple[str, ...] = ()  # empty: pins from default_requirements()
    # None: not baked, so the server sizes itself where it runs (advisor/serve/settings.py:
    # a batch worker per usable core, one onnxruntime thread each); a number is baked as env.
    workers: int | None = None
    intra_op_threads: int | None = None
    insecure: bool = False
    cache_dir: Path | None = None
    progress: Progress | None = None


@dataclass(frozen=True, slots=True)
class LayerReport:
    name: str  # deps | model | app
    digest: str
    size_bytes: int  # uncompressed content bytes
    compressed_size_bytes: int


@dataclass(frozen=True, slots=True)
class BuildResult:
    destination: str
    manifest_digest: str
    config_digest: str
    base: str
    base_digest: str
    target: PythonTarget
    layers: tuple[LayerReport, ...]
    requirements: tuple[str, ...]
    bytecode: str  # what was precompiled: imported | all | none
    packages_size_bytes: int  # the serving packages as installed, before pruning and bytecode
    model_size_bytes: int
    pruned: str = "none"  # "loaded" (only what the traced server loaded ships), or why not
    pruned_bytes: int = 0

    @property
    def added_size_bytes(self) -> int:
        return sum(layer.size_bytes for layer in self.layers)


def build_serving_image(config: BuildConfig) -> BuildResult:
    say = config.progress or (lambda _msg: None)
    check_artifacts(config.artifacts)
    say(f"reading base {config.base}")
    base = open_image(config.base, insecure=config.insecure)
    try:
        tree = _base_tree(base)
        target = probe_python(tree, base.config)
        say(
            f"base Python {target.version_str} ({target.abi}, {target.libc}, {target.architecture})"
        )
        with tempfile.TemporaryDirectory(prefix="advisor-build-") as tmp:
            return _build(config, base, tree, target, Path(tmp), say)
    finally:
        base.close()


def _base_tree(base: Image) -> FileTree:
    def capture(entry: Entry) -> Capture | None:
        if entry.path in ("etc/passwd", "etc/group"):
            return Capture(head=1 << 20)
        return probe_capture(entry)

    return merge_layers(read_layers(base, capture)).tree


def _build(
    config: BuildConfig, base: Image, tree: FileTree, target: PythonTarget, tmp: Path, say: Progress
) -> BuildResult:
    requirements = config.requirements or default_requirements()
    say(f"fetching wheels: {' '.join(requirements)}")
    wheels = download_wheels(target, requirements, config.cache_dir or cache_root())
    site = tmp / "deps"
    install_wheels(target, wheels, site)
    packages_size = tree_size(site)
    app = L.stage_app(tmp / "app")
    trace, pruned, freed = _prune(config, site, app, target, say)
    bytecode = _compile(config.bytecode, site, app, trace, target)
    specs = {
        "deps": L.deps_layer(site),
        "model": L.model_layer(config.artifacts),
        "app": L.app_layer(app, tree.read("etc/passwd"), tree.read("etc/group"), config.user),
    }
    say(f"writing {config.destination}")
    written = write_image(
        config.destination,
        list(specs.values()),
        image_config(config, target, base, requirements),
        base=base,
        annotations=manifest_annotations(config, base),
        compression="gzip-best",  # built once, pulled by every node: worth 15 s of zlib
    )
    new = written.layers[len(base.layers) :]
    reports = tuple(
        LayerReport(name, rec.digest, L.content_size(spec), rec.size)
        for (name, spec), rec in zip(specs.items(), new, strict=True)
    )
    return BuildResult(
        destination=written.reference,
        manifest_digest=written.manifest_digest,
        config_digest=written.config_digest,
        base=config.base,
        base_digest=base.digest,
        target=target,
        layers=reports,
        requirements=tuple(requirements),
        bytecode=bytecode,
        packages_size_bytes=packages_size,
        model_size_bytes=L.content_size(specs["model"]),
        pruned=pruned,
        pruned_bytes=freed,
    )


def _prune(
    config: BuildConfig, site: Path, app: Path, target: PythonTarget, say: Progress
) -> tuple[Trace | None, str, int]:
    """Trace the staged server; with ``prune``, drop what it never loaded and trace again:
    the pruned tree must load nothing new and answer every request byte for byte the same."""
    why = runs_here(target)
    if why is not None:
        say(f"not tracing the server ({why}): the wheels ship whole")
        return None, f"none: {why}", 0
    if not config.prune and config.bytecode != "imported":
        return None, "none", 0
    say("tracing what the server loads")
    first = trace_server([site, app], config.artifacts)
    if not config.prune:
        return first, "none", 0
    pruned = prune_unloaded(site, first.files)
    say(f"pruned {pruned.files} files ({pruned.bytes} bytes) the server never loads")
    again = trace_server([site, app], config.artifacts)
    if again.answers != first.answers or not again.files <= first.files:
        new = sorted(str(f) for f in again.files - first.files)[:3]
        raise BuildError(
            "the pruned dependencies serve differently" + (f" (now loading {new})" if new else ""),
            hint="build with --no-prune (and report it: pruning must never change an answer)",
        )
    return again, "loaded", pruned.bytes


def _compile(mode: Bytecode, site: Path, app: Path, trace: Trace | None, target: PythonTarget) -> str:
    """Precompile the deps and the app: all of it, or exactly the modules the server loaded."""
    if mode == "none":
        return "none"
    roots = [site.resolve(), app.resolve()]
    used = {f for f in trace.files if f.suffix == ".py"} if mode == "imported" and trace else None
    done = all(
        compile_bytecode(
            r,
            f"/{prefix}",
            target,
            None if used is None else {f for f in used if f.is_relative_to(r)},
        )
        for r, prefix in zip(roots, (L.DEPS_DIR, L.APP_DIR), strict=True)
    )
    if not done:
        return "none"
    return "all" if used is None else "imported"


# The tasks advisor.serve.model has a head for; a copy, since importing it would make
# `advisor build` need numpy (tests/serve checks that the two agree).
SERVED_TASKS = ("text-classification", "token-classification", "feature-extraction")


def check_artifacts(artifacts: Path) -> None:
    """Fail before any download: the files of the contract, and a task the server serves."""
    L.model_files(artifacts)
    task = serving_info(artifacts).task
    if task not in SERVED_TASKS:
        raise BuildError(
            f"the serving image serves {', '.join(SERVED_TASKS)}; {artifacts} is {task!r}",
            hint="export one of those tasks with advisor export, or serve this one yourself",
        )


def serving_info(artifacts: Path) -> ServingFile:
    try:
        return read_serving(artifacts)
    except ServingFileError as e:
        raise BuildError(f"{artifacts}: {e}", hint="re-run advisor export") from e


def labels(config: BuildConfig, base: Image) -> dict[str, str]:
    info = serving_info(config.artifacts)
    out = {
        "org.opencontainers.image.title": f"{info.model_name or 'model'} (advisor slim serving image)",
        "org.opencontainers.image.description": f"{info.task} served by onnxruntime",
        "org.opencontainers.image.version": __version__,
        "org.opencontainers.image.base.name": config.base,
        "org.opencontainers.image.base.digest": base.digest,
        "org.opencontainers.image.vendor": "advisor",
        "io.advisor.model.name": info.model_name,
        "io.advisor.model.onnx-sha256": info.onnx_sha256,
        "io.advisor.model.quantization": info.quantization,
    }
    return dict(sorted({**out, **config.labels}.items()))


def manifest_annotations(config: BuildConfig, base: Image) -> dict[str, str]:
    return {
        k: v for k, v in labels(config, base).items() if k.startswith("org.opencontainers.image.")
    }


def image_config(
    config: BuildConfig, target: PythonTarget, base: Image, requirements: tuple[str, ...]
) -> dict[str, Any]:
    port = str(config.port)
    env = [e for e in base.config.env if e.split("=", 1)[0] not in _OWN_ENV]
    env += [
        f"PYTHONPATH=/{L.DEPS_DIR}:/{L.APP_DIR}",
        "PYTHONDONTWRITEBYTECODE=1",
        "PYTHONUNBUFFERED=1",
        f"MODEL_DIR=/{L.MODEL_DIR}",
        f"PORT={port}",
        f"ADVISOR_VERSION={__version__}",
    ]
    if config.workers is not None:
        env.append(f"WORKERS={config.workers}")
    if config.intra_op_threads is not None:
        env.append(f"ORT_INTRA_OP_THREADS={config.intra_op_threads}")
    probe = "import os,urllib.request as u;u.urlopen('http://127.0.0.1:%s/health'%os.environ.get('PORT','8080'),timeout=2)"
    history = [
        {"created_by": f"advisor: pip install --target /{L.DEPS_DIR} {' '.join(requirements)}"},
        {"created_by": f"advisor: COPY model artifacts /{L.MODEL_DIR}"},
        {"created_by": f"advisor: COPY advisor/serve /{L.APP_DIR}; useradd {config.user.name}"},
    ]
    return {
        "config": {
            "User": f"{config.user.uid}:{config.user.gid}",
            "Env": sorted(env),
            "Entrypoint": [target.executable, "-m", "advisor.serve"],
            "Cmd": None,
            "WorkingDir": f"/{L.APP_DIR}",
            "ExposedPorts": {f"{port}/tcp": {}},
            "Labels": labels(config, base),
            "StopSignal": "SIGTERM",
            "Healthcheck": {
                "Test": ["CMD", target.executable, "-c", probe],
                "Interval": 30_000_000_000,
                "Timeout": 5_000_000_000,
                "StartPeriod": 10_000_000_000,
                "Retries": 3,
            },
        },
        "history": history,
    }


_OWN_ENV = {
    "PYTHONPATH",
    "PYTHONDONTWRITEBYTECODE",
    "PYTHONUNBUFFERED",
    "MODEL_DIR",
    "PORT",
    "WORKERS",
    "ORT_INTRA_OP_THREADS",
    "ADVISOR_VERSION",
}
