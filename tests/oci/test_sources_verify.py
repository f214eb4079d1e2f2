"""The verifying stream every source returns: size and digest checked as bytes pass."""

from __future__ import annotations

import hashlib
import io

import pytest

from advisor.errors import BadInputError, DigestMismatchError
from advisor.oci.model import Descriptor
from advisor.oci.sources.verify import open_verified, split_digest, verify_bytes

DATA = b"layer bytes " * 1000


def descriptor(
    data: bytes = DATA, size: int | None = None, algorithm: str = "sha256"
) -> Descriptor:
    digest = f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"
    return Descriptor("application/octet-stream", digest, len(data) if size is None else size)


@pytest.mark.parametrize("algorithm", ["sha256", "sha512"])
def test_good_bytes_pass_in_any_chunking(algorithm: str) -> None:
    for chunk in (1, 7, 4096, -1):
        with open_verified(io.BytesIO(DATA), descriptor(algorithm=algorithm), "blob") as f:
            out = b""
            while part := f.read(chunk):
                out += part
                if chunk == -1:
                    break
        assert out == DATA


def test_flipped_byte_fails_at_eof() -> None:
    bad = bytearray(DATA)
    bad[500] ^= 1
    with (
        pytest.raises(DigestMismatchError) as info,
        open_verified(io.BytesIO(bytes(bad)), descriptor(), "blob x") as f,
    ):
        f.read()
    assert "blob x" in info.value.message and info.value.exit_code == 3


def test_over_read_fails_before_eof() -> None:
    stream = open_verified(io.BytesIO(DATA + b"extra"), descriptor(), "blob")
    with pytest.raises(BadInputError, match="longer than"):
        stream.read()


def test_short_read_fails() -> None:
    stream = open_verified(io.BytesIO(DATA[:-1]), descriptor(), "blob")
    with pytest.raises(BadInputError, match="ended after 11999 of 12000 bytes"):
        stream.read()


def test_in_memory_checks_and_digest_syntax() -> None:
    assert verify_bytes(DATA, descriptor(), "config") == DATA
    with pytest.raises(BadInputError, match="descriptor says"):
        verify_bytes(DATA, descriptor(size=3), "config")
    with pytest.raises(DigestMismatchError):
        verify_bytes(DATA + b"!", descriptor(size=len(DATA) + 1), "config")
    for bad in ("md5:abc", "sha256:xyz", "sha256:" + "A" * 64, "sha256:" + "a" * 63, "nodigest"):
        with pytest.raises(BadInputError):
            split_digest(bad)
