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

import contextlib
import os
import posixpath
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, cast

from advisor.errors import AdvisorError, BadInputError, DigestMismatchError
from advisor.oci.filetree import FileTree, LayerTree, merge_layers
from advisor.oci.model import Capture, Entry, EntryKind, Image, Layer

BLOCK = 512
MAX_META_MEMBER = 1 << 20  # long names and PAX headers: GNU tar's and Go's cap
LARGE_CAPTURE = 1 << 20  # captures above this size count against the layer's budget
CAPTURE_BUDGET = 64 << 20  # bytes of large captures one layer may hold in memory
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
    """A readable stream of the tar inside ``stream``; the magic bytes win over ``compression``.

    ``stream`` is never closed by the returned object; reading the result to EOF reads
    ``stream`` to EOF too (gzip and zstd readers consume every member and frame).
    """
    return _open_tar(stream, compression)[0]


def _open_tar(stream: BinaryIO, compression: str) -> tuple[BinaryIO, bool]:
    """The tar stream, and whether it is ``stream`` itself and seekable (so skips can seek)."""
    head, source = _peek(stream, 4)
    actual = detect_compression(head) if head else compression
    if actual == "gzip":
        from isal import igzip

        return cast(BinaryIO, igzip.IGzipFile(fileobj=source, mode="rb")), False
    if actual == "zstd":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(
            source, read_size=_READ, read_across_frames=True, closefd=False
        )
        return cast(BinaryIO, reader), False
    return cast(BinaryIO, source), source is stream


def _peek(stream: BinaryIO, n: int) -> tuple[bytes, Any]:
    if _seekable(stream):
        here = stream.tell()
        head = stream.read(n)
        stream.seek(here)
        return head, stream
    head = b""
    while len(head) < n and (chunk := stream.read(n - len(head))):
        head += chunk
    return head, _Prefixed(head, stream)


def _seekable(stream: Any) -> bool:
    try:
        return bool(stream.seekable())
    except (AttributeError, OSError, ValueError):
        return False


