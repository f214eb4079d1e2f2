"""The data that flows out of every image source, whatever the transport.

These dataclasses are the contract between ``advisor.oci`` (which reads bytes) and
``advisor.advise.facts`` (which reasons about them). Sizes are bytes; digests are
``sha256:<hex>`` strings; paths inside a layer are normalised POSIX paths without a
leading ``/`` or ``./`` (the root itself is never an entry).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping, Sequence
from dataclasses import FrozenInstanceError, dataclass, field
from typing import Any, BinaryIO, Protocol


class EntryKind(enum.Enum):
    FILE = "file"
    DIR = "dir"
    SYMLINK = "symlink"
    HARDLINK = "hardlink"
    CHAR = "char"
    BLOCK = "block"
    FIFO = "fifo"


Meta = tuple[EntryKind, int, int, int, str, int, int]  # kind, mode, uid, gid, link, mtime, layer


class Entry:
    """One tar member of a layer, after whiteout markers have been interpreted.

    ``size`` is the content length for regular files and 0 for everything else (a hardlink
    carries no bytes of its own in a tar). ``link`` is the target of a symlink (as written)
    or of a hardlink (normalised like ``path``). ``layer`` is the index of the layer the
    member comes from: the merged tree holds the same objects as the layers (one record per
    file, however many views), so it says where each final version lives.

    Immutable, compared and hashed by value like the frozen dataclass it was. Compact: three
    slots (64 bytes, not 104), the rest in one ``meta`` tuple that the walk shares between
    the files of a layer with the same kind, mode, owner and mtime (most of them), so a
    million-file layer costs about 40 MB less.
    """

    __slots__ = ("_meta", "path", "size")
    path: str
    size: int
    _meta: Meta

    def __init__(self, path: str, kind: EntryKind, size: int = 0, mode: int = 0o644,
                 uid: int = 0, gid: int = 0, link: str = "", mtime: int = 0,
                 layer: int = -1) -> None:
        _SET_PATH(self, path)
        _SET_SIZE(self, size)
        _SET_META(self, (kind, mode, uid, gid, link, mtime, layer))

    @classmethod
    def of(cls, path: str, size: int, meta: Meta) -> Entry:
        """An entry with a ``meta`` tuple the caller shares between entries."""
        entry = _NEW(cls)
        _SET_PATH(entry, path)
        _SET_SIZE(entry, size)
        _SET_META(entry, meta)
        return entry

    @property
    def meta(self) -> Meta:
        return self._meta

    @property
    def kind(self) -> EntryKind:
        return self._meta[0]

    @property
    def mode(self) -> int:
        return self._meta[1]

    @property
    def uid(self) -> int:
        return self._meta[2]

    @property
    def gid(self) -> int:
        return self._meta[3]

    @property
    def link(self) -> str:
        return self._meta[4]

    @property
    def mtime(self) -> int:
        return self._meta[5]

    @property
    def layer(self) -> int:
        return self._meta[6]

    def at_layer(self, layer: int) -> Entry:
        """The same member attributed to another layer."""
        m = self._meta
        return Entry.of(self.path, self.size, (m[0], m[1], m[2], m[3], m[4], m[5], layer))

    def _key(self) -> tuple[object, ...]:
        m = self._meta
        return (self.path, m[0], self.size, m[1], m[2], m[3], m[4], m[5], m[6])

    def __eq__(self, other: object) -> bool:
        if other.__class__ is not Entry:
            return NotImplemented
        assert isinstance(other, Entry)
        return self._key() == other._key()

    def __hash__(self) -> int:
        return hash(self._key())

    def __repr__(self) -> str:
        m = self._meta
        return (f"Entry(path={self.path!r}, kind={m[0]!r}, size={self.size!r}, mode={m[1]!r}, "
                f"uid={m[2]!r}, gid={m[3]!r}, link={m[4]!r}, mtime={m[5]!r}, layer={m[6]!r})")

    def __setattr__(self, name: str, value: object) -> None:
        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> None:
        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[object, ...]:
        return (Entry, (self.path, self.kind, self.size, self.mode, self.uid, self.gid,
                        self.link, self.mtime, self.layer))


_NEW = object.__new__
_SET_PATH = Entry.__dict__["path"].__set__
_SET_SIZE = Entry.__dict__["size"].__set__
_SET_META = Entry.__dict__["_meta"].__set__


@dataclass(frozen=True, slots=True)
class Capture:
    """How much of a file's content an analysis wants kept while the layer streams past.

    ``head`` bytes from the start (a file no larger than ``head`` is kept whole), then one
    range more: the last ``tail`` bytes, or where ``span`` says once it has seen the head
    (an ELF file's section table lies wherever its header points, not always at the end).
    """

    head: int
    tail: int = 0
    # ``(head, size) -> (start, stop)`` of the range to keep after the head, or None for none.
    span: Callable[[bytes, int], tuple[int, int] | None] | None = None
    # Shrinks what was captured to what the analysis reads, once per file while the layer
    # streams past: ``(head, data, start, size) -> (head, kept)``, ``data`` being the file's
    # bytes from offset ``start``. What it keeps is the analysis' own (a name, a summary).
    trim: Callable[[bytes, bytes, int, int], tuple[bytes, bytes]] | None = None

    def _range(self, head: bytes, size: int) -> tuple[int, int] | None:
        if self.span is not None:
            got = self.span(head, size)
        else:
            got = (max(size - self.tail, 0), size) if self.tail else None
        if got is None:
            return None
        start, stop = max(0, min(got[0], size)), max(0, min(got[1], size))
        return (start, stop) if start < stop else None

    def take(self, size: int, read: Callable[[int, int], bytes]) -> tuple[bytes, bytes | None]:
        """``(head, kept)`` of a ``size``-byte file, ``kept`` None when no range was asked.

        ``read(offset, n)`` gives ``n`` bytes at ``offset``; it is called with increasing
        offsets and never twice for one byte, so a tar stream can serve it.
        """
        head_n = min(self.head, size)
        head = read(0, head_n)
        rng = self._range(head, size)
        if rng is None:
            data, start = b"", size
        else:
            start, stop = rng
            data = head[start:stop] if start < head_n else b""
            at = max(start, head_n)
            if at < stop:
                data += read(at, stop - at)
        if self.trim is not None:
            head, data = self.trim(head, data, start, size)
        return head, (data if rng is not None else None)


@dataclass(frozen=True, slots=True)
class Platform:
    os: str = "linux"
    architecture: str = "amd64"
    variant: str = ""

    def __str__(self) -> str:
        s = f"{self.os}/{self.architecture}"
        return f"{s}/{self.variant}" if self.variant else s


@dataclass(frozen=True, slots=True)
class Descriptor:
    """An OCI content descriptor (also used for docker-archive layers, with their tar digest)."""

    media_type: str
    digest: str
    size: int
    annotations: Mapping[str, str] = field(default_factory=dict)
    platform: Platform | None = None


@dataclass(frozen=True, slots=True)
class HistoryEntry:
    created_by: str = ""
    created: str = ""
    comment: str = ""
    empty_layer: bool = False


@dataclass(frozen=True, slots=True)
class ImageConfig:
    """The parts of the image config JSON that analyses read; ``raw`` keeps all of it."""

    digest: str
    os: str
    architecture: str
    diff_ids: Sequence[str]
    history: Sequence[HistoryEntry]
    env: Sequence[str] = ()
    entrypoint: Sequence[str] = ()
    cmd: Sequence[str] = ()
    working_dir: str = ""
    user: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    raw: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Layer:
    """A layer as stored (``blob``: compressed or not) and as applied (``diff_id``)."""

    index: int
    blob: Descriptor
    diff_id: str

    @property
    def compression(self) -> str:
        """``gzip``, ``zstd`` or ``none``, from the media type."""
        mt = self.blob.media_type
        if mt.endswith("gzip") or mt.endswith(".tar.gzip") or mt.endswith("rootfs.diff.tar.gzip"):
            return "gzip"
        if mt.endswith("zstd"):
            return "zstd"
        return "none"


class ImageSource(Protocol):
    """Where an image's blobs come from: an OCI layout, an archive, a registry, an engine.

    ``open_blob`` returns a stream that verifies the descriptor's digest and size as it is
    read and raises ``DigestMismatchError`` (or ``BadInputError`` for a short read) at EOF.
    """

    def open_blob(self, descriptor: Descriptor) -> BinaryIO: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Image:
    """A resolved single-platform image: its manifest, config and layers, and where to read them."""

    reference: str
    digest: str  # manifest digest (for docker-archive: sha256 of the manifest advisor derives)
    manifest: Mapping[str, Any]
    config: ImageConfig
    layers: Sequence[Layer]
    source: ImageSource

    @property
    def compressed_size(self) -> int:
        return sum(layer.blob.size for layer in self.layers)

    def close(self) -> None:
        """Release what the source holds (open files, sockets, temporary files)."""
        self.source.close()

    def __enter__(self) -> Image:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
