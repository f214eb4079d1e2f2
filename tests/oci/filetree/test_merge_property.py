"""The one merge (tree + hidden bytes) against two independent references, on random stacks.

1. ``stacks.model``: the overlay rules applied the naive way, visibility checked per layer.
2. umoci: the same layers written as real tars into an OCI layout, walked by advisor, and
   unpacked by ``umoci unpack``; the root it extracts says which version of every file a
   container sees, and unpacking each prefix of the stack says which layer hid each one.
   umoci refuses an entry beneath a lower file and follows a lower symlink where an overlay
   mount shows the layer's directory, so those stacks are left to the model.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings

from advisor.oci.filetree import merge_layers
from advisor.oci.layers import read_layers
from advisor.oci.loader import open_image
from advisor.oci.model import EntryKind
from advisor.oci.tarball import BuiltLayer
from advisor.oci.writer import write_image
from tests.oci.filetree.stacks import F, H, Layer, model, stacks, tar_of


def _ours(layers: list[Layer]) -> tuple[dict[str, tuple[EntryKind, int, str, int]], dict]:
    merged = merge_layers([layer.tree() for layer in layers])
    files = {f.path: (f.kind, f.layer, f.link, f.size) for f in merged.tree}
    hidden = {(h.layer, h.path): (h.by_layer, h.size_bytes, h.how) for h in merged.hidden}
    assert list(merged.hidden) == sorted(merged.hidden, key=lambda h: (-h.size_bytes, h.path, h.layer))
    return files, hidden


def _linked(layers: list[Layer]) -> set[tuple[int, str]]:
    return {(layer.index, link) for layer in layers for kind, _, link in layer.entries.values() if kind is H}


@settings(max_examples=1000, deadline=None)
@given(stacks())
def test_merge_matches_the_model(layers: list[Layer]) -> None:
    expected = model(layers)
    files, hidden = _ours(layers)
    assert files == expected.files
    linked = _linked(layers)
    # which name of a hard-linked file goes last is a tie the model breaks its own way
    assert {v: h[:2] for v, h in hidden.items()} == {v: h[:2] for v, h in expected.hidden.items()}
    assert {v: h for v, h in hidden.items() if v not in linked} == {
        v: h for v, h in expected.hidden.items() if v not in linked
    }


# -- against umoci --------------------------------------------------------------------------------

UMOCI = shutil.which("umoci")


def _write(work: Path, layers: list[Layer], name: str) -> str:
    built = []
    for layer in layers:
        data = tar_of(layer)
        path = work / f"{name}-{layer.index}.tar"
        path.write_bytes(data)
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        built.append(BuiltLayer(path, digest, len(data), digest, len(data), "none"))
    ref = f"oci:{work / name}:t"
    write_image(ref, built, {})
    return ref


def _unpacked(work: Path, ref: str) -> dict[str, tuple[str, bytes]]:
    bundle = work / "bundle"
    shutil.rmtree(bundle, ignore_errors=True)
    subprocess.run(["umoci", "unpack", "--image", ref[4:], str(bundle)], check=True,
                   capture_output=True, timeout=60)
    root = bundle / "rootfs"
    seen: dict[str, tuple[str, bytes]] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = Path(dirpath) / name
            rel = p.relative_to(root).as_posix()
            if p.is_symlink():
                seen[rel] = ("symlink", os.readlink(p).encode())
            elif p.is_dir():
                seen[rel] = ("dir", b"")
            else:
                seen[rel] = ("file", p.read_bytes())
    return seen


def _versions(root: dict[str, tuple[str, bytes]]) -> set[tuple[int, str]]:
    """The file versions an extracted root shows, read back from their contents."""
    out = set()
    for kind, data in root.values():
        if kind == "file" and data:
            layer, _, path = data.split(b";")[0].decode().partition(":")
            out.add((int(layer[1:]), path))
    return out


@pytest.mark.skipif(UMOCI is None, reason="umoci is not installed (scripts/setup.sh installs it)")
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.filter_too_much])
@given(stacks(max_layers=3))
def test_merge_matches_umoci(layers: list[Layer]) -> None:
    assume(not model(layers).nondir_parent)
    assume(not any(k is EntryKind.SYMLINK and _has_below(p, layers) for lay in layers
                   for p, (k, _, _) in lay.entries.items()))
    with tempfile.TemporaryDirectory(prefix="merge-umoci-") as tmp:
        work = Path(tmp)
        ref = _write(work, layers, "full")
        with open_image(ref) as image:
            merged = merge_layers(read_layers(image))
        root = _unpacked(work, ref)
        shipped = {(lay.index, p) for lay in layers for p, (k, n, _) in lay.entries.items() if k is F and n}
        assert {(h.layer, h.path) for h in merged.hidden} == shipped - _versions(root)
        for info in merged.tree:
            kind, data = root[info.path]
            if info.kind is EntryKind.FILE:
                assert (kind, len(data)) == ("file", info.size)
            elif info.kind is EntryKind.HARDLINK:
                assert kind == "file" and data == layers[info.layer].content(info.link)
            elif info.kind is EntryKind.SYMLINK:
                assert (kind, data.decode()) == ("symlink", info.link)
            else:
                assert kind == "dir"
        nondirs = {p for p, (kind, _) in root.items() if kind != "dir"}
        assert nondirs == {f.path for f in merged.tree if f.kind is not EntryKind.DIR}
        # which layer hid each version: the first prefix of the stack that no longer shows it
        for h in merged.hidden:
            prefix = _write(work, layers[: h.by_layer + 1], f"upto{h.by_layer}")
            assert (h.layer, h.path) not in _versions(_unpacked(work, prefix))
            if h.by_layer > h.layer:
                before = _write(work, layers[: h.by_layer], f"upto{h.by_layer - 1}")
                assert (h.layer, h.path) in _versions(_unpacked(work, before))


def _has_below(path: str, layers: list[Layer]) -> bool:
    return any(p.startswith(path + "/") for lay in layers for p in lay.entries)
