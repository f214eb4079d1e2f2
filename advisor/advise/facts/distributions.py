"""Installed distributions and the exact bytes each one holds in the image.

A distribution's files come from its RECORD (falling back to an egg-info's
``installed-files.txt``, then to ``top_level.txt``). Each file of the merged filesystem is
counted for one distribution only: files that several claim (``nvidia/__init__.py`` of a
namespace package shared by a dozen ``nvidia-*`` wheels) go to the first by name.
"""

from __future__ import annotations

import csv
import io
import posixpath
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace
from email.parser import HeaderParser

from packaging.utils import canonicalize_name

from advisor.advise.facts.python_envs import PythonEnv
from advisor.oci.filetree import FileInfo, FileTree
from advisor.oci.model import EntryKind


@dataclass(frozen=True, slots=True)
class Distribution:
    """One installed distribution. ``files`` are merged-tree paths counted for it alone."""

    name: str
    key: str  # canonical name (PEP 503)
    version: str
    environment: str  # its site directory
    metadata_path: str  # the .dist-info / .egg-info path
    requires: tuple[str, ...]
    extras: tuple[str, ...]
    files: tuple[str, ...]
    size_bytes: int
    installer: str = ""
    source: str = "RECORD"  # RECORD | installed-files | top_level | metadata-only


@dataclass(frozen=True, slots=True)
class UnownedBytes:
    """Bytes in a site directory that no distribution's file list claims."""

    environment: str
    size_bytes: int
    top: tuple[tuple[str, int], ...]  # (top-level name, bytes), largest first


@dataclass(frozen=True, slots=True)
class DistributionScan:
    distributions: tuple[Distribution, ...]
    unowned: tuple[UnownedBytes, ...]

    def by_key(self) -> dict[str, Distribution]:
        """Canonical name -> distribution (the largest copy when several envs hold one)."""
        out: dict[str, Distribution] = {}
        for d in sorted(self.distributions, key=lambda d: d.size_bytes):
            out[d.key] = d
        return out


@dataclass(frozen=True, slots=True)
class _Meta:
    name: str
    version: str
    requires: tuple[str, ...]
    extras: tuple[str, ...]


def _text(tree: FileTree, path: str) -> str | None:
    raw = tree.read(path)
    return None if raw is None else raw.decode("utf-8", "replace")


def parse_metadata(text: str) -> _Meta:
    msg = HeaderParser().parsestr(text)
    return _Meta(
        name=(msg.get("Name") or "").strip(),
        version=(msg.get("Version") or "").strip(),
        requires=tuple(v.strip() for v in msg.get_all("Requires-Dist") or ()),
        extras=tuple(v.strip() for v in msg.get_all("Provides-Extra") or ()),
    )


def _requires_txt(text: str) -> tuple[str, ...]:
    """setuptools' requires.txt: plain lines, then ``[extra:marker]`` sections."""
    out: list[str] = []
    section = ""
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        if not section:
            out.append(line)
            continue
        extra, _, marker = section.partition(":")
        conds = [f'extra == "{extra}"'] if extra else []
        if marker:
            conds.append(f"({marker})")
        out.append(f"{line}; {' and '.join(conds)}")
    return tuple(out)


def _record_paths(text: str, site: str) -> list[str]:
    paths = []
    for row in csv.reader(io.StringIO(text)):
        if row and row[0]:
            paths.append(posixpath.normpath(posixpath.join(site, row[0])))
    return paths


def _lines_paths(text: str, base: str) -> list[str]:
    return [posixpath.normpath(posixpath.join(base, ln.strip())) for ln in text.splitlines() if ln.strip()]


def _top_level_paths(tree: FileTree, site: str, text: str) -> list[str]:
    out: list[str] = []
    children = tree.listdir(site)
    for name in (ln.strip() for ln in text.splitlines()):
        if not name:
            continue
        out.extend(f.path for f in tree.iter_under(posixpath.join(site, name)))
        for child in children:
            if child.startswith(name + ".") and child.endswith((".py", ".so", ".pyd")):
                out.append(f"{site}/{child}")
    return out


def _file_list(tree: FileTree, site: str, meta_path: str, is_dir: bool) -> tuple[list[str], str]:
    """Candidate paths of a distribution, and which source named them."""
    own = [f.path for f in tree.iter_under(meta_path)]
    if is_dir:
        record = _text(tree, f"{meta_path}/RECORD")
        if record is not None:
            return own + _record_paths(record, site), "RECORD"
        installed = _text(tree, f"{meta_path}/installed-files.txt")
        if installed is not None:
            return own + _lines_paths(installed, meta_path), "installed-files"
        top = _text(tree, f"{meta_path}/top_level.txt")
        if top is not None:
            return own + _top_level_paths(tree, site, top), "top_level"
    return own, "metadata-only"


def _read_meta(tree: FileTree, meta_path: str, is_dir: bool) -> _Meta | None:
    if not is_dir:
        text = _text(tree, meta_path)
        return parse_metadata(text) if text is not None else None
    name = "METADATA" if meta_path.endswith(".dist-info") else "PKG-INFO"
    text = _text(tree, f"{meta_path}/{name}")
    if text is None:
        return None
    meta = parse_metadata(text)
    if meta_path.endswith(".egg-info") and not meta.requires:
        req = _text(tree, f"{meta_path}/requires.txt")
        if req is not None:
            meta = _Meta(meta.name, meta.version, _requires_txt(req), meta.extras)
    return meta


