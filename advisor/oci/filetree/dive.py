"""dive's efficiency score (``dive_efficiency``), from a model of each layer as a trie.

``efficiency`` and ``wasted_bytes`` follow dive 0.13 (``filetree/efficiency.go``) to the
byte, quirks included, so both tools print the same numbers for the same image:

* each layer is a tree of its tar entries; parents missing from the tar become implicit
  nodes with an empty payload (size 0, *not* a directory), ``.wh.NAME`` markers are nodes
  named ``.wh.NAME`` whose path is ``NAME``, and opaque markers (``.wh..wh..opq``) are
  dropped: dive does not apply them;
* only the leaves of each layer's tree are visited (depth first, children in byte order);
  a leaf adds its size to its path's cumulative size and lowers the path's minimum;
* a whiteout leaf is sized from the stacked tree of the layers below (dive stacks
  ``trees[0]`` onto a copy of itself, then ``trees[1..i-1]``): the sum of every node under
  it if that node was a directory, else 0; when the path is missing below, dive aborts the
  rest of that layer's visit and leaves the path with a minimum of -1;
* ``efficiency = sum(minimum) / sum(cumulative)`` over every path (1.0 when nothing was seen);
  ``wasted_bytes`` = the sum of the cumulative sizes of the paths seen in two or more layers.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from advisor.oci.filetree.tree import LayerTree
from advisor.oci.model import EntryKind

_WH = ".wh."


@dataclass(frozen=True, slots=True)
class Inefficiency:
    """A path dive counts as wasted: seen in ``count`` layers, ``size_bytes`` in total."""

    path: str
    count: int
    size_bytes: int


class _Node:
    """A trie node: a path component, its payload and children."""

    __slots__ = ("children", "is_dir", "size", "whiteout")

    def __init__(self, size: int = 0, is_dir: bool = False, whiteout: bool = False):
        self.children: dict[str, _Node] = {}
        self.size = size
        self.is_dir = is_dir
        self.whiteout = whiteout

    def walk(self, prefix: str) -> Iterator[tuple[str, _Node]]:
        """Every node below (children first, names in byte order), with its path."""
        for name in sorted(self.children):
            child = self.children[name]
            path = f"{prefix}/{name}" if prefix else name
            yield from child.walk(path)
            yield path, child

    def get(self, path: str) -> _Node | None:
        node: _Node | None = self
        for part in path.split("/"):
            if node is None:
                return None
            node = node.children.get(part)
        return node

    def copy(self) -> _Node:
        new = _Node(self.size, self.is_dir, self.whiteout)
        new.children = {k: v.copy() for k, v in self.children.items()}
        return new


def _pop(root: _Node, path: str) -> _Node | None:
    parent_path, _, name = path.rpartition("/")
    parent = root.get(parent_path) if parent_path else root
    return parent.children.pop(name, None) if parent is not None else None


# -- dive's efficiency ---------------------------------------------------------------------------


def _dive_tree(tree: LayerTree) -> _Node:
    """A layer as dive's tree: entries, ``.wh.`` nodes, implicit parents with empty payloads."""
    root = _Node(is_dir=True)
    items: list[tuple[str, _Node]] = []
    for e in tree.entries.values():
        items.append((e.path, _Node(e.size, e.kind is EntryKind.DIR)))
    for w in tree.whiteouts:
        parent, _, name = w.rpartition("/")
        marker = f"{parent}/{_WH}{name}" if parent else _WH + name
        items.append((marker, _Node(whiteout=True)))
    for d in tree.opaque_dirs:
        if d:
            items.append((d, _Node()))  # the marker makes its parents implicit nodes
    for path, payload in sorted(items, key=lambda i: i[0]):
        _dive_add(root, path, payload)
    return root


def _dive_add(root: _Node, path: str, payload: _Node | None) -> None:
    """dive's ``AddPath``: implicit parents get an empty payload; the end node takes ``payload``."""
    parts = path.split("/")
    cur = root
    for i, part in enumerate(parts):
        nxt = cur.children.get(part)
        if nxt is None:
            nxt = cur.children[part] = _Node()
        cur = nxt
        if i == len(parts) - 1 and payload is not None:
            cur.size, cur.is_dir, cur.whiteout = payload.size, payload.is_dir, payload.whiteout


def _dive_path(path: str) -> str:
    parent, _, name = path.rpartition("/")
    name = name.removeprefix(_WH)
    return f"{parent}/{name}" if parent else name


def _dive_stack(lower: _Node, upper: _Node) -> None:
    """dive's ``Stack``: whiteouts remove, every other node (implicit ones too) is (re)added."""
    for path, node in upper.walk(""):
        if node.whiteout:
            _pop(lower, _dive_path(path))
        else:
            _dive_add(lower, path, node)


def _subtree_size(node: _Node) -> int:
    return node.size + sum(n.size for _, n in node.walk(""))


