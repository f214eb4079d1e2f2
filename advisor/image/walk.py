"""One streaming pass over each layer tar: entries, whiteouts and captured content, no extraction.

``walk_layer`` decompresses (isal for gzip, zstandard for zstd; compression is detected from
the magic bytes, because docker-archive layers are often plain tars whatever their media type
says), parses the tar headers itself (ustar, GNU long names, PAX records, base-256 numbers)
and skips file contents (by seeking when the source allows it). Memory stays bounded by the
captures an analysis asks for. ``read_layers`` walks an image's layers on a thread pool (isal
and zstandard release the GIL while they decompress) and ``extract_paths`` copies the merged
final version of chosen files into a directory without letting any path escape it.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any, BinaryIO, cast

from advisor.image.model import Capture, Entry, EntryKind

BLOCK = 512
_READ = 1 << 20
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
WHITEOUT_PREFIX = ".wh."
OPAQUE_MARKER = ".wh..wh..opq"

CaptureFn = Callable[[Entry], "Capture | None"]

_KINDS = {
    b"0": EntryKind.FILE,
    b"\0": EntryKind.FILE,
    b"7": EntryKind.FILE,  # contiguous file: a regular file for every practical purpose
    b"1": EntryKind.HARDLINK,
    b"2": EntryKind.SYMLINK,
    b"3": EntryKind.CHAR,
    b"4": EntryKind.BLOCK,
    b"5": EntryKind.DIR,
    b"6": EntryKind.FIFO,
}


# -- decompression -------------------------------------------------------------------------


def detect_compression(head: bytes) -> str:
    """``gzip``, ``zstd`` or ``none`` from a blob's first bytes."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return "none"


def open_decompressed(stream: BinaryIO, compression: str = "auto") -> BinaryIO:
    """A readable stream of the tar inside ``stream``; the magic bytes win over ``compression``."""
    buffered: Any = (
        stream if hasattr(stream, "peek") else io.BufferedReader(cast(Any, stream), _READ)
    )
    head = buffered.peek(4)[:4]
    actual = detect_compression(head) if head else compression
    if actual == "gzip":
        from isal import igzip

        return cast(BinaryIO, igzip.IGzipFile(fileobj=buffered, mode="rb"))
    if actual == "zstd":
        import zstandard

        return zstandard.ZstdDecompressor().stream_reader(
            buffered, read_size=_READ, read_across_frames=True
        )
    return buffered
