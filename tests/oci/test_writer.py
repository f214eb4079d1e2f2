"""The deterministic writer: real layouts and archives, checked by skopeo, umoci and tar itself."""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path
from typing import Any

import pytest

from advisor.errors import BadInputError, BuildError
from advisor.oci.tarball import FileSpec, build_layer, spec_from_dir, write_tar
from advisor.oci.writer import write_image
from tests.oci.helpers import make_image, make_image_written

LAYERS = [
    {
        "etc/os-release": b"ID=test\n",
        "usr/lib/big.so": b"\x7fELF" + b"x" * 5000,
        "app/data/a.txt": b"a" * 100,
        "app/data/b.txt": b"b" * 200,
    },
    {
        "etc/os-release": b"ID=test2\n",
        "usr/lib/big.so": FileSpec(whiteout=True),
        "app/data": FileSpec(opaque=True),
        "app/data/c.txt": b"c" * 300,
        "bin/sh": FileSpec(symlink="busybox"),
        "bin/busybox": FileSpec(content=b"#!", mode=0o755),
        "bin/ash": FileSpec(hardlink="bin/busybox"),
        "a/" + "deep/" * 30 + "file-with-a-very-long-name.txt": b"long",
        "srv/ünïcode.txt": b"u",
    },
]

needs_skopeo = pytest.mark.skipif(shutil.which("skopeo") is None, reason="skopeo not installed")
needs_umoci = pytest.mark.skipif(shutil.which("umoci") is None, reason="umoci not installed")


def _layer_members(blob: Path) -> list[tarfile.TarInfo]:
    with tarfile.open(blob) as tar:
        return tar.getmembers()


def _oci_manifest(layout: Path, tag: str = "latest") -> dict:
    index = json.loads((layout / "index.json").read_text())
    [entry] = [
        m
        for m in index["manifests"]
        if m["annotations"]["org.opencontainers.image.ref.name"] == tag
    ]
    blob = layout / "blobs" / "sha256" / entry["digest"].split(":")[1]
    return json.loads(blob.read_bytes())


def test_layer_tar_is_normalised(tmp_path: Path) -> None:
    built = build_layer(LAYERS[1], tmp_path / "blobs", "gzip")
    members = {m.name: m for m in _layer_members(built.path)}
    assert members["app/data/.wh..wh..opq"].isfile()
    assert members["usr/lib/.wh.big.so"].size == 0
    assert members["bin/sh"].issym() and members["bin/sh"].linkname == "busybox"
    assert members["bin/ash"].islnk() and members["bin/ash"].linkname == "bin/busybox"
    assert members["bin/busybox"].mode == 0o755
    assert members["usr"].isdir() and members["usr/lib"].isdir()  # implicit parents
    assert all(m.mtime == 0 and m.uid == 0 and m.uname == "" for m in members.values())
    names = [m.name for m in _layer_members(built.path)]
    assert names.index("bin/busybox") < names.index("bin/ash")  # hardlink after its target
    raw = gzip.decompress(built.path.read_bytes())
    assert built.diff_id == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert built.digest == "sha256:" + hashlib.sha256(built.path.read_bytes()).hexdigest()
    assert built.path.read_bytes()[4:8] == b"\0\0\0\0"  # gzip mtime 0


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_same_inputs_same_bytes(tmp_path: Path, compression: str) -> None:
    a = build_layer(LAYERS[1], tmp_path / "a", compression)  # type: ignore[arg-type]
    b = build_layer(dict(reversed(list(LAYERS[1].items()))), tmp_path / "b", compression)  # type: ignore[arg-type]
    assert a.digest == b.digest and a.path.read_bytes() == b.path.read_bytes()


@pytest.mark.parametrize("fmt", ["oci", "oci-archive", "docker-archive"])
def test_same_inputs_same_manifest_digest(tmp_path: Path, fmt: str) -> None:
    _, one = make_image_written(tmp_path / "1", LAYERS, fmt)  # type: ignore[arg-type]
    _, two = make_image_written(tmp_path / "2", LAYERS, fmt)  # type: ignore[arg-type]
    assert one.manifest_digest == two.manifest_digest
    if fmt != "oci":
        assert (tmp_path / "1" / "image.tar").read_bytes() == (
            tmp_path / "2" / "image.tar"
        ).read_bytes()


