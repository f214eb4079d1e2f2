"""An offline stand-in for ``python:3.11-slim``: Debian bookworm + python3 via mmdebstrap.

``ensure_debian_base(variant)`` builds (once, then from the cache under
``${ADVISOR_CACHE:-~/.cache/advisor}/bases/<key>``) an OCI layout holding one layer:
- ``full``: ``mmdebstrap --variant=minbase --include=python3 bookworm`` as is;
- ``slim``: the same tree keeping only the Debian packages that Python 3 and the wheels'
  native code load (the dependency closure of ``python3.11`` plus ``libstdc++6`` and
  ``libgcc-s1``), without apt, dpkg, a shell, docs, man pages or locales.
The cache key covers the suite, the package list, the apt sources and this module's recipe.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from advisor.errors import BuildError, MissingDependencyError
from advisor.oci.tarball import FileSpec, spec_from_dir
from advisor.oci.writer import write_image

SUITE = "bookworm"
INCLUDE = ("python3",)
SOURCES = Path("/etc/apt/sources.list.d/debian.sources")
RECIPE_VERSION = "2"
TAG = "bookworm-python3"
SLIM_RECIPE = "3"  # bump when slim_spec's rules change
SLIM_ROOT_PACKAGES = (
    "python3",
    "python3.11",
    "python3.11-minimal",
    "libpython3.11-stdlib",
    "libstdc++6",
    "libgcc-s1",
)
# Tools some package (pre-)depends on for its maintainer scripts, never run by a server.
SLIM_NEVER = (
    "adduser", "apt", "base-passwd", "bash", "coreutils", "dash", "debconf", "debianutils",
    "diffutils", "dpkg", "findutils", "grep", "gzip", "hostname", "init-system-helpers",
    "login", "mount", "ncurses-bin", "passwd", "perl-base", "sed", "sysvinit-utils", "tar",
    "util-linux",
)  # fmt: skip
SLIM_DROP_DIRS = (
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
    "usr/share/lintian",
    "usr/share/common-licenses",
    "var/lib/apt",
    "var/lib/dpkg",
    "var/cache",
    "var/log",
    # glibc's iconv modules: Python's codecs are its own, nothing here calls iconv()
    "usr/lib/x86_64-linux-gnu/gconv",
    # stdlib parts a server never imports (tools, docs, GUI, the 2to3 converter)
    "usr/lib/python3.11/pydoc_data",
    "usr/lib/python3.11/lib2to3",
    "usr/lib/python3.11/idlelib",
    "usr/lib/python3.11/tkinter",
    "usr/lib/python3.11/turtledemo",
    "usr/lib/python3.11/ensurepip",
)
SLIM_DROP_PATHS = ("bin/sh", "usr/bin/sh")


@dataclass(frozen=True, slots=True)
class BaseImage:
    reference: str  # oci:DIR:TAG
    layout: Path
    size_bytes: int  # regular-file bytes in the root filesystem
    files: int


def cache_root() -> Path:
    return Path(os.environ.get("ADVISOR_CACHE") or Path.home() / ".cache" / "advisor")


def base_key(sources: bytes) -> str:
    """Names the mmdebstrap root filesystem: suite, packages, apt sources."""
    return _digest((SUITE, ",".join(INCLUDE), RECIPE_VERSION), sources)


def variant_key(variant: str) -> str:
    """Names one layout made from that root filesystem (the slim recipe is part of it)."""
    if variant == "full":
        return _digest((variant, RECIPE_VERSION))
    return _digest(
        (
            variant,
            RECIPE_VERSION,
            SLIM_RECIPE,
            *SLIM_ROOT_PACKAGES,
            *SLIM_NEVER,
            *SLIM_DROP_DIRS,
            *SLIM_DROP_PATHS,
        )
    )


def _digest(parts: tuple[str, ...], extra: bytes = b"") -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(part.encode() + b"\0")
    h.update(extra)
    return h.hexdigest()[:16]


def ensure_debian_base(variant: str = "full", cache: Path | None = None) -> BaseImage:
    """The cached base layout for ``variant`` ("full" or "slim"), building it when absent."""
    if variant not in ("full", "slim"):
        raise BuildError(f"unknown base variant {variant!r}", hint="use full or slim")
    sources = _sources()
    root = (cache or cache_root()) / "bases" / f"debian-{SUITE}-{base_key(sources)}"
    layout = root / f"{variant}-{variant_key(variant)}"
    if not (layout / "index.json").exists():
        rootfs = _ensure_rootfs(root, sources)
        _drop_device_nodes(rootfs)
        spec: dict[str, bytes | FileSpec] = dict(spec_from_dir(rootfs, keep_owner=True))
        if variant == "slim":
            spec = slim_spec(spec, rootfs)
        _write_base(layout, spec)
        size = sum(
            f.source.stat().st_size
            for f in spec.values()
            if isinstance(f, FileSpec) and f.source and not f.hardlink
        )
        (layout / f".size-{variant}").write_text(f"{size} {len(spec)}\n")
    return _describe(layout, root / "rootfs", variant)


def _sources() -> bytes:
    if not SOURCES.exists():
        raise BuildError(
            f"no apt sources at {SOURCES}", hint="this recipe needs a Debian host with apt sources"
        )
    return SOURCES.read_bytes()


def _ensure_rootfs(root: Path, sources: bytes) -> Path:
    rootfs = root / "rootfs"
    if (rootfs / "usr/bin/python3").exists() or (rootfs / "usr/bin/python3").is_symlink():
        return rootfs
    if shutil.which("mmdebstrap") is None:
        raise MissingDependencyError("mmdebstrap (apt-get install mmdebstrap)", "dev")
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".rootfs-", dir=root))
    src = root / "sources.list"
    src.write_bytes(sources)
    cmd = [
        "mmdebstrap", "--quiet", "--mode=root", "--variant=minbase", "--skip=output/dev",
        f"--include={','.join(INCLUDE)}", SUITE, str(tmp), str(SOURCES),
    ]  # fmt: skip
    env = os.environ | {"SOURCE_DATE_EPOCH": "0"}
    try:
        subprocess.run(cmd, check=True, capture_output=True, text=True, env=env, timeout=900)
    except subprocess.CalledProcessError as e:
        shutil.rmtree(tmp, ignore_errors=True)
        tail = (e.stderr or "").strip().splitlines()[-3:]
        raise BuildError(
            f"mmdebstrap failed: {' | '.join(tail)}", hint="check the apt mirror is reachable"
        ) from e
    os.replace(tmp, rootfs)
    return rootfs


def _drop_device_nodes(rootfs: Path) -> None:
    """A container runtime provides /dev; an image layer never carries device nodes."""
    for node in sorted((rootfs / "dev").iterdir()):
        if not (node.is_symlink() or node.is_dir() or node.is_file()):
            node.unlink()
        elif node.is_dir() and not node.is_symlink() and node.name != "pts" and node.name != "shm":
            shutil.rmtree(node)


def _write_base(layout: Path, spec: Mapping[str, bytes | FileSpec]) -> None:
    config = {
        "architecture": _dpkg_arch_to_oci(),
        "os": "linux",
        "config": {
            "Env": [
                "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                "LANG=C.UTF-8",
            ],
            "Cmd": ["/usr/bin/python3"],
        },
        "history": [
            {"created_by": f"mmdebstrap --variant=minbase --include={','.join(INCLUDE)} {SUITE}"}
        ],
    }
    write_image(f"oci:{layout}:{TAG}", [spec], config)


def _dpkg_arch_to_oci() -> str:
    machine = os.uname().machine
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)


def _describe(layout: Path, rootfs: Path, variant: str) -> BaseImage:
    size = files = 0
    marker = layout / f".size-{variant}"
    if marker.exists():
        size, files = (int(x) for x in marker.read_text().split())
    return BaseImage(f"oci:{layout}:{TAG}", layout, size, files)


# -- the slim variant --------------------------------------------------------------------


def slim_spec(spec: Mapping[str, bytes | FileSpec], rootfs: Path) -> dict[str, bytes | FileSpec]:
    """Drop the files of every package outside the runtime closure, and the package tools.

    A path is dropped only when no kept package lists it too, and never when it is a
    directory or a link to one (merged /usr: ``/lib`` and ``/bin`` are such links).
    """
    status = (rootfs / "var/lib/dpkg/status").read_text()
    keep = dependency_closure(parse_status(status), SLIM_ROOT_PACKAGES, exclude=SLIM_NEVER)
    listed: dict[bool, set[str]] = {True: set(), False: set()}
    for lst in sorted((rootfs / "var/lib/dpkg/info").glob("*.list")):
        kept = lst.stem.split(":", 1)[0] in keep
        listed[kept].update(
            _in_tree(p, rootfs) for p in lst.read_text().splitlines() if p.strip("/")
        )
    drop = (listed[False] - listed[True]) | set(SLIM_DROP_PATHS)
    out = {}
    for path, entry in spec.items():
        if path in drop and not _is_dir_like(entry, rootfs / path):
            continue
        if any(path == d or path.startswith(d + "/") for d in SLIM_DROP_DIRS):
            continue
        out[path] = entry
    return out


def _is_dir_like(entry: bytes | FileSpec, full: Path) -> bool:
    if isinstance(entry, FileSpec) and entry.dir:
        return True
    if isinstance(entry, FileSpec) and entry.symlink is not None:
        target = entry.symlink
        resolved = (full.parent / target) if not target.startswith("/") else None
        return resolved is not None and resolved.is_dir()
    return False


def _in_tree(listed: str, rootfs: Path) -> str:
    """A path from a dpkg .list in the tree's spelling (merged /usr: /bin/x is usr/bin/x)."""
    parent, name = os.path.split(listed.strip("/"))
    real_parent = os.path.realpath(rootfs / parent) if parent else str(rootfs)
    rel = os.path.relpath(real_parent, rootfs)
    return name if rel == "." else f"{rel}/{name}"


