"""The single-pass dive efficiency against the trie model it replaced, on random stacks.

The trie model (``dive_reference``) was checked against the real dive binary; so is the new
one (``tests/advise/facts/test_dive_parity.py``). Here they must agree to the byte on stacks
built to hit dive's quirks: whiteouts of paths missing below (dive stops the layer's visit),
opaque markers over listed directories, implicit parents, names that sort around ".wh.".
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from advisor.oci.filetree import LayerTree
from advisor.oci.filetree.dive import dive_efficiency
from advisor.oci.model import Entry, EntryKind
from tests.oci.filetree import dive_reference
from tests.oci.filetree.stacks import Layer, stacks

NAMES = ("a", "b", "-x", ".wh", "zz")
raw_paths = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("/".join)
kinds = st.sampled_from([EntryKind.FILE, EntryKind.FILE, EntryKind.DIR, EntryKind.SYMLINK])


@st.composite
def raw_stacks(draw: st.DrawFn) -> list[LayerTree]:
    """Stacks no writer would make: entries below files, whiteouts of anything, any mix."""
    trees = []
    for index in range(draw(st.integers(1, 4))):
        entries = {}
        for path, kind, size in draw(st.lists(st.tuples(raw_paths, kinds, st.integers(0, 50)), max_size=8)):
            entries[path] = Entry(path, kind, size if kind is EntryKind.FILE else 0, layer=index)
        whiteouts = set(draw(st.lists(raw_paths, max_size=3)))
        opaque = set(draw(st.lists(raw_paths, max_size=2)))
        trees.append(LayerTree(index, entries, whiteouts, opaque))
    return trees


def _same(trees: list[LayerTree]) -> None:
    new = dive_efficiency(trees)
    old = dive_reference.dive_efficiency(trees)
    assert new[1] == old[1]
    assert [(i.path, i.count, i.size_bytes) for i in new[2]] == [(i.path, i.count, i.size_bytes) for i in old[2]]
    assert new[0] == pytest.approx(old[0], abs=1e-12)


@settings(max_examples=1500, deadline=None)
@given(raw_stacks())
def test_single_pass_equals_the_trie_model_on_raw_stacks(trees: list[LayerTree]) -> None:
    _same(trees)


@settings(max_examples=500, deadline=None)
@given(stacks())
def test_single_pass_equals_the_trie_model_on_real_shaped_stacks(layers: list[Layer]) -> None:
    _same([layer.tree() for layer in layers])
