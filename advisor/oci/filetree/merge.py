"""Stack layer change sets into the filesystem a container sees, and note what each one hides.

``merge_layers`` applies the layers in order with the OCI image-spec's changeset rules, as an
overlay mount shows them (containerd's and Docker's default snapshotter):

* a layer's whiteouts (``.wh.NAME``) and opaque markers (``.wh..wh..opq``) apply to the layers
  below it only: a whiteout hides the path and everything under it, an opaque directory hides
  everything under it (not itself);
* an entry replaces the lower version of its path, unless both are directories (a directory
  listed again keeps its children); a non-directory over a lower directory (listed in its tar
  or only implied by the paths under it) hides everything under it too;
* an entry beneath a path that the lower layers hold as a non-directory (a file or a symlink)
  hides that path: the layer's directory wins, as it does in an overlay mount.

Every regular file's bytes that leave the view this way become a ``HiddenFile`` (see
``hidden``), in the same pass: one merge gives both the merged tree and the hidden bytes.
Opaque directories hide before whiteouts, whiteouts before overwrites, when several apply.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from advisor.oci.filetree.hidden import (
    DELETED,
    OPAQUE,
    OVERWRITTEN,
    HiddenFile,
    Key,
    Removal,
    hidden_from_removals,
)
from advisor.oci.filetree.tree import FileInfo, FileTree, LayerTree
from advisor.oci.model import EntryKind

_DIR = EntryKind.DIR


@dataclass(frozen=True)
class Merged:
    """The merged filesystem and the bytes the layers hide from it (largest first)."""

    tree: FileTree
    hidden: tuple[HiddenFile, ...]

    @property
    def hidden_bytes(self) -> int:
        return sum(h.size_bytes for h in self.hidden)


@dataclass
class _Roots:
    """What one layer hides below it, by kind of rule (see ``_how``)."""

    opaque: set[str] = field(default_factory=set)  # everything strictly under
    whiteout: set[str] = field(default_factory=set)  # the path and everything under
    replaced_dir: set[str] = field(default_factory=set)  # strictly under (the path is overwritten)
    nondir_parent: set[str] = field(default_factory=set)  # the path itself (a non-directory)

    def __bool__(self) -> bool:
        return bool(self.opaque or self.whiteout or self.replaced_dir or self.nondir_parent)

    def tops(self) -> set[str]:
        """First components of every root ("" when the root itself is opaque): a path under
        none of them cannot be hidden, whatever else it holds."""
        every = self.opaque | self.whiteout | self.replaced_dir | self.nondir_parent
        return {r.partition("/")[0] for r in every}


def _how(path: str, roots: _Roots) -> str | None:
    """Why ``path`` (of the lower layers) leaves the view, or None when it stays."""
    if "" in roots.opaque:
        return OPAQUE
    found: str | None = None
    i = path.find("/")
    while True:
        prefix = path if i < 0 else path[:i]
        strict = i >= 0
        if strict and prefix in roots.opaque:
            return OPAQUE
        if prefix in roots.whiteout:
            found = DELETED
        elif found is None and (
            (strict and prefix in roots.replaced_dir) or prefix in roots.nondir_parent
        ):
            found = OVERWRITTEN
        if i < 0:
            return found
        i = path.find("/", i + 1)


class _Stack:
    """The merge in progress: the visible files and every name removed so far."""

    def __init__(self) -> None:
        self.files: dict[str, FileInfo] = {}
        self.heads: dict[str, bytes] = {}
        self.tails: dict[str, bytes] = {}
        self.removed: dict[Key, Removal] = {}
        self.sizes: dict[Key, int] = {}
        self.links: dict[Key, list[str]] = {}
        # every directory the visible paths imply, listed or not (a superset: never pruned)
        self.dirs: set[str] = set()

    def drop(self, path: str, by: int, how: str) -> None:
        info = self.files.pop(path)
        self.heads.pop(path, None)
        self.tails.pop(path, None)
        key = (info.layer, path)
        if info.kind is EntryKind.FILE and info.size > 0:
            self.sizes[key] = info.size
            self.removed[key] = Removal(path, info.layer, by, how)
        elif info.kind is EntryKind.HARDLINK:
            self.removed[key] = Removal(path, info.layer, by, how)

    def roots(self, layer: LayerTree) -> _Roots:
        roots = _Roots(set(layer.opaque_dirs), set(layer.whiteouts))
        files, entries = self.files, layer.entries
        for path, entry in entries.items():
            if entry.kind is not _DIR and path in self.dirs:
                roots.replaced_dir.add(path)
            parent = path.rpartition("/")[0]
            while parent and parent not in entries:
                info = files.get(parent)
                if info is not None:
                    if info.kind is not _DIR:
                        roots.nondir_parent.add(parent)
                    break
                parent = parent.rpartition("/")[0]
        return roots

    def apply(self, layer: LayerTree) -> None:
        if not self.files:
            self._first(layer)
            return
        roots = self.roots(layer)
        if roots:
            tops = roots.tops()
            everywhere = "" in tops
            doomed = [(p, how) for p in self.files
                      if everywhere or p.partition("/")[0] in tops
                      if (how := _how(p, roots)) is not None]
            for path, how in doomed:
                self.drop(path, layer.index, how)
        files, index = self.files, layer.index
        for path, entry in layer.entries.items():
            old = files.get(path)
            if old is not None and not (old.kind is _DIR and entry.kind is _DIR):
                self.drop(path, index, OVERWRITTEN)
            if entry.layer != index:  # a tree built by hand, not by the walk
                entry = entry.at_layer(index)
            files[path] = entry
            if entry.kind is EntryKind.HARDLINK:
                self.links.setdefault((index, entry.link), []).append(path)
        self._keep(layer)
        self._imply_parents(layer.entries)

    def _first(self, layer: LayerTree) -> None:
        """Onto nothing: no rule can hide anything, so the layer's entries are the view."""
        index = layer.index
        self.files = files = dict(layer.entries)
        for path, entry in files.items():
            if entry.layer != index:  # a tree built by hand, not by the walk
                files[path] = entry = entry.at_layer(index)
            if entry.kind is EntryKind.HARDLINK:
                self.links.setdefault((index, entry.link), []).append(path)
        self._keep(layer)
        self._imply_parents(files)

    def _keep(self, layer: LayerTree) -> None:
        """The layer's captures, for the paths it now shows."""
        self.heads.update(layer.heads)
        self.tails.update(layer.tails)

    def _imply_parents(self, paths: Iterable[str]) -> None:
        """Every directory above ``paths`` into ``dirs`` (each distinct parent walked once)."""
        dirs = self.dirs
        for parent in {p.rpartition("/")[0] for p in paths}:
            while parent and parent not in dirs:
                dirs.add(parent)
                parent = parent.rpartition("/")[0]


def merge_layers(layers: Sequence[LayerTree]) -> Merged:
    """Apply ``layers`` bottom to top: the merged tree and the hidden files, in one pass."""
    stack = _Stack()
    for layer in layers:
        stack.apply(layer)
    hidden = hidden_from_removals(stack.removed, stack.sizes, stack.links)
    return Merged(FileTree.adopt(stack.files, stack.heads, stack.tails), tuple(hidden))