def parse_status(status: str) -> dict[str, list[str]]:
    """Installed package -> the package names it (pre-)depends on (first alternative)."""
    deps: dict[str, list[str]] = {}
    for stanza in status.split("\n\n"):
        fields = {}
        for line in stanza.splitlines():
            if line and not line[0].isspace() and ":" in line:
                key, value = line.split(":", 1)
                fields[key] = value.strip()
        if "Package" in fields and "installed" in fields.get("Status", ""):
            rels = ", ".join(v for k, v in fields.items() if k in ("Depends", "Pre-Depends"))
            deps[fields["Package"]] = [_first_name(r) for r in rels.split(",") if r.strip()]
    return deps


def _first_name(relation: str) -> str:
    first = relation.split("|", 1)[0].strip()
    return re.split(r"[\s(:]", first, maxsplit=1)[0]


def dependency_closure(
    deps: Mapping[str, list[str]], roots: Iterable[str], exclude: Iterable[str] = ()
) -> set[str]:
    """Installed packages reachable from ``roots``, never entering ``exclude``."""
    seen: set[str] = set(exclude)
    todo = [r for r in roots if r in deps]
    while todo:
        pkg = todo.pop()
        if pkg in seen:
            continue
        seen.add(pkg)
        todo.extend(d for d in deps.get(pkg, []) if d in deps and d not in seen)
    return seen - set(exclude)
