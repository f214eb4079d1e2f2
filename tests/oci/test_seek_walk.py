"""The seeking walk of uncompressed local layers (``seek_layer``), hashed beside it
(``start_layers``): the same trees as the streaming walk, and nothing counts before the hash."""

from __future__ import annotations

import io
import json
import os
import tarfile
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from advisor.advise.facts.capture import capture_for
from advisor.advise.pipeline import AdviseConfig, run
from advisor.errors import BadInputError, DigestMismatchError
from advisor.oci import layers
from advisor.oci.filetree import LayerTree
from advisor.oci.layercache import LayerCache
from advisor.oci.layers import read_layers, start_layers
from advisor.oci.loader import open_image
from advisor.oci.model import Capture, Descriptor, Entry
from advisor.oci.sources.verify import HashStopped, hash_extent
from advisor.oci.tarball import build_layer
from advisor.oci.walk import seek_layer, walk_layer
from tests.oci.helpers import make_image
from tests.oci.test_layercache import LAYERS as CACHE_LAYERS
from tests.oci.test_layercache import _sha256
from tests.oci.test_walk import LAYERS, _info, _tar_bytes, _two_files

MEDIA = "application/vnd.oci.image.layer.v1.tar"


def _shape(tree: LayerTree) -> dict[str, Any]:
    return {"entries": {p: repr(e) for p, e in tree.entries.items()}, "heads": tree.heads,
            "tails": tree.tails, "whiteouts": sorted(tree.whiteouts),
            "opaque": sorted(tree.opaque_dirs)}


def _either(walk: Callable[[], LayerTree]) -> dict[str, Any] | tuple[type, str]:
    try:
        return _shape(walk())
    except BadInputError as e:
        return type(e), e.message


def _ends(entry: Entry) -> Capture:
    return Capture(head=16, tail=16)


def _big_tars(tmp_path: Path) -> dict[str, bytes]:
    members = [(_info(f"m{i}", 3 << 20), bytes([i]) * (3 << 20)) for i in range(3)]
    gnu = _tar_bytes([(_info("n" * 300, 5), b"12345"), (_info("dev", 0, tarfile.CHRTYPE), None),
                      (_info("big", 1 << 33, uid=1 << 30), None)], tarfile.GNU_FORMAT)
    return {
        "layers0": build_layer(LAYERS[0], tmp_path, "none").path.read_bytes(),
        "layers1": build_layer(LAYERS[1], tmp_path, "none").path.read_bytes(),
        "pax-big": _tar_bytes(members, tarfile.PAX_FORMAT),
        "gnu-longname-base256": gnu[:2048],  # cut inside the 8 GiB member: truncated both ways
        **{f"two-files-cut-{n}": _two_files()[:n]
           for n in (1024, 1024 + 512 + 700, 1024 + 512 + 900, 1024 + 200, 1024 + 512 + 699, 515)},
    }


@pytest.mark.parametrize(("window", "short_reads"), [(512, 512), (1536, 1000), (256 << 10, 1 << 30)])
@pytest.mark.parametrize("capture", [None, _ends, lambda e: Capture(head=8 << 20)])
def test_seek_layer_gives_what_the_streaming_walk_gives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, window: int, short_reads: int,
    capture: Callable[[Entry], Capture] | None,
) -> None:
    monkeypatch.setattr("advisor.oci.tar.WINDOW", window)
    for name, data in _big_tars(tmp_path).items():
        streamed = _either(lambda d=data: walk_layer(io.BytesIO(d), 3, "none", capture,  # type: ignore[misc, arg-type]
                                                     capture_budget=7 << 20))
        sought = _either(lambda d=data: seek_layer(_Windowed(d, short_reads), len(d), 3,  # type: ignore[misc]
                                                   capture, capture_budget=7 << 20))
        assert sought == streamed, name


