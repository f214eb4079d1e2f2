"""Bytes an earlier layer ships that a later layer deletes, hides (opaque dir) or overwrites.

These bytes are invisible in the merged filesystem yet still pulled and stored with every
copy of the image; only squashing the steps (or not creating the files) gets rid of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from advisor.oci.filetree import LayerTree
from advisor.oci.model import EntryKind


@dataclass(frozen=True, slots=True)
class HiddenFile:
    path: str
    layer: int
    size: int
    by_layer: int
    how: str  # "deleted" | "overwritten"


def _ancestors(path: str) -> list[str]:
    parts = path.split("/")
    return ["/".join(parts[:i]) for i in range(1, len(parts))]


def hidden_files(trees: Sequence[LayerTree]) -> list[HiddenFile]:
    """Every regular file with bytes that a later layer removes from view, largest first."""
    later_written: dict[str, int] = {}
    later_deleted: dict[str, int] = {}  # whiteouts: the path and all below it
    later_opaque: dict[str, int] = {}  # opaque dirs: all below it
    later_files: dict[str, int] = {}  # non-directories: hide what was below them
    out: list[HiddenFile] = []
    for tree in reversed(trees):
        for path, entry in tree.entries.items():
            if entry.kind is not EntryKind.FILE or entry.size == 0:
                continue
            hit = _hider(path, later_written, later_deleted, later_opaque, later_files)
            if hit is not None:
                out.append(HiddenFile(path, tree.index, entry.size, hit[0], hit[1]))
        for path, entry in tree.entries.items():
            later_written[path] = tree.index
            if entry.kind is not EntryKind.DIR:
                later_files[path] = tree.index
        for path in tree.whiteouts:
            later_deleted[path] = tree.index
        for path in tree.opaque_dirs:
            later_opaque[path] = tree.index
    return sorted(out, key=lambda h: (-h.size, h.layer, h.path))


def _hider(path: str, written: dict[str, int], deleted: dict[str, int],
           opaque: dict[str, int], files: dict[str, int]) -> tuple[int, str] | None:
    hits: list[tuple[int, str]] = []
    if path in written:
        hits.append((written[path], "overwritten"))
    if path in deleted:
        hits.append((deleted[path], "deleted"))
    for anc in _ancestors(path):
        if anc in deleted:
            hits.append((deleted[anc], "deleted"))
        if anc in opaque:
            hits.append((opaque[anc], "deleted"))
        w = files.get(anc)
        if w is not None:
            hits.append((w, "overwritten"))
    return min(hits) if hits else None
