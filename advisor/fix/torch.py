"""The CUDA torch swap: the CPU build of the same torch version, installed where the CUDA one
was, as one new layer; the CUDA build's files and the GPU-only packages it alone needed are
removed from their own layers (``plan``: the ``ml-cuda-torch`` finding's paths).

The wheel comes from a source the user names: a directory (``--wheels``) or an index
(``--index-url``, fetched with ``pip download``). It is installed by pypa's ``installer``
(the reference wheel installer: RECORD with hashes, ``INSTALLER``, console scripts with the
image's interpreter, ``.data`` schemes) into a staging tree laid out like the image, without
compiling bytecode; nothing else in the environment changes: no dependency is resolved or
installed (the CUDA build required everything the CPU build does). Existing directories keep
the image's own mode, owner and mtime in the new layer.
"""

from __future__ import annotations

import posixpath
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from advisor.advise.facts.context import Context
from advisor.oci.model import EntryKind
from advisor.oci.tarball import BuiltLayer, Compression, FileSpec, build_layer, spec_from_dir

_PLATFORMS = {"amd64": ("x86_64",), "arm64": ("aarch64",)}


@dataclass(frozen=True)
class TorchSwap:
    """The CPU torch layer and what it replaces."""

    wheel: Path
    version: str  # the CUDA build's version, e.g. 2.13.0+cu130
    cpu_version: str  # 2.13.0+cpu
    layer: BuiltLayer
    added_bytes: int  # file bytes the new layer adds

    @property
    def history(self) -> dict[str, str]:
        return {"created_by": f"advisor fix: torch {self.version} -> {self.cpu_version} "
                              f"(the CPU build, from {self.wheel.name})",
                "comment": f"advisor fix cpu-torch added {self.added_bytes} bytes"}


def _tags(python_version: str, architecture: str) -> tuple[str, tuple[str, ...]]:
    major_minor = "".join(python_version.split(".")[:2])
    return f"cp{major_minor}", _PLATFORMS.get(architecture, (architecture,))


def _fits(wheel: Path, base: str, python_tag: str, machines: tuple[str, ...]) -> bool:
    """``torch-BASE+cpu-...whl`` for this Python (or py3) and machine (or any)."""
    m = re.match(r"^torch-([^-]+)-([^-]+)-([^-]+)-([^-]+)\.whl$", wheel.name)
    if m is None:
        return False
    version, py, _abi, plat = m.groups()
    if version.split("+", 1)[0] != base or "+cpu" not in version:
        return False
    py_ok = python_tag in py.split(".") or "py3" in py.split(".")
    plat_ok = plat == "any" or any(plat.endswith(machine) for machine in machines)
    return py_ok and plat_ok


def find_wheel(version: str, python_version: str, architecture: str, wheels: Path | None,
               index_url: str | None, work: Path) -> tuple[Path | None, str]:
    """(the CPU wheel, "") or (None, why not) from the named source."""
    base = version.split("+", 1)[0]
    python_tag, machines = _tags(python_version or "3", architecture)
    if wheels is not None:
        found = sorted(w for w in wheels.glob("torch-*.whl") if _fits(w, base, python_tag, machines))
        if found:
            return found[-1], ""
        return None, f"no torch-{base}+cpu wheel for {python_tag}/{machines[0]} in {wheels}"
    if index_url is None:
        return None, "no CPU torch wheel source: pass --wheels DIR or --index-url URL"
    dest = work / "wheels"
    cmd = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--only-binary=:all:",
           "--index-url", index_url, "--python-version", python_version or "3",
           "--implementation", "cp", "--platform", f"manylinux_2_28_{machines[0]}",
           "-d", str(dest), f"torch=={base}+cpu"]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    found = sorted(w for w in dest.glob("torch-*.whl") if _fits(w, base, python_tag, machines))
    if done.returncode != 0 or not found:
        tail = " | ".join((done.stderr or "").strip().splitlines()[-2:])
        return None, f"pip download torch=={base}+cpu from {index_url} failed: {tail}"
    return found[-1], ""


def _interpreter(ctx: Context, root: str) -> str:
    for name in ("python3", "python"):
        path = posixpath.join(root, "bin", name) if root else f"usr/bin/{name}"
        if path in ctx.tree:
            return "/" + path
    return "/usr/bin/python3"


def _install(wheel: Path, stage: Path, site: str, root: str, interpreter: str) -> None:
    from installer import install
    from installer.destinations import SchemeDictionaryDestination
    from installer.sources import WheelFile

    prefix = stage / root if root else stage / "usr"
    scheme = {"purelib": str(stage / site), "platlib": str(stage / site),
              "scripts": str(prefix / "bin"), "data": str(prefix),
              "headers": str(prefix / "include" / "torch")}
    destination = SchemeDictionaryDestination(scheme, interpreter=interpreter, script_kind="posix",
                                              bytecode_optimization_levels=())
    with WheelFile.open(wheel) as source:
        install(source, destination, additional_metadata={"INSTALLER": b"advisor-fix\n"})


def build_swap(ctx: Context, wheel: Path, work: Path, compression: Compression) -> TorchSwap:
    """The layer holding the CPU build where the CUDA one is installed."""
    torch = ctx.dists["torch"]
    env = next((e for e in ctx.environments if e.path == torch.environment), None)
    root = env.root if env is not None else ""
    stage = work / "torch-stage"
    _install(wheel, stage, torch.environment, root, _interpreter(ctx, root))
    spec: dict[str, bytes | FileSpec] = {}
    added = 0
    for path, fs in spec_from_dir(stage).items():
        info = ctx.tree.get(path)
        if fs.dir and info is not None and info.kind is EntryKind.DIR:
            fs = FileSpec(dir=True, mode=info.mode & 0o7777, uid=info.uid, gid=info.gid, mtime=info.mtime)
        elif fs.source is not None:
            added += fs.source.stat().st_size
        spec[path] = fs
    layer = build_layer(spec, work / "blobs", compression)
    cpu = next(stage.glob(f"{torch.environment}/torch-*.dist-info")).name[len("torch-"):-len(".dist-info")]
    return TorchSwap(wheel, torch.version, cpu, layer, added)
