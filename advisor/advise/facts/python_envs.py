"""Every Python environment in the merged filesystem: where its packages live and its version.

A "site directory" is any directory that holds installed distributions (``*.dist-info``,
``*.egg-info``) or is named ``site-packages``/``dist-packages``, plus the ``PYTHONPATH``
entries of the image config. Each is classified (system, venv, conda, user, target) from
the layout around it.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from advisor.oci.filetree import FileTree
from advisor.oci.model import EntryKind

_LIB_PY = re.compile(r"^(?:(?P<root>.*)/)?lib(?:64)?/python(?P<ver>\d+\.\d+)t?/(?:site|dist)-packages$")
_PYVER = re.compile(r"python(\d+\.\d+)")
_BIN_PY = re.compile(r"^(?:usr/(?:local/)?)?bin/python(\d+\.\d+)$")


@dataclass(frozen=True, slots=True)
class PythonEnv:
    """One site directory. ``root`` is the environment prefix (``usr/local``, a venv dir)."""

    path: str
    python_version: str
    kind: str  # system | venv | conda | user | target | pythonpath
    root: str
    size_bytes: int


def _site_dir_of(path: str) -> str | None:
    for marker in ("/site-packages/", "/dist-packages/"):
        i = path.find(marker)
        if i >= 0:
            return path[: i + len(marker) - 1]
    return None


def _candidate_site_dirs(tree: FileTree) -> set[str]:
    found: set[str] = set()
    for info in tree:
        site = _site_dir_of(info.path)
        if site is not None:
            found.add(site)
            continue
        parts = info.path.split("/")
        for i, part in enumerate(parts[1:], start=1):
            if part.endswith((".dist-info", ".egg-info")):
                found.add("/".join(parts[:i]))
                break
    return found


def _pythonpath_dirs(env: Iterable[str], tree: FileTree) -> list[str]:
    dirs: list[str] = []
    for item in env:
        key, _, value = item.partition("=")
        if key != "PYTHONPATH":
            continue
        for part in value.split(":"):
            p = tree.resolve(part) if part.strip("/") else ""
            if p and tree.is_dir(p):
                dirs.append(p)
    return dirs


def _cfg_version(tree: FileTree, root: str) -> str:
    raw = tree.read(posixpath.join(root, "pyvenv.cfg")) if root else None
    if not raw:
        return ""
    for line in raw.decode("utf-8", "replace").splitlines():
        key, _, value = line.partition("=")
        if key.strip() in ("version", "version_info"):
            parts = value.strip().split(".")
            return ".".join(parts[:2])
    return ""


def image_python_version(tree: FileTree) -> str:
    """The highest ``pythonX.Y`` binary in the usual bin directories (the image's main Python)."""
    versions: list[tuple[int, ...]] = []
    for d in ("usr/local/bin", "usr/bin", "bin"):
        for name in tree.listdir(d):
            m = _BIN_PY.match(f"{d}/{name}")
            if m:
                versions.append(tuple(int(x) for x in m.group(1).split(".")))
    if not versions:
        return ""
    return ".".join(str(x) for x in max(versions))


def _classify(tree: FileTree, site: str, pythonpath: Sequence[str]) -> tuple[str, str, str]:
    """(kind, root, version) of one site directory."""
    m = _LIB_PY.match(site)
    root = (m.group("root") or "") if m else posixpath.dirname(site)
    version = m.group("ver") if m else ""
    if m and f"{root}/pyvenv.cfg".lstrip("/") in tree:
        return "venv", root, version or _cfg_version(tree, root)
    if m and tree.is_dir(posixpath.join(root, "conda-meta")):
        return "conda", root, version
    if m and (root == "root/.local" or re.fullmatch(r"home/[^/]+/\.local", root)):
        return "user", root, version
    if m and root in ("usr", "usr/local", ""):
        return "system", root, version
    if site == "usr/lib/python3/dist-packages":
        return "system", "usr", version
    if site in pythonpath:
        return "pythonpath", site, version
    return ("prefix" if m else "target"), root if m else site, version


def scan_environments(tree: FileTree, env: Sequence[str] = ()) -> list[PythonEnv]:
    """Every site directory, sorted by bytes descending then path."""
    pythonpath = _pythonpath_dirs(env, tree)
    sites = _candidate_site_dirs(tree) | set(pythonpath)
    default_version = image_python_version(tree)
    envs = []
    for site in sites:
        info = tree.get(site)
        if info is not None and info.kind is not EntryKind.DIR:
            continue
        kind, root, version = _classify(tree, site, pythonpath)
        envs.append(PythonEnv(site, version or default_version, kind, root, tree.du(site)))
    return sorted(envs, key=lambda e: (-e.size_bytes, e.path))
