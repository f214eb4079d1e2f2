"""The layer filter: dropped members go, every kept member's header, PAX records (xattrs),
link, device numbers and bytes stay exactly as they were."""

from __future__ import annotations

import io
import tarfile

import pytest

from advisor.errors import BadInputError
from advisor.fix.rewrite import _Out, filter_tar
from advisor.oci.tar import ChunkReader

LONG = "usr/lib/python3/" + "deep/" * 30 + "module.py"


def _tar() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes = b"", **kw: object) -> None:
            ti = tarfile.TarInfo(name)
            for k, v in kw.items():
                setattr(ti, k, v)
            if ti.type == tarfile.REGTYPE:
                ti.size = len(data)
            tar.addfile(ti, io.BytesIO(data) if data else None)

        add("app", type=tarfile.DIRTYPE, mode=0o750, uid=1000, gid=1000, mtime=1_700_000_000)
        add("app/bin", b"\x7fELF" + bytes(3000), mode=0o4755, uname="svc", gname="svc",
            pax_headers={"SCHILY.xattr.security.capability": "\x01\x00\x00\x02"})
        add("app/cache.bin", b"x" * 10_000)
        add("app/link", type=tarfile.SYMTYPE, linkname="bin")
        add("app/hard", type=tarfile.LNKTYPE, linkname="app/bin")
        add("dev/null", type=tarfile.CHRTYPE, devmajor=1, devminor=3, mode=0o666)
        add(LONG, b"print('deep')\n", mtime=1_600_000_000)
        add(LONG.replace("module", "dropped"), b"y" * 777)
        add("app/.wh.old", b"")
    return buf.getvalue()


def _filter(data: bytes, drop: set[str], chunk: int = 700) -> tuple[bytes, dict[str, int]]:
    out = io.BytesIO()
    chunks = [data[i:i + chunk] for i in range(0, len(data), chunk)]
    dropped = filter_tar(ChunkReader(chunks, "layer 0"), _Out(out), dict.fromkeys(drop, "t"), "layer 0")
    return out.getvalue(), dropped


def _members(data: bytes) -> dict[str, tuple[tarfile.TarInfo, bytes]]:
    out = {}
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        for ti in tar:
            f = tar.extractfile(ti) if ti.isreg() else None
            out[ti.name] = (ti, f.read() if f else b"")
    return out


def test_dropped_members_go_and_the_rest_stay_byte_for_byte() -> None:
    original = _tar()
    filtered, dropped = _filter(original, {"app/cache.bin", LONG.replace("module", "dropped")})
    assert dropped == {"app/cache.bin": 10_000, LONG.replace("module", "dropped"): 777}
    before, after = _members(original), _members(filtered)
    assert set(after) == set(before) - set(dropped)
    for name, (ti, content) in after.items():
        orig, orig_content = before[name]
        assert content == orig_content
        assert ti.get_info() == orig.get_info(), name
        assert ti.pax_headers == orig.pax_headers, name
    assert after["app/bin"][0].pax_headers["SCHILY.xattr.security.capability"] == "\x01\x00\x00\x02"
    assert len(filtered) % tarfile.RECORDSIZE == 0


def test_nothing_dropped_keeps_every_member_and_the_same_input_gives_the_same_bytes() -> None:
    original = _tar()
    a, dropped = _filter(original, set(), chunk=512)
    b, _ = _filter(original, set(), chunk=4096)
    assert dropped == {} and a == b
    assert a[: len(original) - 2 * 512].rstrip(b"\0") == original[: len(original) - 2 * 512].rstrip(b"\0")


def test_a_truncated_layer_is_refused() -> None:
    original = _tar()
    with pytest.raises(BadInputError, match="truncated"):
        _filter(original[:1536 + 100], set())