class _Windowed(io.BytesIO):
    """A seekable file that reads at most ``window`` bytes a call (short reads)."""

    def __init__(self, data: bytes, window: int) -> None:
        super().__init__(data)
        self._window = window

    def readinto(self, buffer: Any) -> int:
        view = memoryview(buffer)
        return super().readinto(view[: self._window])


def test_seek_layer_reads_only_where_headers_are() -> None:
    """A 64 MiB member costs no read: it is seeked over."""
    data = _tar_bytes([(_info("a", 5), b"hello"), (_info("big", 64 << 20), bytes(64 << 20)),
                       (_info("z", 1), b"z")], tarfile.PAX_FORMAT)
    f = _Counting(data)
    tree = seek_layer(f, len(data), 0)
    assert sorted(tree.entries) == ["a", "big", "z"]
    assert f.read_bytes < 1 << 20


class _Counting(io.BytesIO):
    read_bytes = 0

    def readinto(self, buffer: Any) -> int:
        n = super().readinto(buffer)
        self.read_bytes += n
        return n


def _blob(tmp_path: Path, layer: int) -> Path:
    layout = tmp_path / "image"
    index = json.loads((layout / "index.json").read_text())
    manifest = json.loads((layout / "blobs/sha256" / index["manifests"][0]["digest"][7:]).read_text())
    return layout / "blobs/sha256" / manifest["layers"][layer]["digest"][7:]


def _tamper(blob: Path, needle: bytes) -> None:
    data = bytearray(blob.read_bytes())
    data[data.index(needle)] ^= 0x20  # still a tar: only file content changes
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))


@pytest.mark.parametrize("fmt", ["oci", "docker-archive"])
def test_uncompressed_local_layers_are_sought_and_give_the_streamed_trees(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    ref = make_image(tmp_path, CACHE_LAYERS, fmt, "none")  # type: ignore[arg-type]
    gz = make_image(tmp_path, CACHE_LAYERS, "oci", "gzip", name="gz")
    sought: list[int] = []
    real = layers.seek_layer

    def seek_layer(file: Any, size: int, index: int, *args: Any) -> LayerTree:
        sought.append(index)
        return real(file, size, index, *args)

    monkeypatch.setattr(layers, "seek_layer", seek_layer)
    with open_image(ref) as image, open_image(gz) as streamed:
        assert ([_shape(t) for t in read_layers(image, capture_for)]
                == [_shape(t) for t in read_layers(streamed, capture_for)])
    assert sorted(sought) == [0, 1]  # both layers of the plain tars, none of the gzipped ones


@pytest.mark.parametrize("child", [True, False], ids=["hash-in-a-child", "hash-on-a-thread"])
def test_a_change_the_seeking_walk_skips_is_caught_by_the_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, child: bool
) -> None:
    monkeypatch.setattr(layers, "CHILD_MIN_BYTES", 0 if child else 1 << 62)
    ref = make_image(tmp_path, LAYERS, "oci", "none")
    _tamper(_blob(tmp_path, 0), bytes(range(256)))  # inside big.so's body
    cache = LayerCache("v1", tmp_path / "cache")
    with open_image(ref) as image:
        with start_layers(image, capture_for, cache=cache) as read:
            assert "usr/lib/big.so" in read.trees[0].entries  # walked: the tar is fine
            with pytest.raises(DigestMismatchError):
                read.verify()
        assert cache.get(image.layers[0]) is None and cache.get(image.layers[1]) is None
    with pytest.raises(DigestMismatchError):
        run(AdviseConfig(ref, use_cache=False))


def test_a_tampered_tar_header_is_reported_as_the_digest_mismatch(tmp_path: Path) -> None:
    ref = make_image(tmp_path, LAYERS, "oci", "none")
    blob = _blob(tmp_path, 0)
    data = bytearray(blob.read_bytes())
    data[148] ^= 0x01  # the first header's checksum: the seeking walk fails first
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
    with open_image(ref) as image, pytest.raises(DigestMismatchError):
        read_layers(image)


