"""The serving dependencies as wheels for the probed target, installed into a staging dir.

``pip download`` resolves onnxruntime, numpy and tokenizers for the base's Python (its
version, ABI, libc and architecture, never the host's) into a per-target wheel cache;
``pip install --target --no-index --no-deps`` then installs exactly those files. Only the
three packages go in: onnxruntime's flatbuffers/packaging/protobuf/sympy and tokenizers'
huggingface_hub are never imported by ``InferenceSession`` or ``Tokenizer.from_file``.
What pip leaves that would differ between builds or point at the host (console scripts
with the host's shebang, ``direct_url.json``) is removed, and RECORD says so.
"""

from __future__ import annotations

import csv
import hashlib
import importlib.util
import io
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from advisor.errors import BuildError
from advisor.slim.probe import PythonTarget

# The model's runtime, then the transport (uvicorn on h11; click is uvicorn's one import-time
# dependency) and the metrics: ~2.5 MB installed past the model's runtime.
SERVING_PACKAGES = ("onnxruntime", "numpy", "tokenizers", "uvicorn", "h11", "click",
                    "prometheus_client")
FALLBACK_PINS = {"onnxruntime": "1.32.0", "numpy": "2.4.6", "tokenizers": "0.23.3",
                 "uvicorn": "0.54.0", "h11": "0.16.0", "click": "8.5.1",
                 "prometheus_client": "0.26.0"}
_PIP_TIMEOUT = 900


@dataclass(frozen=True, slots=True)
class InstalledDeps:
    root: Path
    requirements: tuple[str, ...]
    wheels: tuple[str, ...]  # file names, sorted
    size_bytes: int  # installed bytes, before bytecode


def default_requirements() -> tuple[str, ...]:
    """Pins to the versions this advisor exported and validated with (deterministic builds)."""
    pins = []
    for name in SERVING_PACKAGES:
        try:
            version = metadata.version(name)
        except metadata.PackageNotFoundError:
            version = FALLBACK_PINS[name]
        pins.append(f"{name}=={version}")
    return tuple(pins)


def target_args(target: PythonTarget) -> list[str]:
    args = ["--only-binary=:all:", "--implementation", target.implementation]
    args += ["--python-version", target.version_str, "--abi", target.abi]
    for tag in target.platform_tags():
        args += ["--platform", tag]
    return args


def target_key(target: PythonTarget, requirements: Sequence[str]) -> str:
    text = "\n".join([*target_args(target), *sorted(requirements)])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def download_wheels(target: PythonTarget, requirements: Sequence[str], cache: Path) -> list[Path]:
    """Wheels for ``target`` in ``cache/wheels/<key>`` (downloaded once, then reused)."""
    wheel_dir = cache / "wheels" / target_key(target, requirements)
    done = wheel_dir / ".complete"
    if not done.exists():
        wheel_dir.mkdir(parents=True, exist_ok=True)
        _pip(
            ["download", "--no-deps", "--dest", str(wheel_dir), *target_args(target), *requirements]
        )
        done.write_text("\n".join(sorted(requirements)) + "\n")
    wheels = sorted(wheel_dir.glob("*.whl"))
    if len(wheels) != len(requirements):
        raise BuildError(
            f"expected {len(requirements)} wheels in {wheel_dir}, found {len(wheels)}",
            hint=f"delete {wheel_dir} and build again",
        )
    return wheels


def install_wheels(target: PythonTarget, wheels: Sequence[Path], dest: Path) -> None:
    """Install exactly ``wheels`` into ``dest`` (a --target dir), then drop host leftovers."""
    dest.mkdir(parents=True, exist_ok=True)
    _pip(
        ["install", "--no-index", "--no-deps", "--no-compile", "--target", str(dest)]
        + target_args(target)
        + [str(w) for w in wheels]
    )
    _drop_host_leftovers(dest)


def _pip(args: list[str]) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "--disable-pip-version-check",
        "--no-cache-dir",
        "--no-input",
        *args,
    ]
    env = os.environ | {"PIP_NO_CACHE_DIR": "1", "PYTHONDONTWRITEBYTECODE": "1"}
    try:
        subprocess.run(
            cmd, check=True, capture_output=True, text=True, env=env, timeout=_PIP_TIMEOUT
        )
    except subprocess.CalledProcessError as e:
        tail = " | ".join((e.stderr or e.stdout or "").strip().splitlines()[-3:])
        raise BuildError(
            f"pip {args[0]} failed: {tail}", hint="check the package index is reachable"
        ) from e
    except subprocess.TimeoutExpired as e:
        raise BuildError(
            f"pip {args[0]} timed out", hint="check the package index is reachable"
        ) from e


def _drop_host_leftovers(dest: Path) -> None:
    shutil.rmtree(dest / "bin", ignore_errors=True)
    for dist_info in sorted(dest.glob("*.dist-info")):
        (dist_info / "direct_url.json").unlink(missing_ok=True)
        (dist_info / "REQUESTED").unlink(missing_ok=True)
        rewrite_record(dist_info, dest)
    for cache in sorted(dest.rglob("__pycache__"), reverse=True):
        shutil.rmtree(cache, ignore_errors=True)


def rewrite_record(dist_info: Path, root: Path) -> None:
    """Keep only RECORD rows whose files are still installed, sorted."""
    record = dist_info / "RECORD"
    if not record.exists():
        return
    rows: list[list[str]] = [r for r in csv.reader(io.StringIO(record.read_text())) if r]
    kept = [r for r in rows if _inside(root, r[0]) and (root / r[0]).exists()]
    out = io.StringIO()
    kept.sort(key=lambda r: r[0])
    csv.writer(out, lineterminator="\n").writerows(kept)
    record.write_text(out.getvalue())


def _inside(root: Path, rel: str) -> bool:
    return (root / rel).resolve().is_relative_to(root.resolve())


def tree_size(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file() and not p.is_symlink())


COMPILE_SCRIPT = """
import json, py_compile, sys
for src, cfile, dfile in json.load(sys.stdin):
    py_compile.compile(src, cfile=cfile, dfile=dfile, doraise=True,
                       invalidation_mode=py_compile.PycInvalidationMode.UNCHECKED_HASH)
"""


def compile_bytecode(
    root: Path, image_dir: str, target: PythonTarget, only: Collection[Path] | None = None
) -> bool:
    """Precompile ``root`` as it will sit at ``image_dir`` (unchecked-hash pycs: no mtimes).

    ``only`` limits it to those source files (the ones the server imports). It runs in a
    fresh isolated interpreter with a fixed hash seed: marshal's output depends on the
    compiling process's refcounts, so compiling inside a long-lived build process gives
    different bytes for the same source. Only when this interpreter's version is the
    target's (the pyc format changes per version); returns whether bytecode was written.
    """
    if sys.version_info[:2] != target.version:
        return False
    sources = sorted(only if only is not None else root.rglob("*.py"))
    jobs = [
        (
            str(src),
            importlib.util.cache_from_source(str(src)),
            f"{image_dir}/{src.relative_to(root).as_posix()}",
        )
        for src in sources
    ]
    env = {"PYTHONHASHSEED": "0", "PATH": os.defpath}
    try:
        subprocess.run(
            [sys.executable, "-I", "-S", "-c", COMPILE_SCRIPT],
            input=json.dumps(jobs), check=True, capture_output=True, text=True, env=env, timeout=600,
        )  # fmt: skip
    except subprocess.CalledProcessError as e:
        tail = " | ".join(e.stderr.strip().splitlines()[-2:])
        raise BuildError(
            f"byte-compiling {root} failed: {tail}", hint="build with bytecode none"
        ) from e
    return True
