"""merge_layers follows the OCI image-spec's changeset rules; lookups agree with a brute force."""

from __future__ import annotations

import pytest

from advisor.oci.filetree import LayerTree, merge_layers
from advisor.oci.model import Entry, EntryKind

D, F, L = EntryKind.DIR, EntryKind.FILE, EntryKind.SYMLINK


def layer(index: int, files: dict[str, tuple[EntryKind, int] | tuple[EntryKind, int, str]],
          whiteouts: set[str] | None = None, opaque: set[str] | None = None) -> LayerTree:
    entries = {p: Entry(p, spec[0], spec[1], link=spec[2] if len(spec) == 3 else "")  # type: ignore[misc]
               for p, spec in files.items()}
    return LayerTree(index, entries, whiteouts or set(), opaque or set())


BASE = layer(0, {"a": (D, 0), "a/b": (F, 10), "a/c": (F, 5), "a/d": (D, 0), "a/d/e": (F, 3),
                 "a-b": (F, 7), "lib": (L, 0, "usr/lib"), "usr/lib/x": (F, 4)})


@pytest.mark.parametrize(
    ("upper", "visible", "du_a"),
    [
        (layer(1, {}, whiteouts={"a/b"}), {"a", "a/c", "a/d", "a/d/e"}, 8),
        (layer(1, {}, whiteouts={"a/d"}), {"a", "a/b", "a/c"}, 15),
        (layer(1, {"a/n": (F, 1)}, opaque={"a"}), {"a", "a/n"}, 1),
        (layer(1, {"a/d": (F, 2)}), {"a", "a/b", "a/c", "a/d"}, 17),  # dir replaced by a file
        (layer(1, {"a/b": (F, 100)}), {"a", "a/b", "a/c", "a/d", "a/d/e"}, 108),
    ],
)
def test_merge_rules(upper: LayerTree, visible: set[str], du_a: int) -> None:
    tree = merge_layers([BASE, upper]).tree
    assert {f.path for f in tree.iter_under("a")} == visible
    assert tree.du("a") == du_a
    assert tree.du("") == tree.total_size == sum(f.size for f in tree)
    # the sibling "a-b" is never counted under "a"
    assert "a-b" not in {f.path for f in tree.iter_under("a")}


def test_final_version_comes_from_the_top_layer() -> None:
    tree = merge_layers([BASE, layer(1, {"a/b": (F, 100)})]).tree
    info = tree.get("/a/b")
    assert info is not None and info.layer == 1 and info.size == 100


def test_listdir_resolve_and_is_dir() -> None:
    tree = merge_layers([BASE]).tree
    assert tree.listdir("a") == ["b", "c", "d"]
    assert tree.listdir("") == ["a", "a-b", "lib", "usr"]
    assert tree.resolve("/lib/x") == "usr/lib/x"
    assert tree.is_dir("usr") and tree.is_dir("a/d") and not tree.is_dir("a/b")


def test_symlink_loop_terminates() -> None:
    tree = merge_layers([layer(0, {"x": (L, 0, "y"), "y": (L, 0, "x")})]).tree
    assert tree.resolve("x/z") in {"x", "y"}


def test_merge_is_linear_on_many_whiteouts() -> None:
    n = 20_000
    lower = layer(0, {f"d{i}/f": (F, 1) for i in range(n)})
    upper = layer(1, {}, whiteouts={f"d{i}" for i in range(0, n, 2)})
    tree = merge_layers([lower, upper]).tree
    assert len(tree) == n // 2 and tree.total_size == n // 2
