"""Crafted layer tars against the streaming walk: a clear error or a correct analysis, never a crash.

Every case runs twice: as a seekable plain tar (the walk seeks over contents) and gzipped
through a non-seekable stream (the walk reads and discards), the two code paths of
``advisor.oci.walk``. Memory-bound and hang-prone cases run in a child process, where the
peak RSS is measured and a hang is a timeout, not a stuck test run.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass

import pytest

from advisor.advise.facts.capture import capture_for
from advisor.errors import BadInputError
from advisor.oci.filetree import LayerTree, merge_layers
from advisor.oci.model import EntryKind
from advisor.oci.walk import walk_layer
from tests.security.craft import (
    END,
    IterStream,
    gz,
    header,
    member,
    pad,
    pax_member,
    run_child,
    tar,
)

Check = Callable[[LayerTree], None]


@dataclass(frozen=True)
class Case:
    id: str
    data: bytes
    check: Check | None  # None: the walk must refuse it with BadInputError


def _entries(**want: tuple[EntryKind, int, str]) -> Check:
    def check(tree: LayerTree) -> None:
        got = {p: (e.kind, e.size, e.link) for p, e in tree.entries.items()}
        assert got == {k.replace("__", "/").replace("_dot_", "."): v for k, v in want.items()}
    return check


def _traversal(tree: LayerTree) -> None:
    assert sorted(tree.entries) == ["abs/file", "b", "etc/passwd"]
    assert all(not p.startswith(("/", "..")) and "/../" not in p for p in tree.entries)


def _links(tree: LayerTree) -> None:
    e = tree.entries
    assert e["evil"].kind is EntryKind.SYMLINK and e["evil"].link == "../../../../etc"
    assert e["abs"].kind is EntryKind.SYMLINK and e["abs"].link == "/etc/shadow"
    # A hardlink target is a path inside the layer: ``..`` cannot climb out of it.
    assert e["h"].kind is EntryKind.HARDLINK and e["h"].link == "etc/shadow"
    assert all(x.size == 0 for x in e.values())


def _devices(tree: LayerTree) -> None:
    kinds = {p: e.kind for p, e in tree.entries.items()}
    assert kinds == {"dev/sda": EntryKind.BLOCK, "dev/null": EntryKind.CHAR, "dev/fifo": EntryKind.FIFO}
    assert tree.size == 0


def _ghost_whiteout(tree: LayerTree) -> None:
    assert tree.whiteouts == {"never/existed", "ghost"} and tree.opaque_dirs == {"nowhere"}
    lower = LayerTree(0)
    merged = merge_layers([lower, LayerTree(1, whiteouts=tree.whiteouts, opaque_dirs=tree.opaque_dirs)]).tree
    assert merged.get("ghost") is None


def _duplicates(tree: LayerTree) -> None:
    assert tree.entries["a"].size == 3 and tree.entries["a"].kind is EntryKind.FILE
    assert tree.entries["d"].kind is EntryKind.SYMLINK  # a dir replaced by a symlink, same layer
    assert tree.size == 3


def _non_utf8(tree: LayerTree) -> None:
    (path,) = tree.entries
    assert path.encode("utf-8", "surrogateescape") == b"caf\xe9/\xff\xfename"


CORPUS: tuple[Case, ...] = (
    Case("path-traversal", tar(member("../../etc/passwd", b"x"), member("/abs/file", b"y"),
                               member("a/../../../b", b"z")), _traversal),
    Case("links-outside-root", tar(member("evil", typeflag=b"2", linkname="../../../../etc"),
                                   member("abs", typeflag=b"2", linkname="/etc/shadow"),
                                   member("h", typeflag=b"1", linkname="../../etc/shadow")), _links),
    Case("device-files", tar(member("dev/sda", typeflag=b"4"), member("dev/null", typeflag=b"3"),
                             member("dev/fifo", typeflag=b"6")), _devices),
    Case("whiteouts-of-nothing", tar(member("never/.wh.existed"), member(".wh.ghost"),
                                     member("nowhere/.wh..wh..opq")), _ghost_whiteout),
    Case("duplicate-entries", tar(member("a", b"1"), member("a", b"xyz"), member("d", typeflag=b"5"),
                                  member("d", typeflag=b"2", linkname="a")), _duplicates),
    Case("non-utf8-names", tar(member(b"caf\xe9/\xff\xfename", b"q")), _non_utf8),
    Case("empty-stream", b"", _entries()),
    Case("only-end-blocks", END, _entries()),
    Case("unknown-typeflag-skipped", tar(member("weird", b"data", typeflag=b"Z"), member("ok", b"1")),
         _entries(ok=(EntryKind.FILE, 1, ""))),
    Case("size-larger-than-data", tar(header("a", size=10_000) + pad(b"abc"), end=False), None),
    Case("size-smaller-than-data", tar(header("a", size=3) + pad(b"abc" * 400)), None),
    Case("size-not-octal", tar(header("a", size_field=b"12x4567\0\0\0\0\0")), None),
    Case("checksum-mismatch", tar(header("a", checksum=b"0000000\0")), None),
    Case("garbage", b"\x00\x01" * 1000, None),
    Case("pax-negative-size", tar(pax_member({"size": "-1024"}), header("a"), member("b", b"xx")), None),
    Case("pax-huge-size", tar(pax_member({"size": "9" * 30}), header("a")), None),
    Case("pax-malformed", tar(member("P/x", b"zz foo=bar\n", typeflag=b"x"), header("a")), None),
    Case("pax-zero-length", tar(member("P/x", b"0 foo=bar\n", typeflag=b"x"), header("a")), None),
    Case("pax-infinite-mtime", tar(pax_member({"mtime": "1e400"}), header("a")), None),
    Case("truncated-header", member("a", b"x")[:300], None),
)


def _walk_both_ways(data: bytes) -> list[LayerTree | BadInputError]:
    out: list[LayerTree | BadInputError] = []
    for stream in (io.BytesIO(data), IterStream([gz(data)])):
        try:
            out.append(walk_layer(stream, 0, capture=capture_for))  # type: ignore[arg-type]
        except BadInputError as e:
            assert e.message and "\n" not in e.message and e.hint
            out.append(e)
    return out


@pytest.mark.parametrize("case", CORPUS, ids=[c.id for c in CORPUS])
def test_hostile_layer(case: Case) -> None:
    for result in _walk_both_ways(case.data):
        if case.check is None:
            assert isinstance(result, BadInputError), f"{case.id}: accepted, should be refused"
        else:
            assert isinstance(result, LayerTree), f"{case.id}: refused: {result}"
            case.check(result)


def test_negative_base256_size_is_refused() -> None:
    # 0xff... is a negative base-256 number: the entry once got size -3e26 and the reader's
    # position went backwards (skip(-n)), so the next member was re-read or swallowed.
    data = tar(member("a", b"", size_field=b"\xff" * 11 + b"\x00"), member("b", b"q"))
    for result in _walk_both_ways(data):
        assert isinstance(result, BadInputError)


def test_truncated_and_corrupted_gzip_never_crash() -> None:
    body = tar(*(member(f"d/f{i}", bytes([i]) * (700 * i)) for i in range(40)))
    blob = gz(body)
    for cut in range(1, len(blob), max(1, len(blob) // 60)):
        with pytest.raises(BadInputError):
            walk_layer(io.BytesIO(blob[:cut]), 0, capture=capture_for)
    rng = random.Random(7)
    outcomes = {"refused": 0, "read": 0}
    for _ in range(150):
        bad = bytearray(blob)
        for _ in range(rng.randint(1, 4)):
            bad[rng.randrange(len(bad))] ^= 1 << rng.randrange(8)
        try:
            walk_layer(IterStream([bytes(bad)]), 0, capture=capture_for)  # type: ignore[arg-type]
            outcomes["read"] += 1
        except BadInputError:
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100  # gzip's CRC catches nearly every flip


# -- bounded memory and time: measured in a child process -----------------------------------

_CHILD = """
import io, sys, time, zlib
from tests.security.craft import header, pad, END, IterStream, many_files_tar
from advisor.oci.walk import walk_layer
from advisor.advise.facts.capture import capture_for
def zeros_gzip(n):
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    for _ in range(n >> 20):
        yield c.compress(block)
    yield c.flush()
