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

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        n = min(len(view), self._size - self._pos)
        if n <= 0:
            return 0
        got = os.preadv(self._fd, [view[:n]], self._offset + self._pos)
        self._pos += got
        return got


def open_verified(
    raw: Readable, descriptor: Descriptor, what: str, on_close: Callable[[], None] | None = None
) -> BinaryIO:
    """Wrap ``raw`` in a verifying, buffered stream (what ``ImageSource.open_blob`` returns)."""
    stream = VerifiedStream(raw, descriptor, what, on_close)
    return io.BufferedReader(stream, buffer_size=1 << 20)
