"""Read, verify and decompress a blob on threads of their own, in large chunks.

A layer blob passes three stages: reading it (and hashing it, inside the source's verifying
stream), inflating it (ISA-L for gzip, zstandard for zstd) and parsing its tar. hashlib,
ISA-L and zstandard release the GIL on large buffers, so ``Pump`` runs each of the first two
on its own thread behind a small bounded queue: the hash and the inflate proceed on different
cores while the parser (the caller's thread) reads headers. Every chunk is handed on once,
never copied again; the queues bound the memory to a few chunks per stage.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO, cast

CHUNK = 2 << 20
DEPTH = 3
_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_END = object()


def detect_compression(head: bytes) -> str:
    """``gzip``, ``zstd`` or ``none`` from a blob's first bytes."""
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_ZSTD_MAGIC):
        return "zstd"
    return "none"


class Pump:
    """``read(CHUNK)`` called on a thread until it returns ``b""``; the chunks, in order.

    Iterating yields the chunks and re-raises, in the consumer's thread, whatever the reads
    raised. ``close`` stops the thread (it finishes the read in progress) and waits for it.
    """

    def __init__(self, read: Callable[[int], bytes], name: str, size: int = CHUNK) -> None:
        self._read = read
        self._size = size
        self._queue: queue.Queue[Any] = queue.Queue(DEPTH)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _put(self, item: object) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.05)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                data = self._read(self._size)
                if not data:
                    break
                if not self._put(data):
                    return
        except BaseException as e:  # handed to the consumer, raised there
            self._put(e)
            return
        self._put(_END)

    def __iter__(self) -> Iterator[bytes]:
        while True:
            item = self._queue.get()
            if item is _END:
                self._queue.put(_END)  # iterating again ends at once
                return
            if isinstance(item, BaseException):
                self._queue.put(item)
                raise item
            yield item

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


class ChunkStream:
    """A forward-only file object over chunks (what the decompressors read from)."""

    def __init__(self, chunks: Iterator[bytes]) -> None:
        self._chunks = chunks
        self._buf = memoryview(b"")

    def peek(self, n: int) -> bytes:
        while len(self._buf) < n:
            nxt = next(self._chunks, None)
            if nxt is None:
                break
            self._buf = memoryview(bytes(self._buf) + bytes(nxt))
        return bytes(self._buf[:n])

    def read(self, n: int = -1) -> bytes:
        if not self._buf:
            nxt = next(self._chunks, None)
            if nxt is None:
                return b""
            self._buf = memoryview(nxt)
        if n < 0 or n >= len(self._buf):
            out, self._buf = self._buf, memoryview(b"")
        else:
            out, self._buf = self._buf[:n], self._buf[n:]
        return bytes(out)

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def rest(self) -> Iterator[bytes]:
        """The chunks not read yet (the buffered part first)."""
        if self._buf:
            yield bytes(self._buf)
            self._buf = memoryview(b"")
        yield from self._chunks

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def close(self) -> None:
        return None

    @property
    def closed(self) -> bool:
        return False

    def __enter__(self) -> ChunkStream:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def decompressor(raw: ChunkStream, compression: str) -> BinaryIO:
    """A reader of the tar inside ``raw``; its magic bytes win over ``compression``."""
    head = raw.peek(4)
    actual = detect_compression(head) if head else compression
    if actual == "gzip":
        from isal import igzip

        return cast(BinaryIO, igzip.IGzipFile(fileobj=raw, mode="rb"))
    if actual == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(
            cast(BinaryIO, raw), read_size=CHUNK, read_across_frames=True, closefd=False
        )
        return cast(BinaryIO, reader)
    return cast(BinaryIO, raw)


class Pipeline:
    """The tar inside ``stream`` as chunks: read (and verified) on one thread, inflated on
    another when compressed. Iterate ``chunks``; ``close`` stops both threads."""

    def __init__(self, stream: BinaryIO, compression: str, name: str) -> None:
        self._read = Pump(stream.read, f"{name}-read")
        self._inflate: Pump | None = None
        raw = ChunkStream(iter(self._read))
        head = raw.peek(4)
        self.compressed = (detect_compression(head) if head else compression) != "none"
        if not self.compressed:
            self.chunks: Iterator[bytes] = raw.rest()
            return
        tar = decompressor(raw, compression)

        def inflate(n: int) -> bytes:
            data = tar.read(n)
            if not data:
                for _ in raw.rest():  # bytes after the last member: read (and hash) them too
                    pass
            return data

        self._inflate = Pump(inflate, f"{name}-inflate")
        self.chunks = iter(self._inflate)

    def close(self) -> None:
        if self._inflate is not None:
            self._inflate.close()
        self._read.close()


def open_decompressed(stream: BinaryIO, compression: str = "auto") -> BinaryIO:
    """A readable stream of the tar inside ``stream`` (no threads); magic bytes win.

    ``stream`` is never closed by the returned object; reading the result to EOF reads
    ``stream`` to EOF too (gzip and zstd readers consume every member and frame).
    """
    return decompressor(ChunkStream(iter(lambda: stream.read(CHUNK), b"")), compression)
