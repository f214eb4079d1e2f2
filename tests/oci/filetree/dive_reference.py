"""The trie model of dive 0.13's efficiency that advisor shipped until the single-pass one,
kept as the reference the new one is tested against (it was checked against the dive binary):
every layer built as a whole trie and stacked whole, every leaf visited in trie order.
"""

from __future__ import annotations

from collections.abc import Sequence

from advisor.oci.filetree.dive import (
    Inefficiency,
    _dive_path,
    _dive_stack,
    _dive_tree,
    _Eff,
    _Node,
    _subtree_size,
    score,
)
from advisor.oci.filetree.tree import LayerTree


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
    return score(data)


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
