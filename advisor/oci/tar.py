"""Tar headers read from a stream of chunks: ustar, GNU long names, PAX records, base-256.

``ChunkReader`` hands out exact byte counts from an iterator of (decompressed) chunks and
skips file contents without copying them (``SeekingReader``: from a seekable file, seeking
over them); ``iter_headers`` yields every real member header
with the long-name and PAX records folded in. A stream may end at an entry boundary or
inside the last entry's padding without end-of-archive blocks (``umoci insert`` writes such
layers, and umoci, skopeo and dive read them); a stream cut inside a header or inside an
entry's data is truncated.
"""

from __future__ import annotations

import contextlib
import posixpath
import struct
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Protocol

from advisor.errors import BadInputError

BLOCK = 512
MAX_META_MEMBER = 1 << 20  # long names and PAX headers: GNU tar's and Go's cap
WINDOW = 256 << 10  # SeekingReader: bytes read at a time where headers are
CORRUPT_HINT = "the layer blob is corrupt or incomplete; fetch or rebuild the image"
_EMPTY = memoryview(b"")
_ZERO_BLOCK = bytes(BLOCK)
# name, mode, uid, gid, size, mtime, chksum, typeflag, linkname, magic (+version, uname,
# gname, devmajor, devminor skipped), prefix, pad
_LAYOUT = struct.Struct("100s8s8s8s12s12s8s1s100s6s2x32x32x8x8x155s12x")


