"""One streaming pass over each layer tar: entries, whiteouts and captured content, no extraction.

``walk_layer`` reads a layer blob through ``pump.Pipeline`` (read and verified on one thread,
inflated on another: ISA-L for gzip, zstandard for zstd, detected from the magic bytes because
docker-archive layers are often plain tars whatever their media type says), parses the tar
headers (``tar``) and skips file contents without copying them. Memory stays bounded by the
captures an analysis asks for. ``read_layers`` walks an image's layers on a thread pool,
the largest blobs first so the big layer is never queued behind the small ones, and answers
the layers it has seen before from a ``LayerCache`` when given one.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from advisor.errors import AdvisorError, BadInputError, DigestMismatchError
from advisor.oci.filetree import LayerTree
from advisor.oci.model import Capture, Entry, EntryKind, Image, Layer, Meta
from advisor.oci.pump import Pipeline
from advisor.oci.tar import CORRUPT_HINT, ChunkReader, Header, iter_headers, normalise_path

if TYPE_CHECKING:
    from advisor.oci.layercache import LayerCache

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
        h = hashlib.sha256() if diff_id and pipeline.compressed else None
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


# -- every layer of an image --------------------------------------------------------------------


class _Counting:
    """A read-through stream that reports how many (compressed) bytes have gone by."""

    def __init__(self, raw: BinaryIO, tick: Callable[[int], None]) -> None:
        self._raw = raw
        self._tick = tick

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._tick(len(data))
        return data


_HASH_CHUNK = 4 << 20


def _walk_one(
    image: Image, layer: Layer, capture: CaptureFn | None, tick: Callable[[int], None],
    verify_diff_id: bool = False,
) -> LayerTree:
    # an uncompressed blob is its tar: its verified digest already is the diff_id
    diff_id = layer.diff_id if verify_diff_id and layer.diff_id != layer.blob.digest else None
    with image.source.open_blob(layer.blob) as raw:
        try:
            stream = cast(BinaryIO, _Counting(raw, tick))
            return walk_layer(stream, layer.index, layer.compression, capture, diff_id=diff_id)
        except DigestMismatchError:
            raise
        except BadInputError as e:
            raise BadInputError(f"{e.message} ({layer.blob.digest})", hint=e.hint) from e


def read_layers(
    image: Image,
    capture: CaptureFn | None = None,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    cache: LayerCache | None = None,
) -> list[LayerTree]:
    """Every layer's tree, in layer order: from ``cache`` when it has the layer's diff_id,
    else walked (``workers`` at a time, largest blob first) and stored in ``cache``.

    A hit from a local source (layout, archive) is trusted only after its blob is re-hashed
    (a read at the hash's pace, no inflate, no parse), or when the blob file is unchanged since
    a hash of it matched (its identity recorded in the cache, see ``layercache``): a tampered
    blob on disk is an error whether or not its layer was seen before. A registry's hits are
    trusted by digest.
    """
    trees: dict[int, LayerTree] = {}
    todo: list[Layer] = []
    rehash: list[Layer] = []
    local = getattr(image.source, "local", True)
    for layer in image.layers:
        hit = cache.get(layer) if cache is not None else None
        if hit is not None:
            trees[layer.index] = hit
            if local and not _known_verified(image, layer, cache):
                rehash.append(layer)
        else:
            todo.append(layer)
    total = sum(layer.blob.size for layer in (*todo, *rehash))
    lock = threading.Lock()
    done = [0]

    def tick(n: int) -> None:
        with lock:
            done[0] += n
            current = done[0]
        if progress is not None:
            progress(current, total)

    def walk(layer: Layer) -> LayerTree:
        before = _identity(image, layer) if cache is not None and local else None
        tree = _walk_one(image, layer, capture, tick, verify_diff_id=cache is not None)
        if cache is not None:
            cache.put(layer, tree)  # only now: every byte of it was read and verified
            _note_verified(image, layer, cache, before)
        return tree

    def verify(layer: Layer) -> LayerTree:
        before = _identity(image, layer)
        _hash_blob(image, layer, tick)
        if cache is not None:
            _note_verified(image, layer, cache, before)
        return trees[layer.index]

    jobs = sorted([(layer, walk) for layer in todo] + [(layer, verify) for layer in rehash],
                  key=lambda job: -job[0].blob.size)
    if workers <= 1 or len(jobs) <= 1:
        trees.update((layer.index, run(layer)) for layer, run in jobs)
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="advisor-walk") as pool:
            futures = [(layer.index, pool.submit(run, layer)) for layer, run in jobs]
            try:
                trees.update((index, f.result()) for index, f in futures)
            finally:
                for _, f in futures:
                    f.cancel()
    return [trees[layer.index] for layer in image.layers]


def _identity(image: Image, layer: Layer) -> tuple[tuple[int | str, ...], float] | None:
    """The blob file's identity (see ``layercache``) and the time it was taken, or None."""
    identity = getattr(image.source, "blob_identity", None)
    found = identity(layer.blob) if identity is not None else None
    return (found, time.time()) if found is not None else None


def _known_verified(image: Image, layer: Layer, cache: LayerCache | None) -> bool:
    """Whether this very file (unchanged since) once hashed to the blob's digest."""
    found = _identity(image, layer)
    return cache is not None and found is not None and cache.was_verified(layer.blob.digest, found[0])


def _note_verified(
    image: Image, layer: Layer, cache: LayerCache, before: tuple[tuple[int | str, ...], float] | None
) -> None:
    """Record the blob's identity as hashed, when it was the same before and after the hash
    and had not changed for ``RACY_SECONDS`` when the hash began."""
    from advisor.oci.layercache import RACY_SECONDS

    after = _identity(image, layer)
    if before is None or after is None or before[0] != after[0]:
        return
    identity, began = before
    ctime_ns = identity[4]
    if isinstance(ctime_ns, int) and ctime_ns < (began - RACY_SECONDS) * 1e9:
        cache.note_verified(layer.blob.digest, identity)


def _hash_blob(image: Image, layer: Layer, tick: Callable[[int], None]) -> None:
    """Read a blob to its end through the source's digest check (hashlib releases the GIL)."""
    with image.source.open_blob(layer.blob) as raw:
        while data := raw.read(_HASH_CHUNK):
            tick(len(data))
