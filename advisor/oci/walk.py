"""One streaming pass over each layer tar: entries, whiteouts and captured content, no extraction.

``walk_layer`` reads a layer blob through ``pump.Pipeline`` (read and verified on one thread,
inflated on another: ISA-L for gzip, zstandard for zstd, detected from the magic bytes because
docker-archive layers are often plain tars whatever their media type says), parses the tar
headers (``tar``) and skips file contents without copying them. Memory stays bounded by the
captures an analysis asks for. ``seek_layer`` walks a plain tar in a seekable file (a
docker-archive's or a layout's uncompressed layer) by reading where headers are and seeking
over the rest, verifying nothing. Every layer of an image: ``advisor.oci.layers``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO

from advisor.errors import AdvisorError, BadInputError, DigestMismatchError
from advisor.oci.filetree import LayerTree
from advisor.oci.model import Capture, Entry, EntryKind, Meta
from advisor.oci.pump import Pipeline
from advisor.oci.tar import (
    CORRUPT_HINT,
    ChunkReader,
    Header,
    SeekableFile,
    SeekingReader,
    iter_headers,
    normalise_path,
)

if TYPE_CHECKING:
    pass

LARGE_CAPTURE = 1 << 20  # captures above this size count against the layer's budget
CAPTURE_BUDGET = 64 << 20  # bytes of large captures one layer may hold in memory
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
    b"D": EntryKind.DIR,  # GNU dumpdir: a directory listing
}
_FILE = EntryKind.FILE


def _record(tree: LayerTree, header: Header, path: str, same: dict[Meta, Meta]) -> Entry | None:
    """Put one member into ``tree``: whiteout, opaque marker or entry. Returns the entry.

    Kind, mode, owner and mtime repeat across a layer's files: ``same`` keeps one ``meta``
    tuple of each combination (links, which differ from file to file, are not kept there).
    """
    parent, _, base = path.rpartition("/")
    if base.startswith(WHITEOUT_PREFIX):
        if base == OPAQUE_MARKER:
            tree.opaque_dirs.add(parent)
        elif not base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):  # other AUFS metadata
            target = base[len(WHITEOUT_PREFIX) :]
            tree.whiteouts.add(f"{parent}/{target}" if parent else target)
        return None
    kind = _KINDS.get(header.typeflag)
    if kind is None:
        return None
    link = header.linkname
    if kind is EntryKind.HARDLINK:
        link = normalise_path(link)
    meta = (kind, header.mode & 0o7777, header.uid, header.gid, link, header.mtime, tree.index)
    if not link:
        meta = same.setdefault(meta, meta)
    entry = Entry.of(path, header.size if kind is _FILE else 0, meta)
    tree.entries[path] = entry
    return entry


@dataclass(slots=True)
class _Budget:
    """Bytes of large captures a layer may still keep (small ones are bounded per file)."""

    left: int
    what: str

    def charge(self, entry: Entry, taken: int, n: int) -> None:
        """Count ``n`` more bytes of ``entry``'s capture, ``taken`` of it already read: a
        capture counts whole (head and range together) once it passes ``LARGE_CAPTURE``."""
        if taken + n <= LARGE_CAPTURE:
            return
        planned = taken + n if taken <= LARGE_CAPTURE else n
        if planned > self.left:
            raise BadInputError(
                f"{self.what}: keeping {entry.path!r} would hold more than "
                f"{CAPTURE_BUDGET >> 20} MiB of file contents for this layer",
                hint="the layer ships huge metadata files; it is hostile or not a normal image",
            )
        self.left -= planned


def _capture(reader: ChunkReader, tree: LayerTree, entry: Entry, cap: Capture, budget: _Budget) -> None:
    pos = taken = 0

    def read(offset: int, n: int) -> bytes:
        nonlocal pos, taken
        budget.charge(entry, taken, n)
        taken += n
        reader.skip(offset - pos)
        pos = offset + n
        return reader.take_all(n)

    head, kept = cap.take(entry.size, read)
    reader.skip(entry.size - pos)
    tree.heads[entry.path] = head
    if kept:
        tree.tails[entry.path] = kept


def _walk_chunks(
    chunks: ChunkReader, tree: LayerTree, capture: CaptureFn | None, budget: _Budget
) -> None:
    what = f"layer {tree.index}"
    same: dict[Meta, Meta] = {}
    for header in iter_headers(chunks, what):
        path = normalise_path(header.name)
        entry = _record(tree, header, path, same) if path else None
        size = header.size
        cap = capture(entry) if capture and entry and entry.kind is _FILE and size else None
        if cap is None:
            chunks.skip(size)
        else:
            assert entry is not None
            _capture(chunks, tree, entry, cap, budget)
        chunks.skip(header.padded - size, end_ok=True)  # umoci leaves the last one unpadded
    chunks.drain()


def _hashed(chunks: Iterator[bytes], h: Any) -> Iterator[bytes]:
    for chunk in chunks:
        h.update(chunk)  # large chunks: hashlib releases the GIL
        yield chunk


def walk_layer(
    stream: BinaryIO,
    index: int,
    compression: str = "auto",
    capture: CaptureFn | None = None,
    capture_budget: int = CAPTURE_BUDGET,
    diff_id: str | None = None,
) -> LayerTree:
    """Read one layer blob in a single pass into a ``LayerTree`` (nothing touches the disk).

    Memory is bounded: file contents are skipped unless ``capture`` asks for them, and the
    captures larger than 1 MiB may hold at most ``capture_budget`` bytes per layer (more is
    refused as hostile). Negative sizes and oversized long-name/PAX records are refused.
    The stream is read to its end, so a verifying source checks every byte; with ``diff_id``
    the tar inside a compressed blob is hashed too and must match it.
    """
    what = f"layer {index}"
    tree = LayerTree(index)
    pipeline: Pipeline | None = None
    try:
        pipeline = Pipeline(stream, compression, f"advisor-{what}")
        # an uncompressed blob is its tar: when its diff_id is not its digest (``_walk_one``
        # passes it only then), the hash shows the mismatch, and the layer is never cached
        h = hashlib.sha256() if diff_id else None
        chunks = _hashed(pipeline.chunks, h) if h is not None else pipeline.chunks
        _walk_chunks(ChunkReader(chunks, what), tree, capture, _Budget(capture_budget, what))
        if h is not None and f"sha256:{h.hexdigest()}" != diff_id:
            raise DigestMismatchError(f"the tar of {what} (its diff_id)", str(diff_id), f"sha256:{h.hexdigest()}")
    except AdvisorError:
        raise
    except (OSError, EOFError, ValueError, RuntimeError) as e:
        raise BadInputError(f"{what} cannot be decompressed: {e}", hint=CORRUPT_HINT) from e
    except Exception as e:  # zstandard.ZstdError and isal's error derive from Exception only
        raise BadInputError(f"{what} cannot be decompressed: {e}", hint=CORRUPT_HINT) from e
    finally:
        if pipeline is not None:
            pipeline.close()
    return tree


def seek_layer(
    file: SeekableFile, size: int, index: int, capture: CaptureFn | None = None,
    capture_budget: int = CAPTURE_BUDGET,
) -> LayerTree:
    """``walk_layer`` for an uncompressed tar in a seekable file of ``size`` bytes: the same
    tree, with headers and captures read and every other content seeked over. It verifies
    nothing: the caller hashes the blob beside it (``start_layers``)."""
    what = f"layer {index}"
    tree = LayerTree(index)
    try:
        _walk_chunks(SeekingReader(file, size, what), tree, capture, _Budget(capture_budget, what))
    except AdvisorError:
        raise
    except (OSError, ValueError) as e:
        raise BadInputError(f"{what} cannot be read: {e}", hint=CORRUPT_HINT) from e
    return tree