class _ForwardStream:
    """The file-object surface the decompressors need from a forward-only ``read``."""

    def read(self, n: int = -1) -> bytes:
        raise NotImplementedError

    def readinto(self, buf: Any) -> int:
        data = self.read(len(buf))
        buf[: len(data)] = data
        return len(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False


class _Prefixed(_ForwardStream):
    """``prefix`` then the rest of ``stream``: peeking at magic bytes of an unseekable stream."""

    def __init__(self, prefix: bytes, stream: BinaryIO) -> None:
        self._prefix = prefix
        self._stream = stream

    def read(self, n: int = -1) -> bytes:
        if not self._prefix:
            return self._stream.read(n)
        if n < 0:
            out, self._prefix = self._prefix + self._stream.read(), b""
            return out
        out, self._prefix = self._prefix[:n], self._prefix[n:]
        if len(out) < n:
            out += self._stream.read(n - len(out))
        return out


    def close(self) -> None:
        return None

    @property
    def closed(self) -> bool:
        return False


# -- a buffered reader that can skip cheaply --------------------------------------------------


class _Reader:
    """Exact reads and skips over a (decompressed) stream; seeks when the stream allows it."""

    def __init__(self, stream: BinaryIO, what: str, seekable: bool = False) -> None:
        self._stream = stream
        self._what = what
        self._buf = b""
        self._pos = 0
        self._size: int | None = None
        if seekable:
            here = stream.tell()
            self._size = stream.seek(0, os.SEEK_END)
            stream.seek(here)

    def take(self, n: int) -> bytes:
        """Exactly ``n`` bytes, or ``b""`` at a clean EOF before any byte; short -> error."""
        pos = self._pos
        if n <= len(self._buf) - pos:
            self._pos = pos + n
            return self._buf[pos : pos + n]
        parts = [self._buf[pos:]]
        got = len(parts[0])
        self._buf, self._pos = b"", 0
        while got < n:
            chunk = self._stream.read(max(_READ, n - got))
            if not chunk:
                if got == 0:
                    return b""
                raise BadInputError(f"{self._what} is truncated", hint=_CORRUPT_HINT)
            need = n - got
            if len(chunk) > need:
                parts.append(chunk[:need])
                self._buf, self._pos = chunk, need
                got = n
            else:
                parts.append(chunk)
                got += len(chunk)
        return b"".join(parts)

    def take_all(self, n: int) -> bytes:
        data = self.take(n)
        if len(data) != n:
            raise BadInputError(f"{self._what} is truncated", hint=_CORRUPT_HINT)
        return data

    def skip(self, n: int) -> None:
        avail = len(self._buf) - self._pos
        if n <= avail:
            self._pos += n
            return
        n -= avail
        self._buf, self._pos = b"", 0
        if self._size is not None:
            target = self._stream.tell() + n
            if target > self._size:
                raise BadInputError(f"{self._what} is truncated", hint=_CORRUPT_HINT)
            self._stream.seek(target)
            return
        while n > 0:
            chunk = self._stream.read(min(n, _READ))
            if not chunk:
                raise BadInputError(f"{self._what} is truncated", hint=_CORRUPT_HINT)
            n -= len(chunk)

    def drain(self) -> None:
        """Read to EOF, so a verifying source checks the digest of every byte."""
        self._buf, self._pos = b"", 0
        if self._size is not None:
            return
        while self._stream.read(_READ):
            pass


_CORRUPT_HINT = "the layer blob is corrupt or incomplete; fetch or rebuild the image"


# -- tar headers -----------------------------------------------------------------------------


@dataclass(slots=True)
class _Header:
    name: str
    mode: int
    uid: int
    gid: int
    size: int
    mtime: int
    typeflag: bytes
    linkname: str


def _number(field: bytes, what: str) -> int:
    if field and field[0] & 0x80:  # GNU base-256 for values octal cannot hold
        value = int.from_bytes(field[1:], "big")
        return -value if field[0] & 0x40 else value
    text = field.split(b"\0", 1)[0].strip(b" \0")
    if not text:
        return 0
    try:
        return int(text, 8)
    except ValueError as e:
        raise BadInputError(
            f"{what}: bad number {field!r} in a tar header", hint=_CORRUPT_HINT
        ) from e


def _text(field: bytes) -> str:
    return field.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def _parse_header(block: bytes, what: str) -> _Header:
    stored = _number(block[148:156], what)
    unsigned = sum(block) - sum(block[148:156]) + 8 * 32
    if stored != unsigned:
        signed = sum(b - 256 if b > 127 else b for b in block[:148] + b" " * 8 + block[156:])
        if stored != signed:
            raise BadInputError(f"{what}: tar header checksum mismatch", hint=_CORRUPT_HINT)
    name = _text(block[0:100])
    if block[257:263] == b"ustar\0":
        prefix = _text(block[345:500])
        if prefix:
            name = f"{prefix}/{name}"
    return _Header(
        name=name,
        mode=_number(block[100:108], what),
        uid=_number(block[108:116], what),
        gid=_number(block[116:124], what),
        size=_number(block[124:136], what),
        mtime=_number(block[136:148], what),
        typeflag=block[156:157],
        linkname=_text(block[157:257]),
    )


def _check_size(header: _Header, what: str) -> None:
    if header.size < 0:
        raise BadInputError(
            f"{what}: member {header.name!r} has a negative size ({header.size})",
            hint=_CORRUPT_HINT,
        )


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
            raise BadInputError(f"{what}: malformed PAX header", hint=_CORRUPT_HINT) from e
        if length <= 0 or space < 0:
            raise BadInputError(f"{what}: malformed PAX header", hint=_CORRUPT_HINT)
        record = data[space + 1 : pos + length - 1]
        key, _, value = record.partition(b"=")
        records[key.decode("utf-8", "surrogateescape")] = value.decode("utf-8", "surrogateescape")
        pos += length
    return records


def _apply_pax(header: _Header, pax: dict[str, str]) -> None:
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


def normalise_path(name: str) -> str:
    """A layer path without ``/``, ``./`` or ``..`` escapes (``..`` stops at the root)."""
    return posixpath.normpath("/" + name).lstrip("/")


def _iter_headers(reader: _Reader, what: str) -> Iterator[_Header]:
    """Every real member header, with GNU long names and PAX records folded in."""
    long_name: str | None = None
    long_link: str | None = None
    pax: dict[str, str] = {}
    global_pax: dict[str, str] = {}
    while True:
        block = reader.take(BLOCK)
        if not block or block == bytes(BLOCK):
            return
        header = _parse_header(block, what)
        _check_size(header, what)
        padded = header.size + (-header.size % BLOCK)
        t = header.typeflag
        if t in (b"L", b"K", b"x", b"g"):
            if header.size > MAX_META_MEMBER:
                raise BadInputError(
                    f"{what}: a {header.size}-byte tar metadata record (long name or PAX header)",
                    hint="GNU tar and Go cap these at 1 MiB; the layer is hostile or corrupt",
                )
            data = reader.take_all(padded)[: header.size]
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
            _apply_pax(header, {**global_pax, **pax})
            _check_size(header, what)
        if long_name is not None and "path" not in pax:
            header.name = long_name
        if long_link is not None and "linkpath" not in pax:
            header.linkname = long_link
        long_name = long_link = None
        pax = {}
        yield header


# -- the walk ---------------------------------------------------------------------------------


def _kind(typeflag: bytes) -> EntryKind | None:
    if typeflag == b"D":  # GNU dumpdir: a directory listing
        return EntryKind.DIR
    return _KINDS.get(typeflag)


def _record(tree: LayerTree, header: _Header, path: str) -> Entry | None:
    """Put one member into ``tree``: whiteout, opaque marker or entry. Returns the entry."""
    parent, _, base = path.rpartition("/")
    if base.startswith(WHITEOUT_PREFIX):
        if base == OPAQUE_MARKER:
            tree.opaque_dirs.add(parent)
        elif not base.startswith(WHITEOUT_PREFIX + WHITEOUT_PREFIX):  # other AUFS metadata
            target = base[len(WHITEOUT_PREFIX) :]
            tree.whiteouts.add(f"{parent}/{target}" if parent else target)
        return None
    kind = _kind(header.typeflag)
    if kind is None:
        return None
    link = header.linkname
    if kind is EntryKind.HARDLINK:
        link = normalise_path(link)
    size = header.size if kind is EntryKind.FILE else 0
    entry = Entry(
        path, kind, size, header.mode & 0o7777, header.uid, header.gid, link, header.mtime
    )
    tree.entries[path] = entry
    return entry


@dataclass(slots=True)
class _Budget:
    """Bytes of large captures a layer may still keep (small ones are bounded per file)."""

    left: int
    what: str

    def charge(self, entry: Entry, cap: Capture) -> None:
        planned = min(cap.head, entry.size) + min(cap.tail, entry.size)
        if planned <= LARGE_CAPTURE:
            return
        if planned > self.left:
            raise BadInputError(
                f"{self.what}: keeping {entry.path!r} would hold more than "
                f"{CAPTURE_BUDGET >> 20} MiB of file contents for this layer",
                hint="the layer ships huge metadata files; it is hostile or not a normal image",
            )
        self.left -= planned


def _read_content(
    reader: _Reader,
    tree: LayerTree,
    entry: Entry | None,
    size: int,
    capture: CaptureFn | None,
    budget: _Budget,
) -> None:
    padded = size + (-size % BLOCK)
    cap = capture(entry) if capture and entry and entry.kind is EntryKind.FILE else None
    if cap is None or size == 0:
        reader.skip(padded)
        return
    assert entry is not None
    budget.charge(entry, cap)
    head_n = min(cap.head, size)
    head = reader.take_all(head_n)
    tail_start = max(size - cap.tail, 0) if cap.tail else size
    if tail_start < head_n:
        rest = reader.take_all(size - head_n)
        whole = head + rest
        if size <= cap.head:
            head = whole
        tail = whole[tail_start:]
    else:
        reader.skip(tail_start - head_n)
        tail = reader.take_all(size - tail_start)
    reader.skip(padded - size)
    tree.heads[entry.path] = head
    if cap.tail:
        tree.tails[entry.path] = tail


def walk_layer(
    stream: BinaryIO,
    index: int,
    compression: str = "auto",
    capture: CaptureFn | None = None,
    capture_budget: int = CAPTURE_BUDGET,
) -> LayerTree:
    """Read one layer blob in a single pass into a ``LayerTree`` (nothing touches the disk).

    Memory is bounded: file contents are skipped unless ``capture`` asks for them, and the
    captures larger than 1 MiB may hold at most ``capture_budget`` bytes per layer (more is
    refused as hostile). Negative sizes and oversized long-name/PAX records are refused.
    """
    what = f"layer {index}"
    tree = LayerTree(index)
    budget = _Budget(capture_budget, what)
    try:
        tar, seekable = _open_tar(stream, compression)
        reader = _Reader(tar, what, seekable)
        for header in _iter_headers(reader, what):
            path = normalise_path(header.name)
            entry = _record(tree, header, path) if path else None
            _read_content(reader, tree, entry, header.size, capture, budget)
        reader.drain()
    except AdvisorError:
        raise
    except (OSError, EOFError, ValueError, RuntimeError) as e:
        raise BadInputError(f"{what} cannot be decompressed: {e}", hint=_CORRUPT_HINT) from e
    except Exception as e:  # zstandard.ZstdError and isal's error derive from Exception only
        raise BadInputError(f"{what} cannot be decompressed: {e}", hint=_CORRUPT_HINT) from e
    return tree


# -- every layer of an image --------------------------------------------------------------------


class _Counting(_ForwardStream):
    """A read-through stream that reports how many compressed bytes have gone by."""

    def __init__(self, raw: BinaryIO, tick: Callable[[int], None]) -> None:
        self._raw = raw
        self._tick = tick

    def read(self, n: int = -1) -> bytes:
        data = self._raw.read(n)
        if data:
            self._tick(len(data))
        return data


    def close(self) -> None:
        self._raw.close()

    @property
    def closed(self) -> bool:
        return bool(self._raw.closed)


def _walk_one(
    image: Image, layer: Layer, capture: CaptureFn | None, tick: Callable[[int], None]
) -> LayerTree:
    with image.source.open_blob(layer.blob) as raw:
        counted = cast(BinaryIO, _Counting(raw, tick))
        try:
            tree = walk_layer(counted, layer.index, layer.compression, capture)
            while counted.read(_READ):  # the compressed tail: verify every byte
                pass
        except DigestMismatchError:
            raise
        except BadInputError as e:
            raise BadInputError(f"{e.message} ({layer.blob.digest})", hint=e.hint) from e
    return tree


def read_layers(
    image: Image,
    capture: CaptureFn | None = None,
    workers: int = 2,
    progress: Callable[[int, int], None] | None = None,
) -> list[LayerTree]:
    """Walk every layer (``workers`` at a time) and return their trees in layer order."""
    total = sum(layer.blob.size for layer in image.layers)
    lock = threading.Lock()
    done = [0]

    def tick(n: int) -> None:
        with lock:
            done[0] += n
            current = done[0]
        if progress is not None:
            progress(current, total)

    if workers <= 1 or len(image.layers) <= 1:
        return [_walk_one(image, layer, capture, tick) for layer in image.layers]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="advisor-walk") as pool:
        futures = [pool.submit(_walk_one, image, layer, capture, tick) for layer in image.layers]
        return [f.result() for f in futures]


