"""The streaming layer walk, on real tars and real images written by advisor's writer."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from advisor.errors import BadInputError, DigestMismatchError
from advisor.oci.extract import extract_paths
from advisor.oci.filetree import merge_layers
from advisor.oci.layers import read_layers
from advisor.oci.loader import open_image
from advisor.oci.model import Capture, EntryKind
from advisor.oci.pump import detect_compression
from advisor.oci.tar import normalise_path
from advisor.oci.tarball import BuiltLayer, FileSpec, build_layer
from advisor.oci.walk import walk_layer
from advisor.oci.writer import write_image
from tests.oci.helpers import make_image

LAYERS = [
    {
        "etc/a": b"hello",
        "usr/lib/big.so": b"\x7fELF" + bytes(range(256)) * 40,
        "d/x": b"1",
        "d/y": b"22",
        "a/" + "deep/" * 30 + "f.txt": b"deep",
    },
    {
        "etc/a": b"hello2",
        "usr/lib/big.so": FileSpec(whiteout=True),
        "d": FileSpec(opaque=True),
        "d/z": b"333",
        "bin/busybox": FileSpec(content=b"BB", mode=0o755),
        "bin/sh": FileSpec(symlink="busybox"),
        "bin/ln": FileSpec(hardlink="etc/a"),
    },
]


def _tar_bytes(members: list[tuple[tarfile.TarInfo, bytes | None]], fmt: int) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=fmt) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return buf.getvalue()


def _info(name: str, size: int = 0, kind: bytes = tarfile.REGTYPE, **kw: object) -> tarfile.TarInfo:
    ti = tarfile.TarInfo(name)
    ti.size, ti.type = size, kind
    for k, v in kw.items():
        setattr(ti, k, v)
    return ti


@pytest.mark.parametrize("fmt", ["oci", "oci-archive", "docker-archive"])
@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_every_format_and_compression(tmp_path: Path, fmt: str, compression: str) -> None:
    ref = make_image(tmp_path, LAYERS, fmt, compression)  # type: ignore[arg-type]
    with open_image(ref) as image:
        trees = read_layers(image)
    assert [t.index for t in trees] == [0, 1]
    lower, upper = trees
    assert lower.entries["usr/lib/big.so"].size == 4 + 256 * 40
    assert lower.entries["usr"].kind is EntryKind.DIR
    assert upper.whiteouts == {"usr/lib/big.so"}
    assert upper.opaque_dirs == {"d"}
    assert (
        upper.entries["bin/sh"].kind is EntryKind.SYMLINK
        and upper.entries["bin/sh"].link == "busybox"
    )
    ln = upper.entries["bin/ln"]
    assert ln.kind is EntryKind.HARDLINK and ln.size == 0 and ln.link == "etc/a"
    assert upper.entries["bin/busybox"].mode == 0o755
    assert any(p.endswith("deep/f.txt") for p in lower.entries)
    merged = merge_layers(trees).tree
    assert "usr/lib/big.so" not in merged and "d/x" not in merged and "d/z" in merged
    assert merged.total_size == len(b"hello2") + 3 + 2 + 4


def test_captures_heads_and_tails(tmp_path: Path) -> None:
    built = build_layer(LAYERS[0], tmp_path, "gzip")

    def want(entry: object) -> Capture | None:
        return Capture(head=8, tail=4)

    with built.path.open("rb") as fh:
        tree = walk_layer(fh, 0, "gzip", want)
    data = LAYERS[0]["usr/lib/big.so"]
    assert isinstance(data, bytes)
    assert tree.heads["usr/lib/big.so"] == data[:8]
    assert tree.tails["usr/lib/big.so"] == data[-4:]
    assert tree.heads["etc/a"] == b"hello"  # small files are kept whole
    assert tree.tails["etc/a"] == b"ello"
    assert "usr" not in tree.heads  # directories are never offered to capture


def test_compression_is_detected_from_magic(tmp_path: Path) -> None:
    plain = build_layer(LAYERS[0], tmp_path / "p", "none")
    gz = build_layer(LAYERS[0], tmp_path / "g", "gzip")
    assert detect_compression(gz.path.read_bytes()[:4]) == "gzip"
    with plain.path.open("rb") as fh:  # the media type says gzip, the bytes are a plain tar
        tree = walk_layer(fh, 3, "gzip")
    assert "etc/a" in tree.entries
    with gz.path.open("rb") as fh:
        assert "etc/a" in walk_layer(io.BufferedReader(fh), 0, "none").entries  # type: ignore[arg-type]


def test_gnu_and_pax_headers_devices_and_big_numbers() -> None:
    long = "x/" + "n" * 150 + "/file"
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (_info(long, 3), b"abc"),
        (_info("dev/null", kind=tarfile.CHRTYPE, devmajor=1, devminor=3), None),
        (_info("dev/sda", kind=tarfile.BLKTYPE), None),
        (_info("run/fifo", kind=tarfile.FIFOTYPE), None),
        (_info("big/uid", 1, uid=1 << 40), b"u"),
        (_info("link/" + "l" * 120, kind=tarfile.SYMTYPE, linkname="t" * 150), None),
    ]
    for fmt in (tarfile.GNU_FORMAT, tarfile.PAX_FORMAT):
        tree = walk_layer(io.BytesIO(_tar_bytes(members, fmt)), 0)  # type: ignore[arg-type]
        assert tree.entries[long].size == 3
        assert tree.entries["dev/null"].kind is EntryKind.CHAR
        assert tree.entries["dev/sda"].kind is EntryKind.BLOCK
        assert tree.entries["run/fifo"].kind is EntryKind.FIFO
        assert tree.entries["big/uid"].uid == 1 << 40
        assert tree.entries["link/" + "l" * 120].link == "t" * 150


def test_paths_are_normalised_and_cannot_escape() -> None:
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (_info("./etc/a", 1), b"a"),
        (_info("/abs/b", 1), b"b"),
        (_info("../../evil", 1), b"e"),
        (_info("x/../../y", 1), b"y"),
        (_info("./", kind=tarfile.DIRTYPE), None),
    ]
    tree = walk_layer(io.BytesIO(_tar_bytes(members, tarfile.PAX_FORMAT)), 0)  # type: ignore[arg-type]
    assert sorted(tree.entries) == ["abs/b", "etc/a", "evil", "y"]
    assert normalise_path("a//b/./c/") == "a/b/c"


def test_corrupt_gzip_names_the_layer(tmp_path: Path) -> None:
    data = bytearray(build_layer(LAYERS[0], tmp_path, "gzip").path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    with pytest.raises(BadInputError, match="layer 7"):
        walk_layer(io.BytesIO(bytes(data)), 7, "gzip")  # type: ignore[arg-type]


@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_truncated_tar_is_bad_input(tmp_path: Path, compression: str) -> None:
    raw = build_layer(LAYERS[0], tmp_path, "none").path.read_bytes()
    cut = raw[: 512 + 100]  # a header and part of the file body
    blob = gzip.compress(cut) if compression == "gzip" else cut
    with pytest.raises(BadInputError, match="layer 2"):
        walk_layer(io.BytesIO(blob), 2, compression)  # type: ignore[arg-type]


def test_truncated_seekable_file_is_bad_input(tmp_path: Path) -> None:
    path = build_layer(LAYERS[0], tmp_path, "none").path
    raw = path.read_bytes()
    headers = [i for i in range(0, len(raw), 512) if raw[i + 257 : i + 262] == b"ustar"]
    big = next(i for i in headers if b"big.so" in raw[i : i + 100])
    path.write_bytes(raw[: big + 512 + 1000])  # cut inside big.so's body: seek goes past EOF
    with path.open("rb") as fh, pytest.raises(BadInputError):
        walk_layer(fh, 0, "none")


def _two_files() -> bytes:
    """A tar of "a" (6 bytes) then "b" (700 bytes), its end-of-archive blocks cut off."""
    raw = _tar_bytes([(_info("a", 6), b"hello\n"), (_info("b", 700), b"b" * 700)], tarfile.USTAR_FORMAT)
    return raw[: 512 + 512 + 512 + 1024]  # a, its padded block, b's header, b's two blocks


@pytest.mark.parametrize(
    ("cut", "ok"),
    [
        (512 + 512, True),  # at an entry boundary, no end-of-archive blocks
        (512 + 512 + 512 + 700, True),  # right after the last file's data: no padding
        (512 + 512 + 512 + 900, True),  # inside the last file's padding
        (512 + 512 + 200, False),  # inside b's header
        (512 + 512 + 512 + 699, False),  # inside b's data
        (512 + 3, False),  # inside a's data
    ],
)
@pytest.mark.parametrize("compression", ["gzip", "none"])
def test_a_tar_may_end_at_an_entry_or_in_its_padding(cut: int, ok: bool, compression: str) -> None:
    raw = _two_files()[:cut]
    blob = gzip.compress(raw) if compression == "gzip" else raw
    if not ok:
        with pytest.raises(BadInputError, match="truncated"):
            walk_layer(io.BytesIO(blob), 0, compression)  # type: ignore[arg-type]
        return
    tree = walk_layer(io.BytesIO(blob), 0, compression)  # type: ignore[arg-type]
    assert sorted(tree.entries) == (["a", "b"] if cut > 1024 else ["a"])


@pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci is not installed (scripts/setup.sh)")
def test_a_layer_umoci_insert_wrote_is_read(tmp_path: Path) -> None:
    # umoci 0.4 writes the last file unpadded and no end-of-archive blocks (issue 18)
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "f").write_bytes(b"hello\n")
    layout = tmp_path / "layout"
    for argv in (["init", "--layout", str(layout)], ["new", "--image", f"{layout}:t"],
                 ["insert", "--image", f"{layout}:t", str(tmp_path / "src"), "/data"]):
        subprocess.run(["umoci", *argv], check=True, capture_output=True)
    with open_image(f"oci:{layout}:t") as image:
        (tree,) = read_layers(image, capture=lambda e: Capture(head=64))
    assert tree.entries["data/f"].size == 6 and tree.heads["data/f"] == b"hello\n"


def test_bad_checksum_is_bad_input() -> None:
    data = bytearray(_tar_bytes([(_info("a", 1), b"a")], tarfile.PAX_FORMAT))
    data[0] = ord("b")
    with pytest.raises(BadInputError, match="checksum"):
        walk_layer(io.BytesIO(bytes(data)), 0)  # type: ignore[arg-type]


def test_corrupted_blob_fails_the_digest_check(tmp_path: Path) -> None:
    ref = make_image(tmp_path, LAYERS, "oci", "none")
    layout = tmp_path / "image"
    manifest_digest = json.loads((layout / "index.json").read_text())["manifests"][0]["digest"]
    manifest = json.loads((layout / "blobs/sha256" / manifest_digest[7:]).read_text())
    blob = layout / "blobs/sha256" / manifest["layers"][0]["digest"][7:]
    data = bytearray(blob.read_bytes())
    at = data.index(b"hello")
    data[at] = ord("j")  # still a valid tar, different bytes
    blob.write_bytes(bytes(data))
    with open_image(ref) as image, pytest.raises(DigestMismatchError):
        read_layers(image, workers=1)


def test_read_layers_parallel_matches_serial_and_reports_progress(tmp_path: Path) -> None:
    ref = make_image(tmp_path, LAYERS * 3, "oci", "gzip")
    seen: list[tuple[int, int]] = []
    with open_image(ref) as image:
        serial = read_layers(image, workers=1)
        parallel = read_layers(image, workers=2, progress=lambda d, t: seen.append((d, t)))
        total = image.compressed_size
    assert [t.entries for t in serial] == [t.entries for t in parallel]
    assert seen and seen[-1] == (total, total)
    assert all(d <= t for d, t in seen)


def test_extract_paths_gives_the_merged_final_files(tmp_path: Path) -> None:
    layers = [
        *LAYERS,
        {
            "models/m1/model.bin": b"weights",
            "models/m1/old.txt": b"old",
            "app/model": FileSpec(symlink="/models/m1"),
        },
        {"models/m1/old.txt": FileSpec(whiteout=True), "models/m1/config.json": b"{}"},
    ]
    ref = make_image(tmp_path, layers, "docker-archive")
    out = tmp_path / "out"
    with open_image(ref) as image:
        result = extract_paths(image, ["app/model", "bin", "etc/a"], out)
    assert (out / "models/m1/model.bin").read_bytes() == b"weights"
    assert (out / "models/m1/config.json").read_bytes() == b"{}"
    assert not (out / "models/m1/old.txt").exists()
    assert (out / "bin/ln").read_bytes() == b"hello2"  # hardlink: content of its target
    assert (out / "bin/sh").is_symlink()
    assert (out / "etc/a").read_bytes() == b"hello2"
    assert "models/m1/model.bin" in result.paths
    assert result.size == len(b"weights") + 2 + len(b"BB") + 2 * len(b"hello2")


def _raw_layer(
    tmp_path: Path, name: str, members: list[tuple[tarfile.TarInfo, bytes | None]]
) -> BuiltLayer:
    data = _tar_bytes(members, tarfile.PAX_FORMAT)
    path = tmp_path / name
    path.write_bytes(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return BuiltLayer(path, digest, len(data), digest, len(data), "none")


def test_extract_never_writes_outside(tmp_path: Path) -> None:
    # A symlink to a host directory, then a file "through" it in a later layer (no dir entry),
    # and names with .. in them: everything must land inside out/.
    victim = tmp_path / "victim"
    layers = [
        _raw_layer(
            tmp_path, "l0.tar", [(_info("data", kind=tarfile.SYMTYPE, linkname=str(victim)), None)]
        ),
        _raw_layer(tmp_path, "l1.tar", [(_info("data/f", 1), b"x"), (_info("../../up", 1), b"u")]),
    ]
    ref = f"oci:{tmp_path / 'img'}:t"
    write_image(ref, layers, {})
    with open_image(ref) as image:
        result = extract_paths(image, [""], tmp_path / "out")
    assert not victim.exists()
    assert (tmp_path / "out/data/f").read_bytes() == b"x"
    assert (tmp_path / "out/up").read_bytes() == b"u"
    assert not (tmp_path.parent / "up").exists()
    assert "up" in result.paths


def test_extract_refuses_a_preexisting_symlink_escape(tmp_path: Path) -> None:
    ref = make_image(tmp_path, [{"data/f": b"x"}])
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "victim").mkdir()
    (out / "data").symlink_to(tmp_path / "victim")
    with open_image(ref) as image, pytest.raises(BadInputError, match="symlink"):
        extract_paths(image, ["data"], out)
    assert not (tmp_path / "victim/f").exists()


def test_negative_size_is_refused() -> None:
    block = bytearray(_tar_bytes([(_info("a", 0), b"")], tarfile.USTAR_FORMAT)[:512])
    block[124:136] = b"\xff" * 11 + b"\x00"  # base-256, negative
    block[148:156] = b" " * 8
    block[148:155] = f"{sum(block):06o}\0".encode()
    data = bytes(block) + bytes(1024)
    with pytest.raises(BadInputError, match="negative size"):
        walk_layer(io.BytesIO(data), 0)  # type: ignore[arg-type]


def test_oversized_long_name_is_refused() -> None:
    name = "n" * (2 << 20)
    data = _tar_bytes([(_info(name, 1), b"x")], tarfile.GNU_FORMAT)
    with pytest.raises(BadInputError, match="metadata record"):
        walk_layer(io.BytesIO(data), 0)  # type: ignore[arg-type]


def test_capture_budget_bounds_what_a_layer_keeps() -> None:
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (_info(f"m{i}", 3 << 20), bytes(3 << 20)) for i in range(3)
    ]
    data = _tar_bytes(members, tarfile.PAX_FORMAT)

    def whole(entry: object) -> Capture:
        return Capture(head=8 << 20)

    tree = walk_layer(io.BytesIO(data), 0, capture=whole, capture_budget=9 << 20)  # type: ignore[arg-type]
    assert sum(map(len, tree.heads.values())) == 9 << 20
    with pytest.raises(BadInputError, match="MiB of file contents"):
        walk_layer(io.BytesIO(data), 0, capture=whole, capture_budget=8 << 20)  # type: ignore[arg-type]


def test_a_head_and_a_range_count_together_against_the_budget() -> None:
    """Two reads of 0.75 MiB from one file are one 1.5 MiB capture, not two small ones."""
    members: list[tuple[tarfile.TarInfo, bytes | None]] = [
        (_info(f"m{i}", 4 << 20), bytes(4 << 20)) for i in range(4)
    ]
    data = _tar_bytes(members, tarfile.PAX_FORMAT)
    half = 3 << 18

    def both_ends(entry: object) -> Capture:
        return Capture(head=half, tail=half)

    tree = walk_layer(io.BytesIO(data), 0, capture=both_ends, capture_budget=6 << 20)  # type: ignore[arg-type]
    assert sum(map(len, tree.tails.values())) == 4 * half
    with pytest.raises(BadInputError, match="MiB of file contents"):
        walk_layer(io.BytesIO(data), 0, capture=both_ends, capture_budget=5 << 20)  # type: ignore[arg-type]
