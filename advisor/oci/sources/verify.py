"""Streams that check a blob's size and digest while it is read.

Every source hands out blobs through ``VerifiedStream``: the hash is updated as bytes pass,
reading more than the descriptor's size fails at once, and reaching EOF with the wrong size or
digest raises, so a corrupt blob can never be consumed silently.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Callable
from typing import BinaryIO, Protocol

from advisor.errors import BadInputError, DigestMismatchError
from advisor.oci.model import Descriptor

_DIGEST = re.compile(r"(sha256|sha512):([0-9a-f]+)\Z")
_HEX_LEN = {"sha256": 64, "sha512": 128}


class Readable(Protocol):
    def read(self, size: int = -1, /) -> bytes | None: ...

    def close(self) -> None: ...


def split_digest(digest: str) -> tuple[str, str]:
    """``sha256:<hex>`` -> (algorithm, hex); ``BadInputError`` for anything else."""
    m = _DIGEST.match(digest)
    if not m or len(m.group(2)) != _HEX_LEN[m.group(1)]:
        raise BadInputError(
            f"invalid or unsupported digest '{digest}'",
            hint="advisor reads sha256 and sha512 digests",
        )
    return m.group(1), m.group(2)


def digest_bytes(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


def verify_bytes(data: bytes, descriptor: Descriptor, what: str) -> bytes:
    """Check in-memory bytes against a descriptor; returns them unchanged."""
    algorithm, _ = split_digest(descriptor.digest)
    if len(data) != descriptor.size:
        raise BadInputError(
            f"{what} is {len(data)} bytes, its descriptor says {descriptor.size}",
            hint="the image is corrupt or was tampered with; fetch or rebuild it",
        )
    actual = digest_bytes(data, algorithm)
    if actual != descriptor.digest:
        raise DigestMismatchError(what, descriptor.digest, actual)
    return data


class VerifiedStream(io.RawIOBase):
    """Read ``descriptor.size`` bytes from ``raw``, hashing them; raise on any mismatch.

    ``on_close`` releases whatever backs ``raw`` (an HTTP response, a file).
    """

    def __init__(
        self,
        raw: Readable,
        descriptor: Descriptor,
        what: str,
        on_close: Callable[[], None] | None = None,
    ) -> None:
        super().__init__()
        algorithm, _ = split_digest(descriptor.digest)
        self._raw = raw
        self._descriptor = descriptor
        self._what = what
        self._hash = hashlib.new(algorithm)
        self._algorithm = algorithm
        self._seen = 0
        self._done = False
        self._on_close = on_close

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        if self._done or len(view) == 0:
            return 0
        want = min(len(view), self._descriptor.size - self._seen + 1)
        n = self._fill(view[:want])
        if not n:
            self._finish()
            return 0
        self._seen += n
        if self._seen > self._descriptor.size:
            raise BadInputError(
                f"{self._what} is longer than the {self._descriptor.size} bytes its descriptor says",
                hint="the image is corrupt or was tampered with; fetch or rebuild it",
            )
        self._hash.update(view[:n])  # large buffers: hashlib releases the GIL
        return n

    def _fill(self, view: memoryview) -> int:
        """Read into ``view`` directly when the raw stream can (no copy), else copy."""
        readinto = getattr(self._raw, "readinto", None)
        if readinto is not None:
            return int(readinto(view) or 0)
        chunk = self._raw.read(len(view))
        if not chunk:
            return 0
        view[: len(chunk)] = chunk
        return len(chunk)

    def _finish(self) -> None:
        self._done = True
        if self._seen != self._descriptor.size:
            raise BadInputError(
                f"{self._what} ended after {self._seen} of {self._descriptor.size} bytes",
                hint="the blob is truncated; fetch or rebuild the image",
            )
        actual = f"{self._algorithm}:{self._hash.hexdigest()}"
        if actual != self._descriptor.digest:
            raise DigestMismatchError(self._what, self._descriptor.digest, actual)

    def close(self) -> None:
        if not self.closed:
            try:
                if self._on_close is not None:
                    self._on_close()
                else:
                    self._raw.close()
            finally:
                super().close()


class FileSection(io.RawIOBase):
    """A window ``[offset, offset+size)`` of an open file, read with ``pread``.

    ``pread`` keeps no shared position, so several sections of one archive can be read at
    the same time, each from its own place.
    """

    def __init__(self, fd: int, offset: int, size: int) -> None:
        super().__init__()
        self._fd = fd
        self._offset = offset
        self._size = size
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    @property
    def extent(self) -> tuple[int, int, int]:
        """(fd, offset, size): where in which open file these bytes are."""
        return self._fd, self._offset, self._size

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._size - self._pos)
        if n <= 0:
            return 0
        got = os.preadv(self._fd, [view[:n]], self._offset + self._pos)
        self._pos += got
        return got


# The hash of a big local blob runs in a child process: a hashing thread gives the GIL back
# between chunks and then waits for it behind whatever Python runs beside it (the tar walk, the
# analysis), which made a 4 MiB-chunk sha256 5x slower beside one busy Python thread here
# (1.86 s alone, 9.78 s beside it, 3 GiB; benchmarks/advise_speed). A child has a GIL of its own.
_CHILD = r"""
import hashlib, os, sys
fd, offset, size, algorithm = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
os.nice(int(sys.argv[5]))
h, buf, done, said = hashlib.new(algorithm), memoryview(bytearray(4 << 20)), 0, 0
while done < size:
    n = os.preadv(fd, [buf[: min(len(buf), size - done)]], offset + done)
    if n <= 0:
        break
    h.update(buf[:n])
    done += n
    if done - said >= 64 << 20:
        print(done, flush=True)
        said = done
