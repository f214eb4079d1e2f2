"""Synthetic images for the advise benchmark, written by advisor's writer.

A Debian rootfs from mmdebstrap, the Python packages of this checkout's venv (``small``: a few;
``big``: all of them, torch included) with a pip cache, and a clean-up layer that deletes and
overwrites files: the waste dive and advisor must count alike. For the case-study image pass
``--archive`` and ``--oci`` to ``run.py`` instead.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from advisor.oci.tarball import FileSpec, spec_from_dir
from advisor.oci.writer import write_image

SITE = (
    Path(sys.prefix)
    / "lib"
    / f"python{sys.version_info.major}.{sys.version_info.minor}"
    / "site-packages"
)
SMALL_PACKAGES = [
    "transformers",
    "tokenizers",
    "huggingface_hub",
    "numpy",
    "safetensors",
    "yaml",
    "regex",
]
PY_TARGET = "usr/local/lib/python3.11/site-packages"
PIP_CACHE = "root/.cache/pip"

def build_rootfs(workdir: Path) -> Path | None:
    rootfs = workdir / "rootfs"
    if rootfs.exists():
        return rootfs
    if shutil.which("mmdebstrap") is None:
        return None
    cmd = ["mmdebstrap", "--variant=minbase", "--include=python3", "bookworm", str(rootfs)]
    if subprocess.run(cmd, capture_output=True, check=False).returncode != 0:
        shutil.rmtree(rootfs, ignore_errors=True)
        return None
    return rootfs


def packages_layer(names: list[str] | None) -> dict[str, FileSpec]:
    spec: dict[str, FileSpec] = {}
    for entry in sorted(SITE.iterdir()):
        if (
            names is not None
            and entry.name not in names
            and not any(
                entry.name.startswith(n.replace("_", "-") + "-") or entry.name.startswith(n + "-")
                for n in names
            )
        ):
            continue
        if entry.is_dir():
            spec.update(spec_from_dir(entry, prefix=f"{PY_TARGET}/{entry.name}"))
        else:
            spec[f"{PY_TARGET}/{entry.name}"] = FileSpec(source=entry)
    return spec


def cache_layer() -> dict[str, FileSpec]:
    """A pip cache left by ``pip install`` (numpy's files under /root/.cache/pip), deleted later."""
    numpy = SITE / "numpy"
    return spec_from_dir(numpy, prefix=f"{PIP_CACHE}/http-v2/numpy")


def cleanup_layer(pkgs: dict[str, FileSpec]) -> dict[str, Any]:
    """Delete the pip cache, every test directory and __pycache__, overwrite a few files: the
    waste dive and advisor must count alike."""
    spec: dict[str, Any] = {PIP_CACHE: FileSpec(whiteout=True)}
    for path in pkgs:
        name = path.rsplit("/", 1)[-1]
        if name in ("tests", "__pycache__") and pkgs[path].dir:
            spec[path] = FileSpec(whiteout=True)
    for path in sorted(p for p in pkgs if p.endswith("/__init__.py"))[:200]:
        spec[path] = b"# patched\n"
    return spec


def build_images(workdir: Path, size: str) -> tuple[str, str]:
    rootfs = build_rootfs(workdir)
    layers: list[Any] = []
    history: list[dict[str, str]] = []
    if rootfs is not None:
        layers.append(spec_from_dir(rootfs, skip_special=True))
        history.append({"created_by": "ADD rootfs.tar / (mmdebstrap bookworm minbase + python3)"})
    pkgs = packages_layer(SMALL_PACKAGES if size == "small" else None)
    layers += [{**pkgs, **cache_layer()}, cleanup_layer(pkgs)]
    history += [
        {"created_by": "RUN pip install ..."},
        {"created_by": "RUN rm -rf /root/.cache/pip && find / -name tests -exec rm -rf {} +"},
    ]
    cfg = {"history": history}
    archive = workdir / f"{size}.tar"
    if not archive.exists():
        write_image(f"docker-archive:{archive}:bench/{size}:1", layers, cfg)
    layout = workdir / f"{size}-oci"
    if not layout.exists():
        write_image(f"oci:{layout}:1", layers, cfg, compression="gzip")
    return f"docker-archive:{archive}", f"oci:{layout}:1"