class ChunkReader:
    """Exact reads and copy-free skips over an iterator of byte chunks."""

    __slots__ = ("_buf", "_chunks", "_pos", "_what")

    def __init__(self, chunks: Iterable[bytes | memoryview], what: str) -> None:
        self._chunks = iter(chunks)
        self._what = what
        self._buf = _EMPTY
        self._pos = 0

    def _refill(self) -> bool:
        for chunk in self._chunks:
            if chunk:
                self._buf, self._pos = memoryview(chunk), 0
                return True
        self._buf, self._pos = _EMPTY, 0
        return False

    def truncated(self) -> BadInputError:
        return BadInputError(f"{self._what} is truncated", hint=CORRUPT_HINT)

    def take(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or ``b""`` at a clean end before any byte; short -> error."""
        pos, buf = self._pos, self._buf
        if n <= len(buf) - pos:
            self._pos = pos + n
            return bytes(buf[pos : pos + n])
        parts = [bytes(buf[pos:])]
        got = len(parts[0])
        while got < n:
            if not self._refill():
                if got == 0:
                    return b""
                raise self.truncated()
            part = bytes(self._buf[: n - got])
            self._pos = len(part)
            parts.append(part)
            got += len(part)
        return b"".join(parts)

    def take_all(self, n: int) -> bytes:
        data = self.take(n)
        if len(data) != n:
            raise self.truncated()
        return data

    def skip(self, n: int, end_ok: bool = False) -> None:
        """Pass ``n`` bytes; running out first is an error unless ``end_ok`` (padding)."""
        while n > 0:
            avail = len(self._buf) - self._pos
            if n <= avail:
                self._pos += n
                return
            n -= avail
            if not self._refill():
                if end_ok:
                    return
                raise self.truncated()

    def drain(self) -> None:
        """Consume the rest, so a verifying source behind the chunks checks every byte."""
        self._buf, self._pos = _EMPTY, 0
        for _ in self._chunks:
            pass


class SeekableFile(Protocol):
    def seek(self, offset: int, whence: int = 0, /) -> int: ...

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class SeekingReader(ChunkReader):
    """A ``ChunkReader`` over a seekable file of known size: it reads ``window`` bytes at a
    time where headers are and seeks over the contents it skips, so a 1 GB member costs no
    read. It verifies nothing (whoever hands it the file hashes the blob on its own) and
    ``drain`` reads nothing."""

    __slots__ = ("_at", "_file", "_size", "_window")

    def __init__(self, file: SeekableFile, size: int, what: str, window: int | None = None) -> None:
        super().__init__((), what)
        self._file = file
        self._size = size
        self._window = window or WINDOW
        self._at = 0  # the file offset just past the buffer

    def _refill(self) -> bool:
        n = min(self._window, self._size - self._at)
        if n <= 0:
            self._buf, self._pos = _EMPTY, 0
            return False
        buf = bytearray(n)
        view = memoryview(buf)
        self._file.seek(self._at)
        got = 0
        while got < n:
            k = self._file.readinto(view[got:])
            if not k:
                break  # the file is shorter than it said: what was read, then truncated
            got += k
        self._at += got
        self._buf, self._pos = view[:got], 0
        return got > 0

    def skip(self, n: int, end_ok: bool = False) -> None:
        avail = len(self._buf) - self._pos
        if n <= avail:
            self._pos += n
            return
        n -= avail
        self._buf, self._pos = _EMPTY, 0
        if self._at + n > self._size:
            self._at = self._size
            if end_ok:
                return
            raise self.truncated()
        self._at += n

    def drain(self) -> None:
        self._buf, self._pos = _EMPTY, 0


@dataclass(slots=True)
class Header:
    name: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    typeflag: bytes
    linkname: str

    @property
    def padded(self) -> int:
        return self.size + (-self.size % BLOCK)


def _number(field: bytes, what: str) -> int:
    if field and field[0] & 0x80:  # GNU base-256 for values octal cannot hold
        value = int.from_bytes(field[1:], "big")
        return -value if field[0] & 0x40 else value
    try:
        return int(field.rstrip(b"\0 ") or b"0", 8)  # the common case: NUL or space ended
    except ValueError:
        pass
    text = field.split(b"\0", 1)[0].strip(b" \0")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError as e:
        raise BadInputError(
            f"{what}: bad number {field!r} in a tar header", hint=CORRUPT_HINT
        ) from e


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _checksum_ok(block: bytes, stored: int) -> bool:
    """Whether ``stored`` is the header's checksum (the byte sum with its own field as spaces).

    The byte sum S of a 512-byte block lies in [0, 130560]. zlib's Adler-32 gives S mod 65521
    (its low half is 1 + S mod 65521) and the block read as one integer gives S mod 255
    (256 = 1 mod 255): the two moduli are coprime, so together they fix S mod 16,708,855,
    which is S itself. Both run in C, where ``sum(block)`` walks 512 Python ints.
    """
    wanted = stored + sum(block[148:156]) - 8 * 32  # the byte sum the stored value implies
    if not 0 <= wanted <= BLOCK * 255:
        return False
    return (
        (zlib.adler32(block) & 0xFFFF) == (1 + wanted) % 65521
        and int.from_bytes(block, "big") % 255 == wanted % 255
    )


def _parse_slow(block: bytes, what: str) -> Header:
    """Any header: base-256 numbers, odd terminators, the signed checksum of old tars."""
    stored = _number(block[148:156], what)
    unsigned = sum(block) - sum(block[148:156]) + 8 * 32
    if stored != unsigned:
        signed = sum(b - 256 if b > 127 else b for b in block[:148] + b" " * 8 + block[156:])
        if stored != signed:
            raise BadInputError(f"{what}: tar header checksum mismatch", hint=CORRUPT_HINT)
    name = _text(block[0:100])
    if block[257:263] == b"ustar\0" and block[345]:
        prefix = _text(block[345:500])
        if prefix:
            name = f"{prefix}/{name}"
    size = _number(block[124:136], what)
    if size < 0:
        raise BadInputError(
            f"{what}: member {name!r} has a negative size ({size})", hint=CORRUPT_HINT
        )
    link = block[157:257]
    return Header(
        name=name,
        mode=_number(block[100:108], what),
        uid=_number(block[108:116], what),
        gid=_number(block[116:124], what),
        size=size,
        mtime=_number(block[136:148], what),
        typeflag=block[156:157],
        linkname=_text(link) if link[0] else "",
    )


def parse_header(block: bytes, what: str) -> Header:
    """One 512-byte header; the common shape (octal numbers, an unsigned checksum that
    matches) in few C calls, anything else through ``_parse_slow`` (same results)."""
    (name_f, mode_f, uid_f, gid_f, size_f, mtime_f, chk_f, typeflag, link,
     magic, prefix_f) = _LAYOUT.unpack(block)
    if (mode_f[0] | uid_f[0] | gid_f[0] | size_f[0] | mtime_f[0] | chk_f[0]) & 0x80:
        return _parse_slow(block, what)  # GNU base-256
    try:
        stored = int(chk_f.rstrip(b"\0 ") or b"0", 8)
        size = int(size_f.rstrip(b"\0 ") or b"0", 8)
        mode = int(mode_f.rstrip(b"\0 ") or b"0", 8)
        uid = int(uid_f.rstrip(b"\0 ") or b"0", 8)
        gid = int(gid_f.rstrip(b"\0 ") or b"0", 8)
        mtime = int(mtime_f.rstrip(b"\0 ") or b"0", 8)
    except ValueError:
        return _parse_slow(block, what)
    if size < 0 or not _checksum_ok(block, stored):
        return _parse_slow(block, what)  # raises the error it always raised
    name = _text(name_f)
    if magic == b"ustar\0" and prefix_f[0]:
        prefix = _text(prefix_f)
        if prefix:
            name = f"{prefix}/{name}"
    return Header(name, mode, uid, gid, size, mtime, typeflag, _text(link) if link[0] else "")


def _pax_records(data: bytes, what: str) -> dict[str, str]:
    records: dict[str, str] = {}
    pos = 0
    while pos < len(data):
        if data[pos] == 0:
            break
        space = data.find(b" ", pos)
        try:
            length = int(data[pos:space])
        except ValueError as e:
            raise BadInputError(f"{what}: malformed PAX header", hint=CORRUPT_HINT) from e
        if length <= 0 or space < 0:
            raise BadInputError(f"{what}: malformed PAX header", hint=CORRUPT_HINT)
        record = data[space + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _apply_pax(header: Header, pax: dict[str, str], what: str) -> None:
    if "path" in pax:
        header.name = pax["path"]
    if "linkpath" in pax:
        header.linkname = pax["linkpath"]
    for key in ("size", "uid", "gid"):
        if key in pax:
            with contextlib.suppress(ValueError):
                setattr(header, key, int(pax[key]))
    if "mtime" in pax:
        with contextlib.suppress(ValueError):
            header.mtime = int(float(pax["mtime"]))
    if header.size < 0:
        raise BadInputError(
            f"{what}: member {header.name!r} has a negative size ({header.size})",
            hint=CORRUPT_HINT,
        )


def normalise_path(name: str) -> str:
    """A layer path without ``/``, ``./`` or ``..`` escapes (``..`` stops at the root)."""
    if "//" not in name and "/." not in name and not name.startswith("."):
        return name.strip("/")  # nothing to resolve: the common case, kept cheap
    return posixpath.normpath("/" + name).lstrip("/")


_META = (b"L", b"K", b"x", b"g")


def iter_headers(reader: ChunkReader, what: str) -> Iterator[Header]:
    """Every real member header, with GNU long names and PAX records folded in."""
    long_name: str | None = None
    long_link: str | None = None
    pax: dict[str, str] = {}
    global_pax: dict[str, str] = {}
    while True:
        block = reader.take(BLOCK)
        if not block or block == _ZERO_BLOCK:
            return
        header = parse_header(block, what)
        t = header.typeflag
        if t in _META:
            if header.size > MAX_META_MEMBER:
                raise BadInputError(
                    f"{what}: a {header.size}-byte tar metadata record (long name or PAX header)",
                    hint="GNU tar and Go cap these at 1 MiB; the layer is hostile or corrupt",
                )
            data = reader.take_all(header.size)
            reader.skip(header.padded - header.size)
            if t == b"L":
                long_name = _text(data)
            elif t == b"K":
                long_link = _text(data)
            elif t == b"x":
                pax = _pax_records(data, what)
            else:
                global_pax.update(_pax_records(data, what))
            continue
        if global_pax or pax:
            _apply_pax(header, {**global_pax, **pax}, what)
        if long_name is not None and "path" not in pax:
            header.name = long_name
        if long_link is not None and "linkpath" not in pax:
            header.linkname = long_link
        long_name = long_link = None
        pax = {}
        yield header
