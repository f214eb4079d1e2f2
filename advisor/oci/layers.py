"""Every layer of an image, read once: ``start_layers`` / ``read_layers``.

The layers are walked on a thread pool, the largest blobs first so the big layer is never
queued behind the small ones; an uncompressed blob of a local source is walked by seeking
(``walk.seek_layer``) while its hash runs beside it (``LayerRead.verify`` waits for it: the
caller analyses the trees meanwhile), any other blob streamed through its digest check
(``walk.walk_layer``). Layers seen before come from a ``LayerCache`` when given one.
"""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, BinaryIO, cast

from advisor.errors import BadInputError, DigestMismatchError
from advisor.oci.filetree import LayerTree
from advisor.oci.model import Image, Layer
from advisor.oci.pump import detect_compression
from advisor.oci.sources.verify import CHILD_MIN_BYTES, HashStopped, NoChild, extent, hash_extent
from advisor.oci.walk import CaptureFn, seek_layer, walk_layer

if TYPE_CHECKING:
    from advisor.oci.layercache import LayerCache


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
YIELD_NICE = 10  # the niceness of every hashing child but the largest blob's


def _walk_one(
    image: Image, layer: Layer, capture: CaptureFn | None, tick: Callable[[int], None],
    verify_diff_id: bool = False,
) -> LayerTree:
    # the diff_id is checked only where it is not the blob's digest: a compressed blob's tar
    # is hashed against it, an uncompressed blob (its own tar) then shows the mismatch
    diff_id = layer.diff_id if verify_diff_id and layer.diff_id != layer.blob.digest else None
    with image.source.open_blob(layer.blob) as raw:
        try:
            stream = cast(BinaryIO, _Counting(raw, tick))
            return walk_layer(stream, layer.index, layer.compression, capture, diff_id=diff_id)
        except DigestMismatchError:
            raise
        except BadInputError as e:
            raise _naming(layer, e) from e


def _naming(layer: Layer, e: BadInputError) -> BadInputError:
    """``e`` with the blob's digest at the end of its message."""
    return BadInputError(f"{e.message} ({layer.blob.digest})", hint=e.hint)


@dataclass(slots=True)
class _Hashing:
    """A blob being hashed beside its layer's seeking walk, or re-hashed for a cache hit."""

    layer: Layer
    future: Future[None]
    before: tuple[tuple[int | str, ...], float] | None
    tree: LayerTree | None  # walked while hashing: stored in the cache once the hash matched
    packed: bytes | None = None  # the tree as the cache stores it, made while the hash runs


class LayerRead:
    """Every layer's tree, some of whose blobs may still be hashing (``start_layers``).

    ``trees`` may be analysed at once, but nothing derived from them may leave before
    ``verify`` returned: it waits for every hash, raises the first mismatch (layer order) and
    only then stores the layers walked while hashing in the cache. Leaving the ``with`` block
    without ``verify`` stops the hashes and waits for them (the image's files may close).
    """

    def __init__(self, trees: list[LayerTree], pending: list[_Hashing], cache: LayerCache | None,
                 image: Image, stop: threading.Event, pool: ThreadPoolExecutor) -> None:
        self.trees = trees
        self._pending = pending
        self._cache = cache
        self._image = image
        self._stop = stop
        self._pool = pool
        self._verified = False

    def verify(self) -> list[LayerTree]:
        if not self._verified:
            try:
                for job in sorted(self._pending, key=lambda j: j.layer.index):
                    job.future.result()
            except BaseException:
                self.close()
                raise
            for job in self._pending:
                if self._cache is not None:
                    # the walk read the file apart from the hash: a file changed meanwhile
                    # may have shown it other bytes, so only an unchanged one is stored
                    if job.tree is not None and _unchanged(self._image, job.layer, job.before):
                        self._cache.put(job.layer, job.tree, job.packed)
                    _note_verified(self._image, job.layer, self._cache, job.before)
            self._pool.shutdown()
            self._verified = True
        return self.trees

    def close(self) -> None:
        """Stop the hashes still running and wait for them; the trees are unverified."""
        self._stop.set()
        self._pool.shutdown(cancel_futures=True)

    def __enter__(self) -> LayerRead:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._verified:
            self.close()


def read_layers(
    image: Image,
    capture: CaptureFn | None = None,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    cache: LayerCache | None = None,
) -> list[LayerTree]:
    """Every layer's tree, in layer order, every blob verified (``start_layers``, waited for)."""
    with start_layers(image, capture, workers, progress, cache) as read:
        return read.verify()


