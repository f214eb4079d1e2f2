"""The layer cache: a hit is a miss's twin, versions and damage miss, only verified layers land."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from advisor.advise.facts.capture import capture_for
from advisor.errors import DigestMismatchError
from advisor.oci.layercache import LayerCache, code_version
from advisor.oci.layers import read_layers
from advisor.oci.loader import open_image
from advisor.oci.model import Image
from advisor.oci.tarball import FileSpec
from tests.oci.helpers import make_image
from tests.security.craft import member, tar, write_layout

ROOT = Path(__file__).resolve().parents[2]
LAYERS = [
    {"etc/os-release": b"ID=debian\n", "usr/lib/libx.so": b"\x7fELF" + bytes(5000),
     "usr/lib/python3.11/site-packages/x-1.0.dist-info/METADATA": b"Name: x\nVersion: 1.0\n",
     "root/.env": b"TOKEN=abcdefghijkl\n"},
    {"usr/lib/libx.so": FileSpec(whiteout=True), "app": FileSpec(opaque=True),
     "app/main.py": b"print('hi')\n", "bin/sh": FileSpec(symlink="dash"),
     "bin/ln": FileSpec(hardlink="etc/os-release")},
]


def _snapshot(image: Image, cache: LayerCache | None) -> list[dict[str, object]]:
    trees = read_layers(image, capture_for, cache=cache)
    return [{"entries": {p: repr(e) for p, e in t.entries.items()}, "heads": t.heads, "tails": t.tails,
             "whiteouts": sorted(t.whiteouts), "opaque": sorted(t.opaque_dirs), "index": t.index}
            for t in trees]


def _entries(cache: LayerCache) -> list[Path]:
    return sorted(cache.dir.iterdir()) if cache.dir.exists() else []


@pytest.mark.parametrize("fmt", ["oci", "docker-archive"])

def test_a_hit_gives_what_the_walk_gave_without_walking_a_layer(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = LayerCache("v1", tmp_path / "cache")
    ref = make_image(tmp_path, LAYERS, fmt)  # type: ignore[arg-type]
    with open_image(ref) as image:
        uncached = _snapshot(image, None)
        assert _snapshot(image, cache) == uncached  # the miss, stored
        assert len(_entries(cache)) == 2

        def no_walk(*args: object, **kwargs: object) -> None:
            raise AssertionError("a hit must not walk its layer")

        monkeypatch.setattr("advisor.oci.layers.walk_layer", no_walk)
        assert _snapshot(image, cache) == uncached  # the hit: the same trees, only re-hashed
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in _entries(cache))


def test_a_hit_on_a_tampered_local_blob_is_still_a_digest_error(tmp_path: Path) -> None:
    cache = LayerCache("v1", tmp_path / "cache")
    ref = make_image(tmp_path, LAYERS, "oci")
    with open_image(ref) as image:
        _snapshot(image, cache)
        blob = Path(image.source.files.root) / image.source.blob_name(image.layers[0].blob.digest)  # type: ignore[attr-defined]
    _flip_a_byte(blob)
    with open_image(ref) as image, pytest.raises(DigestMismatchError):
        read_layers(image, capture_for, cache=cache)


def test_a_remote_source_hit_opens_no_blob(tmp_path: Path) -> None:
    cache = LayerCache("v1", tmp_path / "cache")
    ref = make_image(tmp_path, LAYERS, "oci")
    with open_image(ref) as image:
        uncached = _snapshot(image, cache)
        image.source.local = False  # type: ignore[attr-defined]  # as a registry source says
        image.source.open_blob = None  # type: ignore[assignment,method-assign]  # a read now fails
        assert _snapshot(image, cache) == uncached


def test_the_same_report_from_the_cli_with_and_without_the_cache(tmp_path: Path) -> None:
    ref = make_image(tmp_path, LAYERS)
    env = {"ADVISOR_CACHE": str(tmp_path / "c"), "PATH": "/usr/bin:/bin"}

    def advise(*extra: str) -> str:
        argv = [str(Path(sys.executable).parent / "advisor"), "advise", ref, "--format", "json", *extra]
        return subprocess.run(argv, env=env, capture_output=True, text=True, check=True, cwd=ROOT).stdout

    cold = advise("--no-cache")
    assert not (tmp_path / "c" / "layers").exists()
    first, second = advise(), advise()
    assert json.loads(cold) == json.loads(first) == json.loads(second)
    trees = [p for p in (tmp_path / "c" / "layers").glob("*/*") if p.parent.name != "verified"]
    assert len(trees) == 2  # (verified/ holds the blob identities, when they were old enough)


def test_another_version_misses_and_the_version_follows_the_code(tmp_path: Path) -> None:
    ref = make_image(tmp_path, LAYERS)
    with open_image(ref) as image:
        read_layers(image, capture_for, cache=LayerCache("v1", tmp_path / "cache"))
        assert all(LayerCache("v2", tmp_path / "cache").get(layer) is None for layer in image.layers)
        assert all(LayerCache("v1", tmp_path / "cache").get(layer) is not None for layer in image.layers)
    assert code_version(["advisor.advise.facts.capture"]) == code_version(["advisor.advise.facts.capture"])
    assert code_version(["advisor.advise.facts.capture"]) != code_version(["advisor.advise.facts.secrets"])


@pytest.mark.parametrize("damage", ["truncate", "flip", "empty", "garbage"])
def test_a_damaged_entry_is_a_miss_and_is_rewritten(tmp_path: Path, damage: str) -> None:
    cache = LayerCache("v1", tmp_path / "cache")
    ref = make_image(tmp_path, LAYERS)
    with open_image(ref) as image:
        good = _snapshot(image, cache)
        path = _entries(cache)[0]
        data = path.read_bytes()
        broken = {"truncate": data[: len(data) // 2], "empty": b"", "garbage": b"\0" * 100,
                  "flip": data[:-10] + bytes([data[-10] ^ 1]) + data[-9:]}[damage]
        path.write_bytes(broken)
        assert sum(cache.get(layer) is None for layer in image.layers) == 1
        assert _snapshot(image, cache) == good  # walked again ...
        assert path.read_bytes() == data  # ... and stored again
        assert all(cache.get(layer) is not None for layer in image.layers)


_RACER = """
import sys
from advisor.advise.facts.capture import capture_for
from advisor.oci.layercache import LayerCache
from advisor.oci.loader import open_image
from advisor.oci.layers import read_layers
cache = LayerCache("v1", __import__("pathlib").Path(sys.argv[2]))
with open_image(sys.argv[1]) as image:
    for _ in range(15):
        trees = read_layers(image, capture_for, cache=cache)
        print(sum(len(t.entries) for t in trees), flush=True)