"""


def test_200k_tiny_files_streamed_in_bounded_memory_and_time() -> None:
    child = run_child(_CHILD + """
t = time.monotonic()
tree = walk_layer(IterStream(many_files_tar(200_000)), 0, capture=capture_for)
result['seconds'] = time.monotonic() - t
result['entries'] = len(tree.entries)
""", timeout=240)
    assert "error" not in child.result, child.result
    assert child.result["entries"] == 200_000
    assert child.result["maxrss_mb"] < 400, child.result  # ~1 kB per entry, not per byte
    assert child.result["seconds"] < 120


def test_gzip_bomb_1000x_is_skipped_without_holding_it() -> None:
    # 256 MiB of zeros in ~250 kB: one regular file and one "model" file analyses peek into.
    child = run_child(_CHILD + """
import gzip
tarpart = [header('bomb/zeros', size=256 << 20)] + [bytes(1 << 20)] * 256
tarpart += [header('app/weights.bin', size=64 << 20)] + [bytes(1 << 20)] * 64 + [END]
c = zlib.compressobj(9, zlib.DEFLATED, 31)
blob = b''.join([c.compress(x) for x in tarpart] + [c.flush()])
result['ratio'] = (320 << 20) / len(blob)
tree = walk_layer(IterStream([blob]), 0, capture=capture_for)
result['size'] = tree.size
result['heads'] = sum(map(len, tree.heads.values()))
""", timeout=240)
    assert "error" not in child.result, child.result
    assert child.result["ratio"] > 900
    assert child.result["size"] == 320 << 20
    assert child.result["heads"] <= 4096
    assert child.result["maxrss_mb"] < 120, child.result


def test_long_name_bomb_is_bounded() -> None:
    # A 32 MiB "long name" (a 1000x gzip bomb in a real layer) once peaked at ~270 MB RSS; GNU
    # tar and Go's archive/tar cap these special members at 1 MiB, and so does the walk now.
    child = run_child(_CHILD + """
