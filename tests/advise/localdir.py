"""Build ``LayerTree``s without an image: from a directory on disk, or from content in memory.

A directory tree (an unpacked rootfs, a venv) is read like one layer, with the same
``capture`` policy as the streaming walk, so every analysis runs on it unchanged.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Mapping
from pathlib import Path

from advisor.advise.facts.capture import capture_for
from advisor.oci.filetree import LayerTree
from advisor.oci.model import Capture, Entry, EntryKind

CaptureFn = Callable[[Entry], Capture | None]


def _keep(tree: LayerTree, entry: Entry, read: Callable[[int, int], bytes], capture: CaptureFn) -> None:
    cap = capture(entry)
    if cap is None:
        return
    tree.heads[entry.path], kept = cap.take(entry.size, read)
    if kept:
        tree.tails[entry.path] = kept


def _entry_for(path: str, st: os.stat_result, link: str) -> Entry:
    if stat.S_ISLNK(st.st_mode):
        return Entry(path, EntryKind.SYMLINK, 0, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid, link)
    if stat.S_ISDIR(st.st_mode):
        return Entry(path, EntryKind.DIR, 0, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid)
    return Entry(path, EntryKind.FILE, st.st_size, stat.S_IMODE(st.st_mode), st.st_uid, st.st_gid,
                 mtime=int(st.st_mtime))


def _read_file(full: Path, entry: Entry, tree: LayerTree, capture: CaptureFn) -> None:
    with open(full, "rb") as fh:
        def read(offset: int, n: int) -> bytes:
            fh.seek(offset)
            return fh.read(n)

        _keep(tree, entry, read, capture)


def layer_from_directory(root: Path, prefix: str = "", index: int = 0,
                         capture: CaptureFn = capture_for) -> LayerTree:
    """One layer holding everything under ``root``, placed at ``prefix`` in the image."""
    tree = LayerTree(index)
    prefix = prefix.strip("/")
    seen_inodes: dict[tuple[int, int], str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in [*dirnames, *sorted(filenames)]:
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            path = f"{prefix}/{rel}" if prefix else rel
            st = full.lstat()
            link = os.readlink(full) if stat.S_ISLNK(st.st_mode) else ""
            entry = _entry_for(path, st, link)
            if entry.kind is EntryKind.FILE and st.st_nlink > 1:
                first = seen_inodes.setdefault((st.st_dev, st.st_ino), path)
                if first != path:
                    entry = Entry(path, EntryKind.HARDLINK, 0, entry.mode, link=first)
            tree.entries[path] = entry
            if entry.kind is EntryKind.FILE:
                _read_file(full, entry, tree, capture)
    return tree


def _keep_bytes(tree: LayerTree, entry: Entry, data: bytes, capture: CaptureFn) -> None:
    _keep(tree, entry, lambda offset, n: data[offset: offset + n], capture)


FileSpec = bytes | str | int | Entry


def _spec_entry(path: str, spec: FileSpec) -> tuple[Entry, bytes | None]:
    if isinstance(spec, Entry):
        return spec, None
    if isinstance(spec, int):
        return Entry(path, EntryKind.FILE, spec), None
    data = spec.encode() if isinstance(spec, str) else spec
    return Entry(path, EntryKind.FILE, len(data)), data


def layer_from_files(files: Mapping[str, FileSpec], index: int = 0,
                     whiteouts: tuple[str, ...] = (), opaque_dirs: tuple[str, ...] = (),
                     capture: CaptureFn = capture_for) -> LayerTree:
    """A layer from ``{path: content | size | Entry}``; a size alone stands for that many bytes."""
    tree = LayerTree(index, whiteouts=set(whiteouts), opaque_dirs=set(opaque_dirs))
    for raw_path, spec in files.items():
        path = raw_path.strip("/")
        entry, data = _spec_entry(path, spec)
        tree.entries[path] = entry
        if data is not None:
            _keep_bytes(tree, entry, data, capture)
    return tree
