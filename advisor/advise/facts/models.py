"""Model weights: one model saved in several formats, identical copies, stale HF hub caches."""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict
from dataclasses import dataclass

from advisor.oci.filetree import FileInfo, FileTree
from advisor.oci.model import EntryKind
from advisor.units import WEIGHT_SUFFIXES

_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("safetensors", re.compile(r"^model(-\d+-of-\d+)?\.safetensors(\.index\.json)?$")),
    ("pytorch", re.compile(r"^pytorch_model(-\d+-of-\d+)?\.bin(\.index\.json)?$")),
    ("onnx", re.compile(r"^model[\w.-]*\.onnx(\.data|_data)?$")),
    ("tensorflow", re.compile(r"^tf_model(-\d+-of-\d+)?\.h5(\.index\.json)?$")),
    ("flax", re.compile(r"^flax_model(-\d+-of-\d+)?\.msgpack(\.index\.json)?$")),
)
MIN_COPY_BYTES = 1024 * 1024
HF_CACHE_MARK = ".cache/huggingface/"


@dataclass(frozen=True, slots=True)
class FormatSet:
    folder: str
    formats: dict[str, tuple[str, ...]]  # format -> files
    sizes: dict[str, int]  # format -> bytes


@dataclass(frozen=True, slots=True)
class CopyGroup:
    size: int
    paths: tuple[str, ...]  # the kept copy first


@dataclass(frozen=True, slots=True)
class StaleBlobs:
    repo: str  # the models--org--name directory
    paths: tuple[str, ...]
    size_bytes: int


def weight_format(name: str) -> str | None:
    for fmt, pattern in _FORMATS:
        if pattern.match(name):
            return fmt
    return None


def _model_folder(path: str) -> str:
    folder = posixpath.dirname(path)
    return posixpath.dirname(folder) if posixpath.basename(folder) == "onnx" else folder


def _real_file(info: FileInfo) -> bool:
    return info.kind is EntryKind.FILE and "/blobs/" not in info.path


def format_sets(tree: FileTree) -> list[FormatSet]:
    """Folders holding the weights of one model in two or more formats."""
    by_folder: dict[str, dict[str, list[FileInfo]]] = defaultdict(lambda: defaultdict(list))
    for info in tree:
        if info.kind not in (EntryKind.FILE, EntryKind.SYMLINK):
            continue
        fmt = weight_format(posixpath.basename(info.path))
        if fmt is not None:
            by_folder[_model_folder(info.path)][fmt].append(info)
    out = []
    for folder, fmts in sorted(by_folder.items()):
        if len(fmts) < 2:
            continue
        formats = {f: tuple(sorted(i.path for i in infos)) for f, infos in fmts.items()}
        sizes = {f: sum(_resolved_size(tree, i) for i in infos) for f, infos in fmts.items()}
        out.append(FormatSet(folder, formats, sizes))
    return out


def _resolved_size(tree: FileTree, info: FileInfo) -> int:
    if info.kind is EntryKind.SYMLINK:
        target = tree.get(tree.resolve(info.path))
        return target.size if target is not None else 0
    return info.size


def _preference(path: str) -> tuple[int, str]:
    return (1 if HF_CACHE_MARK in path else 0, path)


def copy_groups(tree: FileTree) -> list[CopyGroup]:
    """Weight files with identical size and head bytes at different paths."""
    groups: dict[tuple[int, bytes], list[str]] = defaultdict(list)
    for info in tree:
        if info.kind is not EntryKind.FILE or info.size < MIN_COPY_BYTES:
            continue
        if not info.path.endswith(WEIGHT_SUFFIXES):
            continue
        head = tree.read(info.path) or b""
        groups[(info.size, head)].append(info.path)
    out = [
        CopyGroup(size, tuple(sorted(paths, key=_preference)))
        for (size, _h), paths in groups.items() if len(paths) > 1
    ]
    return sorted(out, key=lambda g: (-g.size * (len(g.paths) - 1), g.paths))


def stale_hf_blobs(tree: FileTree) -> list[StaleBlobs]:
    """Hub-cache blobs that no snapshot links to (left by an older revision)."""
    repos = sorted({
        info.path.split("/blobs/", 1)[0]
        for info in tree
        if "/hub/models--" in info.path and "/blobs/" in info.path
    })
    out = []
    for repo in repos:
        referenced = {
            tree.resolve(i.path) for i in tree.iter_under(f"{repo}/snapshots") if i.kind is EntryKind.SYMLINK
        }
        stale = [i for i in tree.iter_under(f"{repo}/blobs") if i.kind is EntryKind.FILE and i.path not in referenced]
        if stale:
            out.append(StaleBlobs(repo, tuple(i.path for i in stale), sum(i.size for i in stale)))
    return out


@dataclass(frozen=True, slots=True)
class CacheCopy:
    repo: str  # the hub cache's models--org--name directory
    copy: str  # the folder outside the cache holding the same model
    blobs: tuple[str, ...]
    size_bytes: int


def _hub_repos(tree: FileTree) -> list[str]:
    return sorted({
        info.path.split("/snapshots/", 1)[0]
        for info in tree
        if "/hub/models--" in info.path and "/snapshots/" in info.path
    })


def hf_cache_copies(tree: FileTree) -> list[CacheCopy]:
    """Hub caches whose model (same config.json, byte for byte) was also copied elsewhere."""
    outside: dict[bytes, str] = {}
    for info in tree.glob_names(["config.json"]):
        raw = tree.read(info.path)
        if raw and HF_CACHE_MARK not in info.path and "-packages/" not in info.path:
            outside.setdefault(raw, posixpath.dirname(info.path))
    out = []
    for repo in _hub_repos(tree):
        configs = [i for i in tree.iter_under(f"{repo}/snapshots") if posixpath.basename(i.path) == "config.json"]
        copy = next((outside[raw] for i in configs if (raw := tree.read(tree.resolve(i.path))) and raw in outside), None)
        if copy is None:
            continue
        blobs = [i for i in tree.iter_under(f"{repo}/blobs") if i.kind is EntryKind.FILE]
        out.append(CacheCopy(repo, copy, tuple(i.path for i in blobs), sum(i.size for i in blobs)))
    return out
