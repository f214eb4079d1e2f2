"""Nothing lands outside the destination: extract_paths, the runner's unpack, the writer.

Each hostile image aims at a directory next to the destination (``outside``), through
``..``, absolute paths, symlinked parents, and hardlinks; afterwards ``outside`` must still
hold exactly what the test put there.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import pytest

from advisor.errors import AdvisorError, BadInputError
from advisor.oci.extract import extract_paths
from advisor.oci.loader import open_image
from advisor.oci.writer import write_image
from tests.oci.helpers import FileSpec, make_image
from tests.security.craft import member, tar, write_layout


def _snapshot(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    d = tmp_path / "outside"
    d.mkdir()
    (d / "keep.txt").write_text("host file\n")
    return d


def _hostile_layers(outside: Path, hardlink: bool = True) -> list[bytes]:
    rel = os.path.relpath(outside, "/")
    return [
        tar(member("app/ok.txt", b"fine\n"),
            member("evil", typeflag=b"2", linkname=str(outside)),          # absolute escape
            member("up", typeflag=b"2", linkname="../../../../../../" + rel),  # relative escape
            member("etc/passwd", b"root:x:0:0::/root:/bin/sh\n")),
        tar(member("evil/pwned-abs", b"owned\n"),       # through the absolute symlink
            member("up/pwned-rel", b"owned\n"),         # through the relative one
            member("../../../../../../" + rel + "/pwned-dotdot", b"owned\n"),
            member("/" + rel + "/pwned-slash", b"owned\n"),
            *([member("hl", typeflag=b"1", linkname="../../../../../../" + rel + "/keep.txt")]
              if hardlink else [])),
    ]


def test_extract_paths_stays_inside(tmp_path: Path, outside: Path) -> None:
    layout = write_layout(tmp_path / "img", _hostile_layers(outside))
    dest = tmp_path / "dest"
    with open_image(layout.ref) as image:
        for prefix in ("", "evil", "up", "app", "hl"):
            try:
                extract_paths(image, [prefix], dest)
            except BadInputError as e:
                assert "symlink" in e.message or "outside" in e.message, e.message
    assert _snapshot(outside) == ["keep.txt"]
    assert (outside / "keep.txt").read_text() == "host file\n"
    assert all(p.resolve().is_relative_to(dest.resolve()) or p.is_symlink() for p in dest.rglob("*"))


def test_extract_hardlink_cannot_reach_host_files(tmp_path: Path, outside: Path) -> None:
    layout = write_layout(tmp_path / "img", _hostile_layers(outside))
    dest = tmp_path / "dest"
    with open_image(layout.ref) as image:
        extract_paths(image, ["hl", "etc"], dest)
    # The hardlink's target is the image's own path, ``..`` clipped at the root: here it does
    # not exist in the image, so nothing is written for it, and the host file is untouched.
    assert not (dest / "hl").exists() or (dest / "hl").read_bytes() != b"host file\n"
    assert (outside / "keep.txt").read_text() == "host file\n"


def _have(*tools: str) -> bool:
    return all(shutil.which(t) for t in tools)


@pytest.mark.skipif(not _have("skopeo", "umoci"), reason="needs skopeo and umoci (apt-get install skopeo umoci)")
def test_runner_unpack_stays_inside(tmp_path: Path, outside: Path) -> None:
    from advisor.sandbox.runner import unpack_image

    # Without the dangling hardlink (umoci refuses that one, which is fine) the unpack runs
    # to the end, so every escape below is really attempted.
    layout = write_layout(tmp_path / "img", _hostile_layers(outside, hardlink=False))
    (tmp_path / "run").mkdir()
    bundle = unpack_image(layout.ref, tmp_path / "run")
    files = _snapshot(bundle.rootfs)
    assert "app/ok.txt" in files
    assert _snapshot(outside) == ["keep.txt"]
    for p in bundle.rootfs.rglob("*"):
        assert p.is_symlink() or p.resolve().is_relative_to(bundle.rootfs.resolve()), p


@pytest.mark.skipif(not _have("skopeo", "umoci"), reason="needs skopeo and umoci")
def test_runner_device_nodes_never_follow_an_image_symlink(tmp_path: Path, outside: Path) -> None:
    from advisor.sandbox.runner import unpack_image

    # An image whose /dev is a symlink to a host directory: umoci keeps the link as written;
    # device nodes must land in the rootfs, never *through* the link, as root, on the host.
    layout = write_layout(tmp_path / "img", [tar(member("dev", typeflag=b"2", linkname=str(outside)),
                                                 member("app/x", b"1"))])
    (tmp_path / "run").mkdir()
    with contextlib.suppress(AdvisorError):
        unpack_image(layout.ref, tmp_path / "run")
    assert _snapshot(outside) == ["keep.txt"]


def test_writer_never_writes_outside_its_destination(tmp_path: Path, outside: Path) -> None:
    rel = os.path.relpath(outside, "/")
    spec: dict[str, bytes | FileSpec] = {"../../../../../../" + rel + "/w1": b"x", "/" + rel + "/w2": b"y",
            "link": FileSpec(symlink=str(outside)), "link/w3": b"z"}
    for fmt, ref in (("oci", f"oci:{tmp_path / 'o'}:t"), ("docker-archive", f"docker-archive:{tmp_path / 'd.tar'}:a/b:c")):
        try:
            write_image(ref, [spec], {})
        except AdvisorError:
            continue  # refusing a spec that escapes is fine
        with open_image(ref) as image:
            dest = tmp_path / f"x-{fmt}"
            with contextlib.suppress(BadInputError):
                extract_paths(image, [""], dest)
    assert _snapshot(outside) == ["keep.txt"]
    leftovers = [p.name for p in tmp_path.iterdir() if ".tmp-" in p.name]
    assert leftovers == []


def test_make_image_with_whiteout_of_nothing_and_devices_reads_back(tmp_path: Path) -> None:
    ref = make_image(tmp_path, [{"a": b"1"}, {"never/there": FileSpec(whiteout=True)}])
    with open_image(ref) as image:
        assert len(image.layers) == 2
