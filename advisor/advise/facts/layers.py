"""Layers like ``docker history`` and like dive: sizes, commands, the base image's share,
the largest files, what later layers overwrite or delete, and dive's efficiency score.

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

Base image detection (``base_layer_count``), in order:
1. ``base_diff_ids`` given (e.g. from the base image named on the command line): the length
   of the common prefix of diff_ids (rule ``explicit``);
2. from history: the base ends at the last ``CMD``/``ENTRYPOINT`` entry that is followed by
   a layer-producing entry (official images end with a ``CMD``; a user's Dockerfile starts
   after it) (rule ``history-cmd``);
3. otherwise the first layer alone, as dive counts "user" bytes (rule ``first-layer``).
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from advisor.oci.filetree import FileTree, LayerTree
from advisor.oci.model import EntryKind, HistoryEntry, Image

TOP_N = 20
_WH = ".wh."
_OPAQUE_PREFIX = ".wh..wh."


# -- result types ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PathSize:
    path: str
    size_bytes: int
    layer: int = -1  # -1: a directory aggregated over several layers


@dataclass(frozen=True, slots=True)
class LayerInfo:
    """One layer, as ``docker history`` shows it plus what dive adds."""

    index: int
    digest: str
    diff_id: str
    size_bytes: int  # regular-file bytes in the layer tar (dive's and docker's layer size)
    compressed_size_bytes: int
    files: int  # non-directory entries (files, links, devices), whiteouts excluded
    created_by: str
    empty_layer: bool  # a layer that ships no entries at all
    is_base: bool
    whiteouts: int
    largest_files: tuple[PathSize, ...] = ()
    largest_dirs: tuple[PathSize, ...] = ()


@dataclass(frozen=True, slots=True)
class HistoryRow:
    """One history entry; ``layer`` is the layer it produced (None for empty_layer entries)."""

    created_by: str
    created: str
    comment: str
    empty_layer: bool
    layer: int | None


@dataclass(frozen=True, slots=True)
class HiddenFile:
    """Bytes a layer ships that a later layer hides: overwritten, deleted or made opaque."""

    path: str
    layer: int
    by_layer: int
    size_bytes: int
    how: str  # "overwritten" | "deleted" | "opaque"


@dataclass(frozen=True, slots=True)
class Inefficiency:
    """A path dive counts as wasted: seen in ``count`` layers, ``size_bytes`` in total."""

    path: str
    count: int
    size_bytes: int


@dataclass(frozen=True, slots=True)
class LayerReport:
    layers: tuple[LayerInfo, ...]
    history: tuple[HistoryRow, ...]
    size_bytes: int
    compressed_size_bytes: int
    base_layer_count: int
    base_rule: str
    base_size_bytes: int
    user_size_bytes: int
    largest_files: tuple[PathSize, ...]
    largest_dirs: tuple[PathSize, ...]
    hidden: tuple[HiddenFile, ...]
    hidden_bytes: int
    efficiency: float
    wasted_bytes: int
    inefficiencies: tuple[Inefficiency, ...] = field(default=())


# -- history -> layers ----------------------------------------------------------------------


def map_history(history: Sequence[HistoryEntry], layer_count: int) -> tuple[HistoryRow, ...]:
    """Pair history entries with layers as docker does: empty_layer entries produce none."""
    rows: list[HistoryRow] = []
    next_layer = 0
    for h in history:
        layer: int | None = None
        if not h.empty_layer and next_layer < layer_count:
            layer = next_layer
            next_layer += 1
        rows.append(HistoryRow(h.created_by, h.created, h.comment, h.empty_layer, layer))
    return tuple(rows)


def _created_by(rows: Iterable[HistoryRow], layer_count: int) -> list[str]:
    out = [""] * layer_count
    for row in rows:
        if row.layer is not None:
            out[row.layer] = row.created_by
    return out


_INSTRUCTION = re.compile(r"^(?:/bin/sh -c\s+)?(?:#\(nop\)\s*)?([A-Z]+)\b")


def instruction(created_by: str) -> str:
    """The Dockerfile instruction behind a history line (``RUN`` for plain shell commands)."""
    text = created_by.strip()
    m = _INSTRUCTION.match(text)
    if m and m.group(1) in _KNOWN:
        return m.group(1)
    return "RUN" if text else ""


_KNOWN = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL",
    "MAINTAINER", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip


def detect_base(
    rows: Sequence[HistoryRow], diff_ids: Sequence[str], base_diff_ids: Sequence[str] | None
) -> tuple[int, str]:
    """How many leading layers belong to the base image, and the rule that decided it."""
    if base_diff_ids is not None:
        n = 0
        for mine, theirs in zip(diff_ids, base_diff_ids, strict=False):
            if mine != theirs:
                break
            n += 1
        return n, "explicit"
    for i in range(len(rows) - 1, -1, -1):
        if instruction(rows[i].created_by) in ("CMD", "ENTRYPOINT"):
            later = [r.layer for r in rows[i + 1 :] if r.layer is not None]
            if later:
                return later[0], "history-cmd"
    return (1 if len(diff_ids) > 1 else 0), "first-layer"


# -- largest files and directories ----------------------------------------------------------------


def _top(items: Iterable[PathSize], n: int) -> tuple[PathSize, ...]:
    return tuple(heapq.nsmallest(n, items, key=lambda p: (-p.size_bytes, p.path, p.layer)))


def _dir_sizes(files: Iterable[tuple[str, int]]) -> dict[str, int]:
    sizes: dict[str, int] = {}
    for path, size in files:
        if size <= 0:
            continue
        parent = path.rpartition("/")[0]
        while parent:
            sizes[parent] = sizes.get(parent, 0) + size
            parent = parent.rpartition("/")[0]
    return sizes


def _layer_tops(tree: LayerTree, n: int) -> tuple[tuple[PathSize, ...], tuple[PathSize, ...]]:
    files = [(e.path, e.size) for e in tree.entries.values() if e.kind is EntryKind.FILE]
    largest = _top((PathSize(p, s, tree.index) for p, s in files), n)
    dirs = _top((PathSize(d, s, tree.index) for d, s in _dir_sizes(files).items()), n)
    return largest, dirs


# -- overwritten and deleted files ------------------------------------------------------------------


class _Node:
    """A trie node: a path component, its payload and children (used by both models below)."""

    __slots__ = ("children", "is_dir", "layer", "size", "whiteout")

    def __init__(
        self, size: int = 0, is_dir: bool = False, layer: int = -1, whiteout: bool = False
    ):
        self.children: dict[str, _Node] = {}
        self.size = size
        self.is_dir = is_dir
        self.layer = layer
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
        new = _Node(self.size, self.is_dir, self.layer, self.whiteout)
        new.children = {k: v.copy() for k, v in self.children.items()}
        return new


def _pop(root: _Node, path: str) -> _Node | None:
    parent_path, _, name = path.rpartition("/")
    parent = root.get(parent_path) if parent_path else root
    return parent.children.pop(name, None) if parent is not None else None


def _leaf_files(node: _Node, path: str) -> Iterator[tuple[str, _Node]]:
    if not node.is_dir:
        yield path, node
    yield from ((p, n) for p, n in node.walk(path) if not n.is_dir)


def hidden_files(trees: Sequence[LayerTree]) -> list[HiddenFile]:
    """Every file version a later layer overwrites, deletes or hides behind an opaque dir."""
    live = _Node(is_dir=True)
    out: list[HiddenFile] = []

    def hide(path: str, by: int, how: str) -> None:
        node = _pop(live, path)
        if node is not None:
            out.extend(HiddenFile(p, n.layer, by, n.size, how) for p, n in _leaf_files(node, path))

    for tree in trees:
        for d in sorted(tree.opaque_dirs):
            node = live.get(d) if d else live
            for name in sorted(node.children) if node is not None else []:
                hide(f"{d}/{name}" if d else name, tree.index, "opaque")
        for w in sorted(tree.whiteouts):
            hide(w, tree.index, "deleted")
        for path in sorted(tree.entries):
            entry = tree.entries[path]
            is_dir = entry.kind is EntryKind.DIR
            old = live.get(path)
            if old is not None and not (is_dir and old.is_dir):
                hide(path, tree.index, "overwritten")
            _insert(live, path, _Node(entry.size, is_dir, tree.index))
    return sorted(out, key=lambda h: (-h.size_bytes, h.path, h.layer))


def _insert(root: _Node, path: str, node: _Node) -> None:
    parts = path.split("/")
    cur = root
    for part in parts[:-1]:
        nxt = cur.children.get(part)
        if nxt is None:
            nxt = cur.children[part] = _Node(is_dir=True)
        cur = nxt
    old = cur.children.get(parts[-1])
    if old is not None and old.is_dir and node.is_dir:
        old.size, old.layer = node.size, node.layer  # a directory re-listed keeps its children
        return
    cur.children[parts[-1]] = node


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
    """dive 0.13's (efficiency, wasted bytes, inefficient paths) for these layers."""
    dive_trees = [_dive_tree(t) for t in trees]
    data: dict[str, _Eff] = {}
    stacked: _Node | None = None
    for idx, tree in enumerate(dive_trees):
        if idx == 0:
            stacked = tree.copy()
        else:
            assert stacked is not None
            _dive_stack(stacked, dive_trees[idx - 1])
        _visit_leaves(tree, stacked, data)
    minimum = sum(d.minimum for d in data.values())
    cumulative = sum(d.cumulative for d in data.values())
    score = 1.0 if cumulative == 0 else minimum / cumulative
    wasteful = [Inefficiency(p, d.count, d.cumulative) for p, d in data.items() if d.count >= 2]
    wasteful.sort(key=lambda i: (-i.size_bytes, i.path))
    return score, sum(i.size_bytes for i in wasteful), wasteful


