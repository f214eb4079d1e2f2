"""Copy the merged, final version of chosen files out of an image into a directory.

Used where a file must exist on disk (the model to export, a base image's Python to probe):
one pass per layer that holds a wanted file, and no path can escape the directory.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from advisor.errors import BadInputError
from advisor.oci.filetree import FileTree, LayerTree, merge_layers
from advisor.oci.layers import read_layers
from advisor.oci.model import EntryKind, Image, Layer
from advisor.oci.pump import CHUNK, Pipeline
from advisor.oci.tar import ChunkReader, iter_headers, normalise_path

_FILE_FLAGS = (b"0", b"\0", b"7")  # regular files (the walk's FILE kinds)


@dataclass(frozen=True, slots=True)
class Extracted:
    """What ``extract_paths`` wrote: in-image paths (sorted) and their total bytes."""

    paths: tuple[str, ...]
    size: int


def _selected(tree: FileTree, prefixes: Iterable[str]) -> list[str]:
    chosen: set[str] = set()
    for prefix in prefixes:
        real = tree.resolve(prefix)
        chosen.update(info.path for info in tree.iter_under(real))
    return sorted(chosen)


def extract_paths(
    image: Image,
    paths_or_prefixes: Iterable[str],
    dest_dir: Path,
    trees: list[LayerTree] | None = None,
) -> Extracted:
    """Write the final (merged, whiteouts applied) version of the chosen files under ``dest_dir``.

    A prefix that is a symlink is followed inside the image first. Paths keep their in-image
    location below ``dest_dir``; nothing is ever written outside it (``..`` is neutralised,
    symlinks are created last and never followed while writing).
    """
    trees = trees if trees is not None else read_layers(image)
    merged = merge_layers(trees).tree
    chosen = _selected(merged, paths_or_prefixes)
    dest_dir.mkdir(parents=True, exist_ok=True)
    root = dest_dir.resolve()
    wanted: dict[int, dict[str, list[str]]] = {}
    links: list[tuple[str, str]] = []
    for path in chosen:
        info = merged.get(path)
        assert info is not None
        if info.kind is EntryKind.DIR:
            _safe_target(root, path).mkdir(parents=True, exist_ok=True)
        elif info.kind is EntryKind.SYMLINK:
            links.append((path, info.link))
        elif info.kind is EntryKind.FILE:
            wanted.setdefault(info.layer, {}).setdefault(path, []).append(path)
        elif info.kind is EntryKind.HARDLINK:
            wanted.setdefault(info.layer, {}).setdefault(info.link, []).append(path)
    size = 0
    for index in sorted(wanted):
        size += _extract_from_layer(image, image.layers[index], wanted[index], root)
    for path, target in links:
        link_path = _safe_target(root, path)
        if link_path.is_dir() and not link_path.is_symlink():
            continue  # a later layer put files "under" the link: keep the files
        link_path.unlink(missing_ok=True)
        os.symlink(target, link_path)
    return Extracted(tuple(chosen), size)


def _safe_target(root: Path, path: str) -> Path:
    """``root/path`` with its parent directories made, refusing any symlinked component."""
    parts = normalise_path(path).split("/")
    current = root
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise BadInputError(
                f"refusing to write {path!r} through the symlink {current}",
                hint="the image holds paths that would land outside the extraction directory",
            )
        if not current.is_dir():
            current.mkdir()
    return current / parts[-1]


def _extract_from_layer(
    image: Image, layer: Layer, wanted: dict[str, list[str]], root: Path
) -> int:
    written = 0
    what = f"layer {layer.index}"
    with image.source.open_blob(layer.blob) as raw:
        pipeline = Pipeline(raw, layer.compression, f"advisor-extract-{layer.index}")
        try:
            reader = ChunkReader(pipeline.chunks, what)
            for header in iter_headers(reader, what):
                path = normalise_path(header.name)
                targets = wanted.get(path)
                if targets and header.typeflag in _FILE_FLAGS:
                    targets_at = [_safe_target(root, t) for t in targets]
                    written += _copy_member(reader, header.size, targets_at)
                else:
                    reader.skip(header.size)
                reader.skip(header.padded - header.size, end_ok=True)
            reader.drain()
        finally:
            pipeline.close()
    return written


def _copy_member(reader: ChunkReader, size: int, targets: list[Path]) -> int:
    handles = []
    try:
        for target in targets:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            handles.append(os.fdopen(fd, "wb"))
        left = size
        while left > 0:
            chunk = reader.take_all(min(left, CHUNK))
            for fh in handles:
                fh.write(chunk)
            left -= len(chunk)
    finally:
        for fh in handles:
            fh.close()
    return size * len(targets)
