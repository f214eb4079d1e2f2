"""One layer rewritten without some of its paths, every other tar member copied as it was.

The filter copies each kept member's raw blocks (its PAX / GNU long-name records, header
and data) byte for byte, so modes, owners, mtimes, links, xattrs (``SCHILY.xattr.*``
records) and devices stay exactly as the original layer had them; only the dropped members
and the end-of-archive padding differ. The result is compressed by advisor's deterministic
layer writer (``tarball.build_layer_from``): the same layer and drop set give the same
digest. A layer with nothing to drop is copied blob for blob (its digest unchanged, so a
registry still shares it with other images).
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from advisor.errors import AdvisorError, BadInputError
from advisor.oci.model import Image, Layer
from advisor.oci.pump import Pipeline, open_decompressed
from advisor.oci.tar import (
    BLOCK,
    CORRUPT_HINT,
    ChunkReader,
    _pax_records,
    normalise_path,
    parse_header,
)
from advisor.oci.tarball import BuiltLayer, Compression, build_layer_from, copy_stream

_META = (b"L", b"K", b"x", b"g")
_RECORD = 20 * BLOCK
_CHUNK = 1 << 20


@dataclass(frozen=True, slots=True)
class Rewritten:
    """A layer as the fix writes it, and what it lost: path -> bytes, per owner of the drop."""

    layer: BuiltLayer
    dropped: Mapping[str, int] = field(default_factory=dict)  # path -> content bytes dropped

    @property
    def dropped_bytes(self) -> int:
        return sum(self.dropped.values())


class _Out:
    """The sink ``build_layer_from`` hands over, with a running count for the trailer."""

    def __init__(self, sink: object) -> None:
        self._write = sink.write  # type: ignore[attr-defined]
        self.total = 0

    def write(self, data: bytes) -> None:
        if data:
            self._write(data)
            self.total += len(data)


def _copy_data(reader: ChunkReader, out: _Out, n: int) -> None:
    while n > 0:
        chunk = reader.take_all(min(n, _CHUNK))
        out.write(chunk)
        n -= len(chunk)


def _member_name(header_name: str, long_name: str | None, pax: Mapping[str, str]) -> str:
    if "path" in pax:
        return pax["path"]
    return long_name if long_name is not None else header_name


def filter_tar(reader: ChunkReader, out: _Out, drop: Mapping[str, object], what: str) -> dict[str, int]:
    """Copy the tar ``reader`` yields to ``out`` without the members named in ``drop``."""
    dropped: dict[str, int] = {}
    pending: list[bytes] = []  # raw blocks of the meta records before the next member
    long_name: str | None = None
    pax: dict[str, str] = {}
    global_pax: dict[str, str] = {}
    while True:
        block = reader.take(BLOCK)
        if not block or block == bytes(BLOCK):
            break
        header = parse_header(block, what)
        if header.typeflag in _META:
            data = reader.take_all(header.size)
            pad = reader.take_all(header.padded - header.size) if header.padded > header.size else b""
            if header.typeflag == b"g":
                global_pax.update(_pax_records(data, what))
                out.write(block + data + pad)  # a global record applies to all: always kept
                continue
            pending.append(block + data + pad)
            if header.typeflag == b"L":
                long_name = data.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
            elif header.typeflag == b"x":
                pax = _pax_records(data, what)
            continue
        records = {**global_pax, **pax}
        name = normalise_path(_member_name(header.name, long_name, records))
        size = int(records["size"]) if "size" in records and records["size"].isdigit() else header.size
        padded = size + (-size % BLOCK)
        if name in drop:
            dropped[name] = size if header.typeflag in (b"0", b"\0", b"7") else 0
            reader.skip(padded, end_ok=True)
        else:
            for raw in pending:
                out.write(raw)
            out.write(block)
            _copy_data(reader, out, size)
            gap = padded - size
            if gap:
                got = reader.take(gap)
                out.write(got + bytes(gap - len(got)))  # a stream may end inside the padding
        pending, long_name, pax = [], None, {}
    reader.drain()
    if pending:
        raise BadInputError(f"{what} ends inside a member's metadata records", hint=CORRUPT_HINT)
    end = 2 * BLOCK
    end += -(out.total + end) % _RECORD
    out.write(bytes(end))
    return dropped


def rewrite_layer(
    image: Image, layer: Layer, drop: Mapping[str, object], work: Path, compression: Compression
) -> Rewritten:
    """``layer`` without the paths in ``drop``, compressed into ``work`` (its blob directory)."""
    what = f"layer {layer.index}"
    dropped: dict[str, int] = {}

    def write(sink: object) -> None:
        with image.source.open_blob(layer.blob) as raw:
            pipeline = Pipeline(raw, layer.compression, f"advisor-fix-{layer.index}")
            try:
                dropped.update(filter_tar(ChunkReader(pipeline.chunks, what), _Out(sink), drop, what))
            finally:
                pipeline.close()

    try:
        built = build_layer_from(write, work, compression)
    except AdvisorError:
        raise
    except (OSError, EOFError, ValueError) as e:
        raise BadInputError(f"{what} cannot be read: {e}", hint=CORRUPT_HINT) from e
    return Rewritten(built, dropped)


def keep_layer(image: Image, layer: Layer, work: Path, uncompressed: bool) -> Rewritten:
    """``layer`` unchanged: its blob copied (verified by the source) into ``work``.

    For a docker-archive destination the tar itself is kept (docker load reads plain tars).
    """
    work.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=".keep-", dir=work)
    tmp = Path(tmp_name)
    try:
        with image.source.open_blob(layer.blob) as raw, os.fdopen(fd, "wb") as fh:
            if uncompressed and layer.compression != "none":
                digest, size = copy_stream(open_decompressed(raw, layer.compression), fh)
                while raw.read(_CHUNK):  # to EOF, so the source checks the blob's digest too
                    pass
                compression = "none"
            else:
                digest, size = copy_stream(raw, fh)
                compression = layer.compression
        final = work / digest.split(":", 1)[1]
        os.replace(tmp, final)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return Rewritten(BuiltLayer(final, digest, size, layer.diff_id, size, compression))