def _visit_leaves(tree: _Node, stacked: _Node | None, data: dict[str, _Eff]) -> None:
    for raw_path, node in tree.walk(""):
        if node.children:
            continue
        path = _dive_path(raw_path)
        eff = data.setdefault(path, _Eff())
        if node.whiteout:
            below = stacked.get(path) if stacked is not None else None
            if below is None:
                return  # dive's visitor errors out here and skips the rest of the layer
            size = _subtree_size(below) if below.is_dir else 0
        else:
            size = node.size
        eff.cumulative += size
        if eff.minimum < 0 or size < eff.minimum:
            eff.minimum = size
        eff.count += 1


# -- the analysis ---------------------------------------------------------------------------------


def analyze_layers(
    image: Image,
    trees: Sequence[LayerTree],
    *,
    base_diff_ids: Sequence[str] | None = None,
    top_n: int = TOP_N,
) -> LayerReport:
    """Everything about the layers of ``image`` that ``trees`` (from ``read_layers``) show."""
    rows = map_history(image.config.history, len(image.layers))
    commands = _created_by(rows, len(image.layers))
    diff_ids = [layer.diff_id for layer in image.layers]
    base_count, rule = detect_base(rows, diff_ids, base_diff_ids)
    infos = tuple(
        _layer_info(image, tree, commands[tree.index], tree.index < base_count, top_n)
        for tree in trees
    )
    merged = FileTree.merge(trees)
    final = [f for f in merged if f.kind is EntryKind.FILE]
    final_files = [(f.path, f.size) for f in final]
    hidden = hidden_files(trees)
    efficiency, wasted, inefficient = dive_efficiency(trees)
    size = sum(i.size_bytes for i in infos)
    base_size = sum(i.size_bytes for i in infos if i.is_base)
    return LayerReport(
        layers=infos,
        history=rows,
        size_bytes=size,
        compressed_size_bytes=image.compressed_size,
        base_layer_count=base_count,
        base_rule=rule,
        base_size_bytes=base_size,
        user_size_bytes=size - base_size,
        largest_files=_top((PathSize(f.path, f.size, f.layer) for f in final), top_n),
        largest_dirs=_top((PathSize(d, s) for d, s in _dir_sizes(final_files).items()), top_n),
        hidden=tuple(hidden),
        hidden_bytes=sum(h.size_bytes for h in hidden),
        efficiency=efficiency,
        wasted_bytes=wasted,
        inefficiencies=tuple(inefficient),
    )


def _layer_info(
    image: Image, tree: LayerTree, created_by: str, is_base: bool, top_n: int
) -> LayerInfo:
    layer = image.layers[tree.index]
    largest, dirs = _layer_tops(tree, top_n)
    files = sum(1 for e in tree.entries.values() if e.kind is not EntryKind.DIR)
    return LayerInfo(
        index=tree.index,
        digest=layer.blob.digest,
        diff_id=layer.diff_id,
        size_bytes=tree.size,
        compressed_size_bytes=layer.blob.size,
        files=files,
        created_by=created_by,
        empty_layer=not tree.entries and not tree.whiteouts and not tree.opaque_dirs,
        is_base=is_base,
        whiteouts=len(tree.whiteouts) + len(tree.opaque_dirs),
        largest_files=largest,
        largest_dirs=dirs,
    )