def test_sought_layers_are_cached_only_once_their_hash_matched(tmp_path: Path) -> None:
    ref = make_image(tmp_path, CACHE_LAYERS, "oci", "none")
    cache = LayerCache("v1", tmp_path / "cache")
    with open_image(ref) as image:
        with start_layers(image, capture_for, cache=cache) as read:
            assert all(cache.get(layer) is None for layer in image.layers)
            trees = read.verify()
        assert [_shape(cache.get(layer)) for layer in image.layers] == [_shape(t) for t in trees]  # type: ignore[arg-type]


def test_leaving_without_verify_stops_and_joins_the_hashes(tmp_path: Path) -> None:
    ref = make_image(tmp_path, [{"big": bytes(64 << 20)}], "oci", "none")
    with open_image(ref) as image, start_layers(image) as read:
        assert read.trees[0].entries["big"].size == 64 << 20
    assert not [t for t in threading.enumerate() if t.name.startswith("advisor-hash")]


def _section(tmp_path: Path, data: bytes) -> tuple[int, int, int]:
    path = tmp_path / "blob"
    path.write_bytes(b"x" * 100 + data + b"y" * 50)
    fd = os.open(path, os.O_RDONLY)
    return fd, 100, len(data)


def test_hash_extent_checks_the_digest_in_a_child_and_ticks_every_byte(tmp_path: Path) -> None:
    data = os.urandom((64 << 20) + 12345)
    where = _section(tmp_path, data)
    good = Descriptor(MEDIA, _sha256(data), len(data))
    ticks: list[int] = []
    try:
        hash_extent(where, good, "blob", ticks.append, lambda: False)
        assert sum(ticks) == len(data) and len(ticks) >= 2  # progress while it runs
        with pytest.raises(DigestMismatchError):
            hash_extent(where, Descriptor(MEDIA, _sha256(data + b"!"), len(data)), "blob",
                        lambda n: None, lambda: False)
        with pytest.raises(BadInputError, match="descriptor says"):
            hash_extent(where, Descriptor(MEDIA, good.digest, len(data) + 1), "blob",
                        lambda n: None, lambda: False)
        with pytest.raises(HashStopped):
            hash_extent(where, good, "blob", lambda n: None, lambda: True)
    finally:
        os.close(where[0])


def test_hash_extent_of_a_file_cut_short_is_truncated(tmp_path: Path) -> None:
    data = os.urandom(1 << 20)
    fd, offset, _ = _section(tmp_path, data)
    try:
        with pytest.raises(BadInputError, match="ended after"):
            # the descriptor and the extent say more than the file holds
            hash_extent((fd, offset + (1 << 20), 1 << 20), Descriptor(MEDIA, _sha256(data), 1 << 20),
                        "blob", lambda n: None, lambda: False)
    finally:
        os.close(fd)


def test_a_blob_file_changed_while_it_was_read_is_not_cached(tmp_path: Path) -> None:
    """The seeking walk reads the file apart from the hash: a file that changed in between
    (here only its ctime, by a chmod) may have shown the walk other bytes than the hash."""
    ref = make_image(tmp_path, CACHE_LAYERS, "oci", "none")
    cache = LayerCache("v1", tmp_path / "cache")
    with open_image(ref) as image, start_layers(image, capture_for, cache=cache) as read:
        _blob(tmp_path, 0).chmod(0o600)
        read.verify()  # the bytes are the same: verified
        assert cache.get(image.layers[0]) is None and cache.get(image.layers[1]) is not None


def test_without_an_interpreter_to_start_the_hash_runs_on_a_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(layers, "CHILD_MIN_BYTES", 0)
    monkeypatch.setattr("sys.executable", str(tmp_path / "no-python"))
    ref = make_image(tmp_path, LAYERS, "oci", "none")
    with open_image(ref) as image:
        assert len(read_layers(image)) == 2
    _tamper(_blob(tmp_path, 0), bytes(range(256)))
    with open_image(ref) as image, pytest.raises(DigestMismatchError):
        read_layers(image)