def test_source_date_epoch_changes_the_digest(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, zero = make_image_written(tmp_path / "1", LAYERS)
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    _, later = make_image_written(tmp_path / "2", LAYERS)
    assert zero.manifest_digest != later.manifest_digest
    config = json.loads(
        (
            tmp_path / "2" / "image" / "blobs" / "sha256" / later.config_digest.split(":")[1]
        ).read_text()
    )
    assert config["created"] == "2023-11-14T22:13:20Z"


def test_spec_from_dir_keeps_modes_links_and_hardlinks(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "pkg").mkdir(parents=True)
    (root / "pkg" / "mod.py").write_text("x = 1\n")
    (root / "pkg" / "run").write_text("#!/bin/sh\n")
    (root / "pkg" / "run").chmod(0o755)
    os.link(root / "pkg" / "mod.py", root / "pkg" / "same.py")
    (root / "pkg" / "link").symlink_to("mod.py")
    spec = spec_from_dir(root, prefix="opt/app")
    assert spec["opt/app/pkg/run"].mode == 0o755
    assert spec["opt/app/pkg/link"].symlink == "mod.py"
    assert spec["opt/app/pkg/same.py"].hardlink == "opt/app/pkg/mod.py"
    built = build_layer(root, tmp_path / "blobs", "none")
    names = {m.name: m for m in _layer_members(built.path)}
    assert names["pkg/same.py"].islnk() and names["pkg/mod.py"].size == 6


def test_paths_cannot_escape(tmp_path: Path) -> None:
    with pytest.raises(BadInputError):
        build_layer({"../etc/passwd": b"x"}, tmp_path, "none")


def test_large_file_streams_from_disk(tmp_path: Path) -> None:
    big = tmp_path / "big.bin"
    with big.open("wb") as fh:
        for i in range(40):
            fh.write(bytes([i]) * (1 << 20))
    built = build_layer({"data/big.bin": FileSpec(source=big)}, tmp_path / "blobs", "gzip")
    assert built.tar_size > 40 << 20
    with tarfile.open(built.path) as tar:
        member = tar.getmember("data/big.bin")
        fh = tar.extractfile(member)
        assert fh is not None
        assert hashlib.sha256(fh.read()).digest() == hashlib.sha256(big.read_bytes()).digest()


def test_tar_matches_what_python_reads(tmp_path: Path) -> None:
    out = tmp_path / "l.tar"
    with out.open("wb") as fh:
        write_tar(LAYERS[1], fh)
    assert out.stat().st_size % tarfile.RECORDSIZE == 0
    names = [m.name for m in _layer_members(out)]
    assert "srv/ünïcode.txt" in names
    assert any(n.endswith("file-with-a-very-long-name.txt") and len(n) > 100 for n in names)


def test_oci_layout_adds_tags_atomically(tmp_path: Path) -> None:
    layout = tmp_path / "img"
    first = write_image(f"oci:{layout}:one", LAYERS[:1], {})
    second = write_image(f"oci:{layout}:two", LAYERS, {})
    again = write_image(f"oci:{layout}:one", LAYERS, {})  # retag "one" to the second image
    index = json.loads((layout / "index.json").read_text())
    tags = {
        m["annotations"]["org.opencontainers.image.ref.name"]: m["digest"]
        for m in index["manifests"]
    }
    assert tags == {"one": second.manifest_digest, "two": second.manifest_digest}
    assert again.manifest_digest == second.manifest_digest != first.manifest_digest
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp left behind
    assert not list(layout.glob("*.tmp"))


def test_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    with pytest.raises(BuildError):
        write_image(
            f"oci:{tmp_path / 'img'}",
            [LAYERS[0]],
            {"history": [{"created_by": "a"}, {"created_by": "b"}]},
        )
    assert list(tmp_path.iterdir()) == []


def test_missing_source_is_a_build_error(tmp_path: Path) -> None:
    with pytest.raises(BuildError):
        write_image(
            f"docker-archive:{tmp_path / 'x.tar'}", [{"a": FileSpec(source=tmp_path / "gone")}], {}
        )
    assert list(tmp_path.iterdir()) == []


def test_interrupt_leaves_nothing_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import advisor.oci.tarball as tarball

    def interrupted(*args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(tarball, "_write_content", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_image(f"oci-archive:{tmp_path / 'x.tar'}", LAYERS, {})
    assert list(tmp_path.iterdir()) == []


def test_history_maps_to_layers(tmp_path: Path) -> None:
    _ref, written = make_image_written(tmp_path, LAYERS, history=["RUN one", "RUN two"])
    config = json.loads(
        (tmp_path / "image" / "blobs" / "sha256" / written.config_digest[7:]).read_text()
    )
    assert [h["created_by"] for h in config["history"]] == ["RUN one", "RUN two"]
    assert config["rootfs"]["diff_ids"] == [layer.diff_id for layer in written.layers]


def test_docker_archive_layout(tmp_path: Path) -> None:
    ref = make_image(tmp_path, LAYERS, "docker-archive")
    archive = tmp_path / "image.tar"
    with tarfile.open(archive) as tar:
        manifest = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        [entry] = manifest
        assert entry["RepoTags"] == ["advisor-test/image:latest"]
        for layer in entry["Layers"]:
            data = tar.extractfile(layer).read()  # type: ignore[union-attr]
            assert layer == hashlib.sha256(data).hexdigest() + "/layer.tar"
        config = json.load(tar.extractfile(entry["Config"]))  # type: ignore[arg-type]
        assert len(config["rootfs"]["diff_ids"]) == 2
        assert "repositories" in tar.getnames()
    assert ref.startswith("docker-archive:")


@needs_skopeo
@pytest.mark.parametrize("fmt", ["oci", "oci-archive", "docker-archive"])
@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_skopeo_inspects_and_copies(tmp_path: Path, fmt: str, compression: str) -> None:
    ref, written = make_image_written(tmp_path, LAYERS, fmt, compression)  # type: ignore[arg-type]
    out = subprocess.run(["skopeo", "inspect", ref], capture_output=True, text=True, check=True)
    info = json.loads(out.stdout)
    if fmt != "docker-archive":
        assert info["Digest"] == written.manifest_digest
    assert len(info["Layers"]) == 2
    copy = tmp_path / "copy"
    subprocess.run(["skopeo", "copy", ref, f"oci:{copy}:c"], capture_output=True, check=True)
    manifest = _oci_manifest(copy, "c")
    assert len(manifest["layers"]) == 2


@needs_umoci
def test_umoci_unpacks_with_whiteouts_applied(tmp_path: Path) -> None:
    make_image(tmp_path, LAYERS)
    bundle = tmp_path / "bundle"
    subprocess.run(
        ["umoci", "unpack", "--rootless", "--image", f"{tmp_path / 'image'}:latest", str(bundle)],
        capture_output=True,
        check=True,
    )
    root = bundle / "rootfs"
    assert (root / "etc/os-release").read_text() == "ID=test2\n"
    assert not (root / "usr/lib/big.so").exists()
    assert sorted(p.name for p in (root / "app/data").iterdir()) == ["c.txt"]
    assert os.readlink(root / "bin/sh") == "busybox"
    assert (root / "bin/ash").stat().st_ino == (root / "bin/busybox").stat().st_ino


def test_base_layers_are_copied_blob_for_blob(tmp_path: Path) -> None:
    from advisor.oci.loader import open_image

    base_ref, base_written = make_image_written(
        tmp_path,
        LAYERS[:1],
        "oci",
        "zstd",
        history=["ADD rootfs"],
        config={"config": {"Env": ["A=1"]}},
    )
    with open_image(base_ref) as base:
        oci = write_image(
            f"oci:{tmp_path / 'app'}:1",
            [{"app/main.py": b"print()"}],
            {"config": {"Cmd": ["app"]}},
            base=base,
        )
        archive = write_image(
            f"docker-archive:{tmp_path / 'app.tar'}:app:1",
            [{"app/main.py": b"print()"}],
            {},
            base=base,
        )
    assert oci.layers[0].digest == base_written.layers[0].digest  # same compressed bytes
    assert oci.layers[0].media_type.endswith("+zstd")
    assert archive.layers[0].digest == base_written.layers[0].diff_id  # stored uncompressed
    config = json.loads((tmp_path / "app/blobs/sha256" / oci.config_digest[7:]).read_text())
    assert config["config"] == {"Env": ["A=1"], "Cmd": ["app"]}
    assert [h["created_by"] for h in config["history"]] == ["ADD rootfs", "advisor: layer 0"]
    with open_image(f"oci:{tmp_path / 'app'}:1") as image:
        assert [layer.diff_id for layer in image.layers] == [r.diff_id for r in archive.layers]


def test_corrupt_base_blob_is_refused(tmp_path: Path) -> None:
    from advisor.errors import DigestMismatchError
    from advisor.oci.loader import open_image

    base_ref, written = make_image_written(tmp_path, LAYERS[:1], "oci", "none")
    blob = tmp_path / "image/blobs/sha256" / written.layers[0].digest[7:]
    data = bytearray(blob.read_bytes())
    data[data.index(b"ID=test")] = ord("X")
    blob.write_bytes(bytes(data))
    with open_image(base_ref) as base, pytest.raises(DigestMismatchError):
        write_image(f"oci:{tmp_path / 'out'}", [], {}, base=base)
    assert not (tmp_path / "out").exists()


@pytest.mark.registry
def test_push_to_registry(tmp_path: Path, registry: Any, docker_config: Path) -> None:
    from advisor.oci.loader import open_image

    ref = f"docker://{registry.host}/advisor/pushed:v1"
    written = write_image(ref, LAYERS, {"history": [{"created_by": "a"}, {"created_by": "b"}]})
    again = write_image(
        ref, LAYERS, {"history": [{"created_by": "a"}, {"created_by": "b"}]}
    )  # blobs exist
    assert again.manifest_digest == written.manifest_digest
    with open_image(ref) as image:
        assert image.digest == written.manifest_digest
        assert [layer.blob.digest for layer in image.layers] == [r.digest for r in written.layers]
    if shutil.which("skopeo"):
        out = subprocess.run(
            ["skopeo", "inspect", "--tls-verify=false", ref],
            capture_output=True,
            text=True,
            check=True,
        )
        assert json.loads(out.stdout)["Digest"] == written.manifest_digest


def test_special_files_are_refused_or_skipped(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "f").write_bytes(b"x")
    os.mkfifo(root / "pipe")
    with pytest.raises(BuildError, match="special file"):
        spec_from_dir(root)
    assert sorted(spec_from_dir(root, skip_special=True)) == ["f"]