print(done, h.hexdigest(), flush=True)
"""
CHILD_MIN_BYTES = 64 << 20  # smaller blobs hash on a thread: a process costs ~20 ms to start


class NoChild(Exception):
    """``hash_extent`` could not start its child: hash on a thread instead."""


class HashStopped(Exception):
    """A blob's hash was told to stop before the blob's end (``hash_extent``, or the thread
    hash of ``layers._hash_blob``): nothing is verified."""


def extent(raw: object) -> tuple[int, int, int] | None:
    """(fd, offset, size) of the bytes a ``FileSection`` or a plain file holds, else None."""
    if isinstance(raw, FileSection):
        return raw.extent
    if isinstance(raw, io.FileIO):
        return raw.fileno(), 0, os.fstat(raw.fileno()).st_size
    return None


def hash_extent(
    where: tuple[int, int, int], descriptor: Descriptor, what: str,
    tick: Callable[[int], None], stopped: Callable[[], bool], nice: int = 0,
) -> None:
    """Hash ``size`` bytes of ``fd`` from ``offset`` in a child process (``sys.executable
    -I -S``, the fd its only inherited file) and check them against ``descriptor`` as
    ``VerifiedStream`` would; ``tick`` gets the bytes done as they pass. ``stopped()`` true:
    the child is killed and ``HashStopped`` raised. ``nice``: the child's niceness increment
    (the longest hash keeps its core, the shorter ones yield to it)."""
    import subprocess
    import sys

    algorithm, _ = split_digest(descriptor.digest)
    fd, offset, size = where
    if size != descriptor.size:
        raise BadInputError(
            f"{what} is {size} bytes, its descriptor says {descriptor.size}",
            hint="the image is corrupt or was tampered with; fetch or rebuild it",
        )
    try:
        proc = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _CHILD, str(fd), str(offset), str(size),
             algorithm, str(nice)],
            stdout=subprocess.PIPE, stdin=subprocess.DEVNULL, pass_fds=(fd,), text=True,
        )
    except OSError as e:  # no interpreter to start (embedded, or out of processes)
        raise NoChild(str(e)) from e
    assert proc.stdout is not None
    last, seen, actual = "", 0, ""
    try:
        for line in proc.stdout:
            if stopped():
                raise HashStopped(what)
            last = line
            done = int(line.split()[0])
            tick(done - seen)
            seen = done
        if proc.wait() != 0 or len(last.split()) != 2:
            raise BadInputError(f"{what}: the hash of its bytes failed (status {proc.returncode})",
                                hint="the blob could not be read; check the file")
        actual = f"{algorithm}:{last.split()[1]}"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    if seen != size:
        raise BadInputError(f"{what} ended after {seen} of {size} bytes",
                            hint="the blob is truncated; fetch or rebuild the image")
    if actual != descriptor.digest:
        raise DigestMismatchError(what, descriptor.digest, actual)


def open_verified(
    raw: Readable, descriptor: Descriptor, what: str, on_close: Callable[[], None] | None = None
) -> BinaryIO:
    """Wrap ``raw`` in a verifying, buffered stream (what ``ImageSource.open_blob`` returns)."""
    stream = VerifiedStream(raw, descriptor, what, on_close)
    return io.BufferedReader(stream, buffer_size=1 << 20)
