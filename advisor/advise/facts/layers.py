"""Layers like ``docker history`` and like dive: sizes, commands, the base image's share,
the largest files, what later layers overwrite or delete, and dive's efficiency score.

Base image detection (``base_layer_count``), in order:
1. ``base_diff_ids`` given (e.g. from the base image named on the command line): the length
   of the common prefix of diff_ids (rule ``explicit``);
2. from history: the base ends at the last ``CMD``/``ENTRYPOINT`` entry that is followed by
   a layer-producing entry (official images end with a ``CMD``; a user's Dockerfile starts
   after it) (rule ``history-cmd``);
3. otherwise the first layer alone, as dive counts "user" bytes (rule ``first-layer``).

The merged tree and the files later layers hide come from one ``merge_layers`` pass, dive's
efficiency from ``advisor.oci.filetree.dive``.
"""

from __future__ import annotations

import heapq
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from advisor.oci.filetree import FileTree, HiddenFile, LayerTree, merge_layers
from advisor.oci.filetree.dive import Inefficiency, dive_efficiency
from advisor.oci.model import EntryKind, HistoryEntry, Image

TOP_N = 20


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
    tree: FileTree  # the merged filesystem the report was made from
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
    """Bytes under every directory: summed per parent first, then up from each directory
    (there are far fewer directories than files)."""
    direct: dict[str, int] = {}
    for path, size in files:
        if size > 0:
            parent = path.rpartition("/")[0]
            if parent:
                direct[parent] = direct.get(parent, 0) + size
    sizes: dict[str, int] = {}
    for directory, size in direct.items():
        while directory:
            sizes[directory] = sizes.get(directory, 0) + size
            directory = directory.rpartition("/")[0]
    return sizes


def _layer_tops(tree: LayerTree, n: int) -> tuple[tuple[PathSize, ...], tuple[PathSize, ...]]:
    files = [(e.path, e.size) for e in tree.entries.values() if e.kind is EntryKind.FILE]
    largest = _top((PathSize(p, s, tree.index) for p, s in files), n)
    dirs = _top((PathSize(d, s, tree.index) for d, s in _dir_sizes(files).items()), n)
    return largest, dirs


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
    merge = merge_layers(trees)
    final = [f for f in merge.tree if f.kind is EntryKind.FILE]
    final_files = [(f.path, f.size) for f in final]
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
        hidden=merge.hidden,
        hidden_bytes=merge.hidden_bytes,
        efficiency=efficiency,
        wasted_bytes=wasted,
        inefficiencies=tuple(inefficient),
        tree=merge.tree,
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