chunks = [header('././@LongLink', size=32 << 20, typeflag=b'L')] + [b'a' * (1 << 20)] * 32
tree = walk_layer(IterStream(chunks + [header('x'), END]), 0)
""", timeout=240)
    assert child.result.get("error_type") == "BadInputError" or child.result["maxrss_mb"] < 100, child.result
    assert child.result["maxrss_mb"] < 100, child.result


def test_capture_bomb_is_bounded() -> None:
    # Four 64 MiB METADATA files of zeros (~260 kB gzipped) were each kept whole: 256 MiB held.
    child = run_child(_CHILD + """
chunks = []
for i in range(4):
    chunks += [header(f'usr/lib/python3/site-packages/p{i}-1.dist-info/METADATA', size=64 << 20)]
    chunks += [bytes(1 << 20)] * 64
tree = walk_layer(IterStream(chunks + [END]), 0, capture=capture_for)
result['kept'] = sum(map(len, tree.heads.values()))
""", timeout=240)
    assert child.result.get("error_type") == "BadInputError" or child.result["maxrss_mb"] < 160, child.result


def test_negative_size_never_hangs() -> None:
    # Whatever the verdict on negative sizes, the walk must end (the reader once moved backwards).
    child = run_child(_CHILD + """
data = b''.join([header('a', size_field=b'\\xff' * 11 + b'\\xfe')] + [header('b')] * 4 + [END])
for stream in (io.BytesIO(data), IterStream([data])):
    try:
        walk_layer(stream, 0)
    except Exception as e:
        result.setdefault('errors', []).append(type(e).__name__)
""", timeout=60)
    assert child.returncode == 0 and "error_type" not in child.result, child.result