# -- extraction of chosen files -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Extracted:
    """What ``extract_paths`` wrote: in-image paths (sorted) and their total bytes."""

    paths: tuple[str, ...]
    size: int


def _selected(tree: FileTree, prefixes: Iterable[str]) -> list[str]:
    chosen: set[str] = set()
    for prefix in prefixes:
        real = tree.resolve(prefix)
        chosen.update(info.path for info in tree.iter_under(real))
    return sorted(chosen)


def extract_paths(
    image: Image,
    paths_or_prefixes: Iterable[str],
    dest_dir: Path,
    trees: list[LayerTree] | None = None,
) -> Extracted:
    """Write the final (merged, whiteouts applied) version of the chosen files under ``dest_dir``.

    A prefix that is a symlink is followed inside the image first. Paths keep their in-image
    location below ``dest_dir``; nothing is ever written outside it (``..`` is neutralised,
    symlinks are created last and never followed while writing).
    """
    trees = trees if trees is not None else read_layers(image)
    merged = merge_layers(trees).tree
    chosen = _selected(merged, paths_or_prefixes)
    dest_dir.mkdir(parents=True, exist_ok=True)
    root = dest_dir.resolve()
    wanted: dict[int, dict[str, list[str]]] = {}
    links: list[tuple[str, str]] = []
    for path in chosen:
        info = merged.get(path)
        assert info is not None
        if info.kind is EntryKind.DIR:
            _safe_target(root, path).mkdir(parents=True, exist_ok=True)
        elif info.kind is EntryKind.SYMLINK:
            links.append((path, info.link))
        elif info.kind is EntryKind.FILE:
            wanted.setdefault(info.layer, {}).setdefault(path, []).append(path)
        elif info.kind is EntryKind.HARDLINK:
            wanted.setdefault(info.layer, {}).setdefault(info.link, []).append(path)
    size = 0
    for index in sorted(wanted):
        size += _extract_from_layer(image, image.layers[index], wanted[index], root)
    for path, target in links:
        link_path = _safe_target(root, path)
        if link_path.is_dir() and not link_path.is_symlink():
            continue  # a later layer put files "under" the link: keep the files
        link_path.unlink(missing_ok=True)
        os.symlink(target, link_path)
    return Extracted(tuple(chosen), size)