def start_layers(
    image: Image,
    capture: CaptureFn | None = None,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
    cache: LayerCache | None = None,
) -> LayerRead:
    """Every layer's tree, in layer order: from ``cache`` when it has the layer's diff_id,
    else walked (``workers`` at a time, largest blob first) and stored in ``cache``.

    An uncompressed blob of a local source (a docker-archive's layers, a layout's tar layers)
    is walked by seeking over the contents it skips (``seek_layer``) while another thread
    hashes the blob (its digest is its diff_id): the walk ends long before the hash, and the
    caller can analyse the trees while the hash runs, calling ``LayerRead.verify`` before
    anything leaves. Any other blob is read once, verified as it streams (``walk_layer``).

    A hit from a local source (layout, archive) is trusted only after its blob is re-hashed
    (a read at the hash's pace, no inflate, no parse; beside the caller's analysis too), or
    when the blob file is unchanged since a hash of it matched (its identity recorded in the
    cache, see ``layercache``): a tampered blob on disk is an error whether or not its layer
    was seen before. A registry's hits are trusted by digest.
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

    largest = max((layer.blob.size for layer in (*todo, *rehash)), default=0)
    stop = threading.Event()
    hasher = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="advisor-hash")
    pending: list[_Hashing] = []
    read = LayerRead([], pending, cache, image, stop, hasher)

    def hashing(layer: Layer, tree: LayerTree | None) -> _Hashing:
        before = _identity(image, layer) if cache is not None and local else None
        # the longest hash sets the wall time: it keeps a core, the others yield to it
        nice = 0 if layer.blob.size >= largest else YIELD_NICE
        job = _Hashing(layer, hasher.submit(_hash_blob, image, layer, tick, stop, nice), before, tree)
        with lock:
            pending.append(job)
        return job

    def walk(layer: Layer) -> LayerTree:
        sought = _seek_one(image, layer, capture, lambda: hashing(layer, None),
                           strict=cache is not None)
        if sought is not None:
            job, tree = sought
            if cache is not None:
                job.packed = cache.pack(tree)  # beside the hash, so that verify only writes it
            job.tree = tree
            return tree
        before = _identity(image, layer) if cache is not None and local else None
        tree = _walk_one(image, layer, capture, tick, verify_diff_id=cache is not None)
        if cache is not None:
            cache.put(layer, tree)  # only now: every byte of it was read and verified
            _note_verified(image, layer, cache, before)
        return tree

    try:
        for layer in sorted(rehash, key=lambda layer: -layer.blob.size):
            hashing(layer, None)
        jobs = sorted(todo, key=lambda layer: -layer.blob.size)
        if workers <= 1 or len(jobs) <= 1:
            trees.update((layer.index, walk(layer)) for layer in jobs)
        else:
            with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="advisor-walk") as pool:
                futures = [(layer.index, pool.submit(walk, layer)) for layer in jobs]
                try:
                    trees.update((index, f.result()) for index, f in futures)
                finally:
                    for _, f in futures:
                        f.cancel()
    except BaseException:
        read.close()
        raise
    read.trees = [trees[layer.index] for layer in image.layers]
    return read


def _seek_one(
    image: Image, layer: Layer, capture: CaptureFn | None, hashing: Callable[[], _Hashing],
    strict: bool = False,
) -> tuple[_Hashing, LayerTree] | None:
    """Walk an uncompressed local blob by seeking, ``hashing()`` started beside it; None when
    the blob is not one (compressed, remote, derived), or when ``strict`` (the walk is to be
    cached by diff_id) and its diff_id is not its digest: the caller streams it instead."""
    if strict and layer.diff_id != layer.blob.digest:
        return None
    opener = getattr(image.source, "open_unverified", None)
    raw = opener(layer.blob) if opener is not None else None
    if raw is None:
        return None
    with raw:
        if detect_compression(_peek(raw, 4)) != "none":
            return None
        job = hashing()
        try:
            return job, seek_layer(raw, layer.blob.size, layer.index, capture)
        except BadInputError as e:
            # the hash's verdict first: a tampered blob is a digest mismatch before a bad tar
            with contextlib.suppress(HashStopped):
                job.future.result()
            raise _naming(layer, e) from e


def _peek(raw: Any, n: int) -> bytes:
    raw.seek(0)
    head = raw.read(n) or b""
    raw.seek(0)
    return bytes(head)


def _identity(image: Image, layer: Layer) -> tuple[tuple[int | str, ...], float] | None:
    """The blob file's identity (see ``layercache``) and the time it was taken, or None."""
    identity = getattr(image.source, "blob_identity", None)
    found = identity(layer.blob) if identity is not None else None
    return (found, time.time()) if found is not None else None


def _unchanged(
    image: Image, layer: Layer, before: tuple[tuple[int | str, ...], float] | None
) -> bool:
    """Whether the blob file is the one it was when ``before`` was taken (no identity: a
    spool only advisor holds, which nobody else can write)."""
    after = _identity(image, layer)
    return before is None or (after is not None and after[0] == before[0])


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

    if before is None or not _unchanged(image, layer, before):
        return
    identity, began = before
    ctime_ns = identity[4]
    if isinstance(ctime_ns, int) and ctime_ns < (began - RACY_SECONDS) * 1e9:
        cache.note_verified(layer.blob.digest, identity)


def _hash_blob(
    image: Image, layer: Layer, tick: Callable[[int], None], stop: threading.Event | None = None,
    nice: int = 0,
) -> None:
    """Read a blob to its end through the source's digest check; ``stop`` set: give up
    (``HashStopped``), verifying nothing. A big blob in a local file is hashed by a child process
    (``verify.hash_extent``: no GIL shared with the walk and the analysis beside it), any
    other through ``open_blob`` on this thread (hashlib releases the GIL) into one buffer."""
    stopped = stop.is_set if stop is not None else (lambda: False)
    opener = getattr(image.source, "open_unverified", None)
    raw = opener(layer.blob) if opener is not None and layer.blob.size >= CHILD_MIN_BYTES else None
    if raw is not None:
        with raw:
            where = extent(raw)
            if where is not None:
                try:
                    hash_extent(where, layer.blob, f"blob {layer.blob.digest}", tick, stopped, nice)
                    return
                except NoChild:
                    pass  # hashed below, on this thread
    buf = memoryview(bytearray(_HASH_CHUNK))
    with image.source.open_blob(layer.blob) as f:
        while n := cast(io.BufferedReader, f).readinto(buf):
            tick(n)
            if stopped():
                raise HashStopped(layer.blob.digest)
