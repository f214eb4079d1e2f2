"""Walked layers kept on disk by diff_id, so a layer seen once is never read again.

A layer's walk (its entries, whiteouts and captured content) depends only on its bytes, named
by its diff_id, and on the code that walks it and chooses what to capture. ``LayerCache``
stores each ``LayerTree`` under ``$ADVISOR_CACHE/layers/<version>/<diff_id hex>``, where
``version`` is a digest of that code (``code_version``): a change to the walk or to a capture
rule starts a new cache, and the old entries are never read again. A second advise of an image,
or of another image on the same base, reads only the layers it has not seen.

Only verified layers are stored: ``read_layers`` puts a tree after the whole blob was read
through its digest check (a layer walked by seeking, once the hash beside it matched), and a
compressed layer's tar is hashed too, against its diff_id (``walk_layer(diff_id=...)``; an
uncompressed blob's diff_id must be its digest), so no image can file bytes under another
layer's name.
Entries are written to a temporary file and renamed (concurrent runs never see half of one),
mode 0600 (captures may hold the small secret files ``sec-secrets-in-layers`` reports), and
read back only when their checksum, version and diff_id match; anything else is a miss, and
the walk rewrites it.

A hit from a local layout or archive is trusted once its blob is known to be the bytes that
were hashed: re-hashed, or unchanged since a hash of it matched. ``verified/`` records, by
blob digest, the file identities (device, inode, size, mtime_ns, ctime_ns, place in the
archive) whose bytes hashed to it; ``read_layers`` records one only when the identity was the
same before and after the hash and its ctime was at least ``RACY_SECONDS`` old when the hash
began. A write to the file after that moves its ctime to the present (the kernel sets ctime on
every change of content or metadata, and no call sets it back), a file put in its place is a
new inode with a new ctime, and a copy is a new inode: each misses and is re-hashed. The
margin covers the kernel's coarse timestamps (a write in the same clock tick as the last
change would keep ctime). Only a clock set back, or a write to the block device under the
filesystem, could slip past; who can do that can also rewrite this cache.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import sys
from collections.abc import Iterable
from pathlib import Path
from types import ModuleType
from typing import Any

from advisor.fsutil import write_bytes_atomic
from advisor.oci.filetree import LayerTree
from advisor.oci.model import Entry, EntryKind, Layer, Meta

FORMAT = 1
RACY_SECONDS = 2.0  # a blob changed this recently is re-hashed, whatever its identity
_MAGIC = b"advisor-layer\n"
_KINDS = list(EntryKind)
_KIND_CODE = {kind: i for i, kind in enumerate(_KINDS)}


def default_root() -> Path:
    """``$ADVISOR_CACHE/layers`` (default ``~/.cache/advisor/layers``)."""
    base = os.environ.get("ADVISOR_CACHE") or str(Path.home() / ".cache" / "advisor")
    return Path(base) / "layers"


def code_version(modules: Iterable[ModuleType | str]) -> str:
    """A digest of the source of ``modules`` (and of the walk and this module): any change to
    how layers are read, what is captured or how it is stored gives a new version."""
    h = hashlib.sha256(f"format {FORMAT}\n".encode())
    names = {"advisor.oci.walk", "advisor.oci.layers", "advisor.oci.tar", "advisor.oci.model", "advisor.oci.filetree.tree",
             __name__, *(m if isinstance(m, str) else m.__name__ for m in modules)}
    for name in sorted(names):
        module = sys.modules.get(name) or __import__(name, fromlist=["_"])
        source = getattr(module, "__file__", None)
        h.update(name.encode() + b"\0")
        h.update(Path(source).read_bytes() if source else b"")
    return h.hexdigest()[:20]


def _encode(tree: LayerTree) -> bytes:
    entries = list(tree.entries.values())
    blobs: list[bytes] = []
    captured = []
    for which, store in (("h", tree.heads), ("t", tree.tails)):
        for path, data in store.items():
            captured.append([which, path, len(data)])
            blobs.append(data)
    meta = {
        "paths": [e.path for e in entries],
        "kinds": [_KIND_CODE[e.kind] for e in entries],
        "sizes": [e.size for e in entries],
        "modes": [e.mode for e in entries],
        "uids": [e.uid for e in entries],
        "gids": [e.gid for e in entries],
        "mtimes": [e.mtime for e in entries],
        "links": {i: e.link for i, e in enumerate(entries) if e.link},
        "whiteouts": sorted(tree.whiteouts),
        "opaque": sorted(tree.opaque_dirs),
        "captured": captured,
    }
    text = json.dumps(meta, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogateescape")
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def _decode(payload: bytes, index: int) -> LayerTree:
    (n,) = struct.unpack_from("<Q", payload)
    meta: dict[str, Any] = json.loads(payload[8 : 8 + n].decode("utf-8", "surrogateescape"))
    links = {int(k): v for k, v in meta["links"].items()}
    tree = LayerTree(index, whiteouts=set(meta["whiteouts"]), opaque_dirs=set(meta["opaque"]))
    columns = zip(meta["paths"], meta["kinds"], meta["sizes"], meta["modes"], meta["uids"],
                  meta["gids"], meta["mtimes"], strict=True)
    same: dict[Meta, Meta] = {}  # one meta tuple per combination, as the walk keeps them
    for i, (path, kind, size, mode, uid, gid, mtime) in enumerate(columns):
        m: Meta = (_KINDS[kind], mode, uid, gid, links.get(i, ""), mtime, index)
        tree.entries[path] = Entry.of(path, size, same.setdefault(m, m) if not m[4] else m)
    at = 8 + n
    for which, path, length in meta["captured"]:
        (tree.heads if which == "h" else tree.tails)[path] = payload[at : at + length]
        at += length
    if at != len(payload):
        raise ValueError("captured content does not add up")
    return tree


class LayerCache:
    """``LayerTree``s by diff_id for one ``version`` of the walk and its captures."""

    def __init__(self, version: str, root: Path | None = None) -> None:
        self.version = version
        self.dir = (root or default_root()) / version
        self.verified_dir = (root or default_root()) / "verified"

    # -- local blobs whose hash matched, by where they live ---------------------------------
    def _verified_path(self, digest: str, identity: tuple[int | str, ...]) -> Path:
        key = hashlib.sha256(f"{digest} {identity!r}".encode()).hexdigest()
        return self.verified_dir / key

    def was_verified(self, digest: str, identity: tuple[int | str, ...]) -> bool:
        """Whether a local blob with this file identity once hashed to ``digest``."""
        return self._verified_path(digest, identity).is_file()

    def note_verified(self, digest: str, identity: tuple[int | str, ...]) -> None:
        """Record that the blob at ``identity`` hashed to ``digest`` (failing to is no error)."""
        try:
            self.verified_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_bytes_atomic(self._verified_path(digest, identity),
                               f"{digest} {identity!r}\n".encode(), mode=0o600)
        except OSError:
            return

    def _path(self, diff_id: str) -> Path | None:
        algorithm, _, hexpart = diff_id.partition(":")
        if algorithm != "sha256" or len(hexpart) != 64 or not all(c in "0123456789abcdef" for c in hexpart):
            return None
        return self.dir / hexpart

    def _header(self, diff_id: str) -> bytes:
        return _MAGIC + f"{self.version} {diff_id}\n".encode()

    def get(self, layer: Layer) -> LayerTree | None:
        """The cached tree of ``layer`` (renumbered to its index), or None: absent, another
        version, or damaged in any way."""
        path = self._path(layer.diff_id)
        if path is None:
            return None
        try:
            data = path.read_bytes()
        except OSError:
            return None
        header = self._header(layer.diff_id)
        body = data[len(header) + 32 :]
        if not data.startswith(header) or data[len(header) : len(header) + 32] != hashlib.sha256(body).digest():
            return None
        try:
            import zstandard

            return _decode(zstandard.ZstdDecompressor().decompress(body), layer.index)
        except Exception:  # a damaged entry is a miss, whatever broke
            return None

    @staticmethod
    def pack(tree: LayerTree) -> bytes:
        """What ``put`` stores for ``tree``, made ahead (while its blob is still hashing)."""
        import zstandard

        return zstandard.ZstdCompressor(level=3).compress(_encode(tree))

    def put(self, layer: Layer, tree: LayerTree, packed: bytes | None = None) -> None:
        """Store ``tree`` (walked from ``layer``'s verified bytes; ``packed``: its ``pack``
        made ahead); failing to is no error."""
        path = self._path(layer.diff_id)
        if path is None:
            return
        body = packed if packed is not None else self.pack(tree)
        data = self._header(layer.diff_id) + hashlib.sha256(body).digest() + body
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            write_bytes_atomic(path, data, mode=0o600)
        except OSError:
            return  # a read-only or full cache only costs the next run its speed