def _metadata_dirs(tree: FileTree, site: str) -> list[tuple[str, bool]]:
    out = []
    for name in tree.listdir(site):
        if name.endswith((".dist-info", ".egg-info")):
            path = f"{site}/{name}"
            out.append((path, tree.is_dir(path)))
    return out


def _is_content(info: FileInfo | None) -> bool:
    return info is not None and info.kind in (EntryKind.FILE, EntryKind.HARDLINK, EntryKind.SYMLINK)


def _claim(
    tree: FileTree, candidates: Iterable[str], claimed: set[str]
) -> tuple[tuple[str, ...], int]:
    files: list[str] = []
    size = 0
    for p in sorted(set(candidates)):
        info = tree.get(p)
        if p in claimed or info is None or not _is_content(info):
            continue
        claimed.add(p)
        files.append(p)
        size += info.size
    return tuple(files), size


# The files an OS package manager says a metadata file's package owns (dpkg's .list).
PackageFiles = Callable[[str], Sequence[str]]


def _metadata_file(meta_path: str, is_dir: bool) -> str:
    if not is_dir:
        return meta_path
    return f"{meta_path}/METADATA" if meta_path.endswith(".dist-info") else f"{meta_path}/PKG-INFO"


def _scan_site(tree: FileTree, env: PythonEnv, claimed: set[str],
               package_files: PackageFiles | None = None) -> list[Distribution]:
    found = []
    for meta_path, is_dir in _metadata_dirs(tree, env.path):
        meta = _read_meta(tree, meta_path, is_dir)
        if meta is None or not meta.name:
            continue
        candidates, source = _file_list(tree, env.path, meta_path, is_dir)
        owned = package_files(_metadata_file(meta_path, is_dir)) if package_files else ()
        if owned:
            # Debian's python3-* packages: dpkg knows every file, RECORD (if any) may be stale.
            candidates = [*candidates, *owned]
            source += "+dpkg"
        found.append((canonicalize_name(meta.name), meta_path, meta, candidates, source, is_dir))
    dists = []
    for key, meta_path, meta, candidates, source, is_dir in sorted(found, key=lambda t: (t[0], t[1])):
        files, size = _claim(tree, candidates, claimed)
        installer = (_text(tree, f"{meta_path}/INSTALLER") or "").strip() if is_dir else ""
        dists.append(
            Distribution(meta.name, key, meta.version, env.path, meta_path, meta.requires,
                         meta.extras, files, size, installer, source)
        )
    return dists


def _unowned(tree: FileTree, env: PythonEnv, claimed: set[str]) -> UnownedBytes:
    by_top: dict[str, int] = {}
    total = 0
    prefix = env.path + "/"
    for f in tree.iter_under(env.path):
        if f.path in claimed or f.kind is EntryKind.DIR or not f.path.startswith(prefix):
            continue
        top = f.path[len(prefix):].split("/", 1)[0]
        by_top[top] = by_top.get(top, 0) + f.size
        total += f.size
    top_items = sorted(((k, v) for k, v in by_top.items() if v > 0), key=lambda kv: (-kv[1], kv[0]))
    return UnownedBytes(env.path, total, tuple(top_items[:20]))


def _source_of(pyc: str) -> str:
    """``pkg/__pycache__/mod.cpython-311.pyc`` -> ``pkg/mod.py``."""
    folder, name = posixpath.split(pyc)
    return f"{posixpath.dirname(folder)}/{name.split('.', 1)[0]}.py"


def _adopt_bytecode(tree: FileTree, envs: Sequence[PythonEnv], dists: list[Distribution],
                    claimed: set[str]) -> list[Distribution]:
    """Give bytecode no file list names (Debian compiles at postinst) to its source's owner."""
    owner = {p: i for i, d in enumerate(dists) for p in d.files if p.endswith(".py")}
    extra: dict[int, list[tuple[str, int]]] = {}
    for env in envs:
        for f in tree.iter_under(env.path):
            if f.path in claimed or "/__pycache__/" not in f.path or not f.path.endswith(".pyc"):
                continue
            i = owner.get(_source_of(f.path))
            if i is not None:
                extra.setdefault(i, []).append((f.path, f.size))
                claimed.add(f.path)
    for i, files in extra.items():
        d = dists[i]
        dists[i] = replace(d, files=tuple(sorted([*d.files, *(p for p, _ in files)])),
                           size_bytes=d.size_bytes + sum(sz for _, sz in files))
    return dists


def scan_distributions(tree: FileTree, envs: Sequence[PythonEnv],
                       package_files: PackageFiles | None = None) -> DistributionScan:
    """Every distribution of every environment, with its own files; then the unowned bytes."""
    claimed: set[str] = set()
    dists: list[Distribution] = []
    for env in sorted(envs, key=lambda e: e.path):
        dists.extend(_scan_site(tree, env, claimed, package_files))
    dists = _adopt_bytecode(tree, envs, dists, claimed)
    unowned = [_unowned(tree, env, claimed) for env in envs]
    dists.sort(key=lambda d: (-d.size_bytes, d.key, d.environment))
    unowned.sort(key=lambda u: (-u.size_bytes, u.environment))
    return DistributionScan(tuple(dists), tuple(unowned))
