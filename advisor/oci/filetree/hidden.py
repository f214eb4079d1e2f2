"""Bytes an earlier layer ships that a later layer deletes, hides (opaque dir) or overwrites.

These bytes are invisible in the merged filesystem yet still pulled and stored with every
copy of the image; only squashing the steps (or not creating the files) gets rid of them.
``advisor.oci.filetree.merge`` finds them while it merges (one pass); this module holds the
result type and the one subtle rule, hard links: a tar stores a file's bytes once under its
first name and later names as links to it, so the bytes stay visible while any name of that
inode does (overlayfs and every extractor keep the inode when one name is removed).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

OVERWRITTEN = "overwritten"
DELETED = "deleted"
OPAQUE = "opaque"


@dataclass(frozen=True, slots=True)
class HiddenFile:
    """A regular file's bytes in ``layer`` that ``by_layer`` takes out of view, and how."""

    path: str
    layer: int
    by_layer: int
    size_bytes: int
    how: str  # OVERWRITTEN | DELETED | OPAQUE


@dataclass(frozen=True, slots=True)
class Removal:
    """One name of a layer's file (or hard link) that a later layer removed from view."""

    path: str
    layer: int
    by_layer: int
    how: str


Key = tuple[int, str]  # (layer, path) of a regular file as its layer's tar stores it


def hidden_from_removals(
    removed: Mapping[Key, Removal],
    sizes: Mapping[Key, int],
    links: Mapping[Key, Iterable[str]],
) -> list[HiddenFile]:
    """The files whose every name was removed, each charged to the layer that removed the last.

    ``removed``: every removed regular file and hard link by (layer, path); ``sizes``: the
    bytes of each removed regular file; ``links``: same-layer hard link names by target.
    """
    out: list[HiddenFile] = []
    for key, size in sizes.items():
        last = removed[key]
        for name in links.get(key, ()):
            gone = removed.get((key[0], name))
            if gone is None:
                break  # a hard link still shows the bytes
            if gone.by_layer > last.by_layer:
                last = gone
        else:
            out.append(HiddenFile(key[1], key[0], last.by_layer, size, last.how))
    return sorted(out, key=lambda h: (-h.size_bytes, h.path, h.layer))
