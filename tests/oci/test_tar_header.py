"""The fast header parse against the plain one, on real headers and on damaged ones."""

from __future__ import annotations

import io
import tarfile

from hypothesis import given, settings
from hypothesis import strategies as st

from advisor.errors import BadInputError
from advisor.oci.tar import _parse_slow, parse_header
from tests.security.craft import header


def _outcome(parse, block: bytes) -> object:
    try:
        return parse(block, "layer 0")
    except BadInputError as e:
        return ("refused", e.message, e.hint)


def _tarfile_headers() -> list[bytes]:
    """Headers as Python's tarfile writes them, in every format it knows."""
    out = []
    for fmt in (tarfile.USTAR_FORMAT, tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        for name, size, uid, mtime in [("a", 0, 0, 0), ("usr/lib/x.so", 12345, 1000, 1700000000),
                                       ("d/" * 60 + "f", 7, 65534, 2**33 - 1)]:
            info = tarfile.TarInfo(name)
            info.size, info.uid, info.mtime, info.mode = size, uid, mtime, 0o755
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w", format=fmt) as t:
                t.addfile(info, io.BytesIO(bytes(size)))
            data = buf.getvalue()
            out.extend(data[i : i + 512] for i in range(0, len(data), 512) if data[i + 257 : i + 262] == b"ustar")
    return out


HEADERS = [header("d000/f0000001"), header("x", size=8**11 - 1), *_tarfile_headers()]


def test_real_headers_parse_alike() -> None:
    for block in HEADERS:
        fast = _outcome(parse_header, block)
        assert fast == _outcome(_parse_slow, block)
        assert not isinstance(fast, tuple), fast


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(HEADERS), st.lists(st.tuples(st.integers(0, 511), st.integers(0, 255)), max_size=4),
       st.booleans())
def test_damaged_headers_parse_or_fail_alike(block: bytes, flips: list[tuple[int, int]], fix: bool) -> None:
    """Bytes overwritten anywhere; with ``fix`` the checksum is made to match again, so odd
    number fields (base-256, spaces, junk) reach the number parsers."""
    damaged = bytearray(block)
    for pos, value in flips:
        damaged[pos] = value
    if fix and not any(148 <= pos < 156 for pos, _ in flips):
        damaged[148:156] = b" " * 8
        damaged[148:156] = f"{sum(damaged):06o}".encode() + b"\0 "
    assert _outcome(parse_header, bytes(damaged)) == _outcome(_parse_slow, bytes(damaged))


@settings(max_examples=500, deadline=None)
@given(st.binary(min_size=512, max_size=512))
def test_random_blocks_parse_or_fail_alike(block: bytes) -> None:
    assert _outcome(parse_header, block) == _outcome(_parse_slow, block)


def test_a_checksum_off_by_65521_or_255_is_refused() -> None:
    """The byte sum is fixed by its residues mod 65521 and 255 together, not by either one."""
    block = bytearray(header("usr/bin/tool"))
    good = int(bytes(block[148:154]), 8)
    for wrong in (good + 65521, good - 65521, good + 255, good - 255):
        if wrong < 0:
            continue
        block[148:156] = f"{wrong:06o}".encode() + b"\0 "
        assert isinstance(_outcome(parse_header, bytes(block)), tuple)