def _safe_target(root: Path, path: str) -> Path:
    """``root/path`` with its parent directories made, refusing any symlinked component."""
    parts = normalise_path(path).split("/")
    current = root
    for part in parts[:-1]:
        current = current / part
        if current.is_symlink():
            raise BadInputError(
                f"refusing to write {path!r} through the symlink {current}",
                hint="the image holds paths that would land outside the extraction directory",
            )
        if not current.is_dir():
            current.mkdir()
    return current / parts[-1]


def _extract_from_layer(
    image: Image, layer: Layer, wanted: dict[str, list[str]], root: Path
) -> int:
    written = 0
    what = f"layer {layer.index}"
    with image.source.open_blob(layer.blob) as raw:
        reader = _Reader(open_decompressed(raw, layer.compression), what)
        for header in _iter_headers(reader, what):
            path = normalise_path(header.name)
            padded = header.size + (-header.size % BLOCK)
            targets = wanted.get(path)
            if not targets or _kind(header.typeflag) is not EntryKind.FILE:
                reader.skip(padded)
                continue
            written += _copy_member(reader, header.size, [_safe_target(root, t) for t in targets])
            reader.skip(padded - header.size)
        reader.drain()
        while raw.read(_READ):
            pass
    return written


def _copy_member(reader: _Reader, size: int, targets: list[Path]) -> int:
    handles = []
    try:
        for target in targets:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o644)
            handles.append(os.fdopen(fd, "wb"))
        left = size
        while left > 0:
            chunk = reader.take_all(min(left, _READ))
            for fh in handles:
                fh.write(chunk)
            left -= len(chunk)
    finally:
        for fh in handles:
            fh.close()
    return size * len(targets)