@dataclass(slots=True)
class _Eff:
    cumulative: int = 0
    minimum: int = -1
    count: int = 0


def dive_efficiency(trees: Sequence[LayerTree]) -> tuple[float, int, list[Inefficiency]]:
    """dive 0.13's (efficiency, wasted bytes, inefficient paths) for these layers.

    One pass over each layer's leaves. Only whiteout leaves need dive's stacked tree of the
    layers below, so it is replayed for each of them on the few paths that can touch it (at or
    under the whiteout's target, and whiteouts of its parents): the same trie code on a filtered
    stack, hence the same answer as stacking whole layers, without building them.
    """
    data: dict[str, _Eff] = {}
    stack = _Stack(trees)
    for idx, tree in enumerate(trees):
        _visit(tree, [stack.below(idx, w) for w in sorted(tree.whiteouts)], data)
    return score(data)


def score(data: dict[str, _Eff]) -> tuple[float, int, list[Inefficiency]]:
    """(efficiency, wasted bytes, inefficient paths) from every path's visits."""
    minimum = sum(d.minimum for d in data.values())
    cumulative = sum(d.cumulative for d in data.values())
    efficiency = 1.0 if cumulative == 0 else minimum / cumulative
    wasteful = [Inefficiency(p, d.count, d.cumulative) for p, d in data.items() if d.count >= 2]
    wasteful.sort(key=lambda i: (-i.size_bytes, i.path))
    return efficiency, sum(i.size_bytes for i in wasteful), wasteful


def _marker(path: str) -> str:
    parent, _, name = path.rpartition("/")
    return f"{parent}/{_WH}{name}" if parent else _WH + name


def _leaves(tree: LayerTree) -> list[tuple[str, str, int]]:
    """(node path, path, size) of every leaf of ``tree``'s dive tree; whiteouts' size -1."""
    nodes: dict[str, tuple[str, int]] = {p: (p, e.size) for p, e in tree.entries.items()}
    for d in tree.opaque_dirs:
        if d:
            nodes[d] = (d, 0)  # the opaque marker's empty payload replaces the entry's
    for w in tree.whiteouts:
        nodes[_marker(w)] = (w, -1)
    inner: set[str] = set()
    for path in nodes:
        parent = path.rpartition("/")[0]
        while parent and parent not in inner:
            inner.add(parent)
            parent = parent.rpartition("/")[0]
    return [(raw, path, size) for raw, (path, size) in nodes.items() if raw not in inner]


def _visit(tree: LayerTree, below: list[int | None], data: dict[str, _Eff]) -> None:
    """Add ``tree``'s leaves to ``data`` as dive's visitor does; ``below`` sizes its whiteouts
    (sorted), None where the path is missing below: dive stops the layer's visit there."""
    leaves = _leaves(tree)
    sizes = dict(zip(sorted(tree.whiteouts), below, strict=True))
    if None in below:  # order matters: dive visits leaves depth first, names in byte order
        leaves.sort(key=lambda leaf: leaf[0].split("/"))
    for _raw, path, size in leaves:
        eff = data.setdefault(path, _Eff())
        if size < 0:
            found = sizes[path]
            if found is None:
                return  # dive's visitor errors out here and skips the rest of the layer
            size = found
        eff.cumulative += size
        if eff.minimum < 0 or size < eff.minimum:
            eff.minimum = size
        eff.count += 1


class _Stack:
    """dive's stacked trees below each layer, replayed one whiteout target at a time."""

    def __init__(self, trees: Sequence[LayerTree]) -> None:
        self.trees = trees
        self.paths = [sorted(t.entries) for t in trees]

    def _near(self, i: int, target: str) -> LayerTree:
        """Layer ``i`` cut down to what can touch ``target`` in dive's stacked tree."""
        tree, paths = self.trees[i], self.paths[i]
        lo = bisect.bisect_left(paths, target)
        hi = bisect.bisect_left(paths, target + "0")  # "0" is the character after "/"
        under = [p for p in paths[lo:hi] if p == target or p.startswith(target + "/")]

        def near(p: str) -> bool:
            return p == target or p.startswith(target + "/") or target.startswith(p + "/")

        return LayerTree(
            tree.index,
            {p: tree.entries[p] for p in under},
            {w for w in tree.whiteouts if near(w)},
            {d for d in tree.opaque_dirs if d and (d == target or d.startswith(target + "/"))},
        )

    def below(self, idx: int, target: str) -> int | None:
        """dive's size for a whiteout of ``target`` in layer ``idx``, None when it finds none."""
        near = [_dive_tree(self._near(i, target)) for i in range(max(idx, 1))]
        stacked = near[0].copy()
        for tree in near[:idx]:
            _dive_stack(stacked, tree)
        node = stacked.get(target)
        if node is None:
            return None
        return _subtree_size(node) if node.is_dir else 0