"""


def test_concurrent_runs_never_see_or_leave_half_an_entry(tmp_path: Path) -> None:
    ref = make_image(tmp_path, [{f"d/f{i}": bytes(i) for i in range(2000)}, *LAYERS])
    with open_image(ref) as image:
        expected = _snapshot(image, None)
    racers = [subprocess.Popen([sys.executable, "-c", _RACER, ref, str(tmp_path / "cache")],
                               stdout=subprocess.PIPE, text=True, cwd=ROOT) for _ in range(4)]
    outputs = [p.communicate(timeout=300)[0].split() for p in racers]
    assert all(p.returncode == 0 for p in racers)
    assert {n for out in outputs for n in out} == {str(sum(len(t["entries"]) for t in expected))}  # type: ignore[arg-type]
    with open_image(ref) as image:
        cache = LayerCache("v1", tmp_path / "cache")
        assert all(cache.get(layer) is not None for layer in image.layers)
        assert _snapshot(image, cache) == expected
    assert not list(cache.dir.glob(".*"))  # no temp file left behind


def test_a_layer_that_fails_its_digest_is_never_stored(tmp_path: Path) -> None:
    cache = LayerCache("v1", tmp_path / "cache")
    ref = make_image(tmp_path, LAYERS, compression="none")
    layout = tmp_path / "image"
    manifest = json.loads((layout / "blobs/sha256" / json.loads((layout / "index.json").read_text())
                           ["manifests"][0]["digest"][7:]).read_text())
    blob = layout / "blobs/sha256" / manifest["layers"][1]["digest"][7:]
    data = bytearray(blob.read_bytes())
    data[data.index(b"print")] = ord("P")  # still a tar, other bytes
    blob.write_bytes(bytes(data))
    with open_image(ref) as image, pytest.raises(DigestMismatchError):
        read_layers(image, capture_for, cache=cache, workers=1)
    with open_image(ref) as image:
        assert cache.get(image.layers[1]) is None


@pytest.mark.parametrize("compress", [True, False], ids=["gzip", "uncompressed"])
def test_a_layer_must_match_its_diff_id_to_be_stored(tmp_path: Path, compress: bool) -> None:
    # the config names the tar of another layer: the blob verifies, its content does not (an
    # uncompressed blob is walked by seeking: its diff_id must be its digest to be cached)
    real, claimed = tar(member("a", b"mine")), tar(member("a", b"someone else's"))
    media = {} if compress else {"media_type": "application/vnd.oci.image.layer.v1.tar"}
    layout = write_layout(tmp_path / "lying", [real], compress=compress, **media, config={
        "architecture": "amd64", "os": "linux", "config": {},
        "rootfs": {"type": "layers", "diff_ids": [_sha256(claimed)]}})
    cache = LayerCache("v1", tmp_path / "cache")
    with open_image(layout.ref) as image:
        assert read_layers(image, capture_for)[0].entries["a"].size == 4  # no cache: no check
        with pytest.raises(DigestMismatchError, match="diff_id"):
            read_layers(image, capture_for, cache=cache)
        assert cache.get(image.layers[0]) is None and not _entries(cache)
    honest = write_layout(tmp_path / "honest", [real], compress=compress, **media)
    with open_image(honest.ref) as image:
        read_layers(image, capture_for, cache=cache)
        assert cache.get(image.layers[0]) is not None
        blob = (tmp_path / "honest/blobs/sha256" / image.layers[0].blob.digest[7:]).read_bytes()
        assert (gzip.decompress(blob) if compress else blob) == real


def _sha256(data: bytes) -> str:
    import hashlib

    return "sha256:" + hashlib.sha256(data).hexdigest()


# -- a local hit whose blob file is unchanged since it was hashed ---------------------------------


def _counting_opens(image: Image) -> list[str]:
    opened: list[str] = []
    real = image.source.open_blob

    def open_blob(descriptor):  # type: ignore[no-untyped-def]
        opened.append(descriptor.digest)
        return real(descriptor)

    image.source.open_blob = open_blob  # type: ignore[method-assign]
    return opened


def _settled(tmp_path: Path, fmt: str) -> str:
    """An image whose files last changed more than ``RACY_SECONDS`` ago."""
    from advisor.oci.layercache import RACY_SECONDS

    ref = make_image(tmp_path, LAYERS, fmt)  # type: ignore[arg-type]
    time.sleep(RACY_SECONDS + 0.2)
    return ref


@pytest.mark.parametrize("fmt", ["oci", "docker-archive"])
def test_an_unchanged_blob_file_is_not_hashed_again(tmp_path: Path, fmt: str) -> None:
    cache = LayerCache("v1", tmp_path / "cache")
    ref = _settled(tmp_path, fmt)
    with open_image(ref) as image:
        uncached = _snapshot(image, cache)  # walked, verified: the identities recorded
    with open_image(ref) as image:
        opened = _counting_opens(image)
        assert _snapshot(image, cache) == uncached
        assert opened == []  # neither walked nor re-hashed
    assert len(list(cache.verified_dir.iterdir())) == 2


def test_a_blob_changed_since_it_was_hashed_is_hashed_again_and_refused(tmp_path: Path) -> None:
    """Same size, mtime put back: the ctime the write moved gives it away."""
    cache = LayerCache("v1", tmp_path / "cache")
    ref = _settled(tmp_path, "oci")
    with open_image(ref) as image:
        _snapshot(image, cache)
        blob = Path(image.source.files.root) / image.source.blob_name(image.layers[0].blob.digest)  # type: ignore[attr-defined]
    st = blob.stat()
    _flip_a_byte(blob)
    os.utime(blob, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert blob.stat().st_mtime_ns == st.st_mtime_ns and blob.stat().st_size == st.st_size
    with open_image(ref) as image, pytest.raises(DigestMismatchError):
        read_layers(image, capture_for, cache=cache)


def test_a_blob_written_moments_ago_is_not_recorded(tmp_path: Path) -> None:
    """A change inside the kernel's timestamp tick could keep ctime: too fresh to vouch for."""
    cache = LayerCache("v1", tmp_path / "cache")
    ref = make_image(tmp_path, LAYERS, "oci")
    with open_image(ref) as image:
        uncached = _snapshot(image, cache)
    with open_image(ref) as image:
        opened = _counting_opens(image)
        assert _snapshot(image, cache) == uncached
        assert sorted(opened) == sorted(layer.blob.digest for layer in image.layers)  # re-hashed
    assert not cache.verified_dir.exists() or not list(cache.verified_dir.iterdir())


def test_a_gzipped_archive_is_always_hashed_again(tmp_path: Path) -> None:
    """Its layers live in a spool that is gone after the run: no identity to record."""
    cache = LayerCache("v1", tmp_path / "cache")
    make_image(tmp_path, LAYERS, "docker-archive")
    gz = tmp_path / "image.tar.gz"
    gz.write_bytes(gzip.compress((tmp_path / "image.tar").read_bytes(), compresslevel=1))
    time.sleep(2.2)
    with open_image(f"docker-archive:{gz}") as image:
        uncached = _snapshot(image, cache)
    with open_image(f"docker-archive:{gz}") as image:
        opened = _counting_opens(image)
        assert _snapshot(image, cache) == uncached
        assert len(opened) == len(image.layers)


def _flip_a_byte(blob: Path) -> None:
    """Tamper with a stored blob: same size, other bytes (a read-only blob made writable)."""
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.chmod(0o644)
    blob.write_bytes(bytes(data))
