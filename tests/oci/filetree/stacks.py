"""Random layer stacks for the merge's property tests, and a straightforward model of them.

A stack is a list of ``Layer`` specs (entries, whiteouts, opaque directories), each one a tar
a real tool could write: no entry beneath a non-directory of its own layer, hard links only to
a regular file of the same layer. ``model`` applies them the naive way (a dict of paths,
list scans, the state checked after every layer) with the overlay rules that
``advisor.oci.filetree.merge`` documents; ``tar_of`` writes the same layer as a real tar for
umoci. File contents name their version (``L1:a/b``), so an extracted root says which layer's
copy of each file it shows.
"""

from __future__ import annotations

import io
import tarfile
from dataclasses import dataclass, field

from hypothesis import strategies as st

from advisor.oci.filetree import LayerTree
from advisor.oci.model import Entry, EntryKind

F, D, S, H = EntryKind.FILE, EntryKind.DIR, EntryKind.SYMLINK, EntryKind.HARDLINK
NAMES = ("a", "b", "c")


@dataclass
class Layer:
    index: int
    entries: dict[str, tuple[EntryKind, int, str]] = field(default_factory=dict)  # kind, copies, link
    whiteouts: set[str] = field(default_factory=set)
    opaque: set[str] = field(default_factory=set)

    def content(self, path: str) -> bytes:
        return f"L{self.index}:{path};".encode() * self.entries[path][1]

    def tree(self) -> LayerTree:
        entries = {}
        for path, (kind, _copies, link) in self.entries.items():
            size = len(self.content(path)) if kind is F else 0
            entries[path] = Entry(path, kind, size, link=link)
        return LayerTree(self.index, entries, set(self.whiteouts), set(self.opaque))


def _below_nondir(path: str, entries: dict[str, tuple[EntryKind, int, str]]) -> bool:
    parts = path.split("/")
    return any(entries.get("/".join(parts[:i]), (D,))[0] is not D for i in range(1, len(parts)))


def _has_children(path: str, entries: dict[str, tuple[EntryKind, int, str]]) -> bool:
    return any(p.startswith(path + "/") for p in entries)


paths = st.lists(st.sampled_from(NAMES), min_size=1, max_size=3).map("/".join)
ops = st.tuples(st.sampled_from("ffffddslwo"), paths, st.integers(0, 3))


@st.composite
def stacks(draw: st.DrawFn, max_layers: int = 4) -> list[Layer]:
    layers = []
    for index in range(draw(st.integers(1, max_layers))):
        layer = Layer(index)
        for op, path, copies in draw(st.lists(ops, max_size=7)):
            if op == "w":
                layer.whiteouts.add(path)
            elif op == "o":
                layer.opaque.add(path.rpartition("/")[0])
            elif path in layer.entries or _below_nondir(path, layer.entries):
                continue
            elif op == "d":
                layer.entries[path] = (D, 0, "")
            elif _has_children(path, layer.entries):
                continue
            elif op == "s":
                layer.entries[path] = (S, 0, "elsewhere")
            elif op == "l":
                files = sorted(p for p, e in layer.entries.items() if e[0] is F and e[1])
                if files:
                    layer.entries[path] = (H, 0, files[copies % len(files)])
            else:
                layer.entries[path] = (F, copies, "")
        layers.append(layer)
    return layers


# -- the model -----------------------------------------------------------------------------------

Version = tuple[int, str]  # (layer, path) of a regular file with bytes


@dataclass
class Outcome:
    files: dict[str, tuple[EntryKind, int, str, int]]  # path -> kind, layer, link, size
    hidden: dict[Version, tuple[int, int, str]]  # version -> by_layer, size, how
    nondir_parent: bool = False  # an entry landed beneath a lower non-directory


def _visible(state: dict[str, tuple[EntryKind, int, str, int]]) -> set[Version]:
    seen = set()
    for path, (kind, layer, link, size) in state.items():
        if kind is F and size:
            seen.add((layer, path))
        elif kind is H:
            seen.add((layer, link))
    return seen


def model(layers: list[Layer]) -> Outcome:
    state: dict[str, tuple[EntryKind, int, str, int]] = {}
    sizes: dict[Version, int] = {}
    reason: dict[Version, str] = {}
    hidden: dict[Version, tuple[int, int, str]] = {}
    out = Outcome(state, hidden)
    for layer in layers:
        lower = set(state)
        before = _visible(state)

        def remove(inside: str, strict: bool, how: str, lower: set[str] = lower) -> None:
            for p in sorted(state):
                under = inside == "" or p.startswith(inside + "/")
                if p in lower and (under or (p == inside and not strict)):
                    kind, owner, link, _ = state.pop(p)
                    version = (owner, link if kind is H else p)
                    reason[version] = how

        for d in sorted(layer.opaque):
            remove(d, True, "opaque")
        for w in sorted(layer.whiteouts):
            remove(w, False, "deleted")
        tree = layer.tree()
        for path in sorted(tree.entries):
            entry = tree.entries[path]
            parts = path.split("/")
            for i in range(1, len(parts)):
                ancestor = "/".join(parts[:i])
                if ancestor in lower and ancestor in state and state[ancestor][0] is not D:
                    out.nondir_parent = True
                    remove(ancestor, False, "overwritten")
            old = state.get(path)
            if old is not None and not (old[0] is D and entry.kind is D):
                remove(path, False, "overwritten")
            if entry.kind is not D:  # over a lower directory, listed or implied
                remove(path, True, "overwritten")
            state[path] = (entry.kind, layer.index, entry.link, entry.size)
            if entry.kind is F and entry.size:
                sizes[(layer.index, path)] = entry.size
        for version in before - _visible(state):
            hidden[version] = (layer.index, sizes[version], reason[version])
    return out


def tar_of(layer: Layer) -> bytes:
    """The layer as a tar: whiteout and opaque markers first (they apply to lower layers only),
    then the entries, parents before children and hard links after their targets; missing
    parents stay implicit."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        markers = [f"{d}/.wh..wh..opq" if d else ".wh..wh..opq" for d in sorted(layer.opaque)]
        for w in sorted(layer.whiteouts):
            parent, _, name = w.rpartition("/")
            markers.append(f"{parent}/.wh.{name}" if parent else f".wh.{name}")
        for name in markers:
            tar.addfile(tarfile.TarInfo(name), io.BytesIO(b""))
        for path in sorted(layer.entries, key=lambda p: (layer.entries[p][0] is H, p)):
            kind, _, link = layer.entries[path]
            info = tarfile.TarInfo(path)
            data = b""
            if kind is F:
                data = layer.content(path)
            elif kind is D:
                info.type, info.mode = tarfile.DIRTYPE, 0o755
            else:
                info.type = tarfile.SYMTYPE if kind is S else tarfile.LNKTYPE
                info.linkname = link
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()
