"""Local daemonless sources on real images built in the test: OCI layout, oci-archive, docker-archive.

Images come from advisor's writer (``tests.oci.helpers``); skopeo, an independent tool,
converts them between formats, and some archives are written by hand to reproduce what
``docker save`` emits (several images, gzip layers, symlinked layers, a gzipped archive).
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import shutil
import subprocess
import tarfile
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import zstandard

from advisor.errors import BadInputError, DigestMismatchError
from advisor.oci.loader import open_image
from advisor.oci.model import Image, Platform
from advisor.oci.tarball import write_tar
from tests.oci.helpers import make_image, make_image_written
from tests.registry_server import skopeo_copy

LAYERS: list[dict[str, Any]] = [
    {"etc/os-release": b"ID=test\n", "usr/bin/tool": b"\x7fELF" + b"\0" * 5000},
    {"app/main.py": b"print('hi')\n" * 100, "app/data.bin": bytes(range(256)) * 64},
    {"app/main.py": b"print('bye')\n"},
]


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def uncompressed(image: Image, index: int) -> bytes:
    layer = image.layers[index]
    with image.source.open_blob(layer.blob) as f:
        data = f.read()
    if layer.compression == "gzip":
        return gzip.decompress(data)
    if layer.compression == "zstd":
        return zstandard.ZstdDecompressor().stickread(data) if False else _unzstd(data)
    return data


def _unzstd(data: bytes) -> bytes:
    with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as r:
        return r.read()


def summary(image: Image) -> dict[str, Any]:
    return {
        "config": image.config.digest,
        "diff_ids": list(image.config.diff_ids),
        "history": [h.created_by for h in image.config.history],
        "uncompressed": [len(uncompressed(image, i)) for i in range(len(image.layers))],
    }


# -- the same image in every local format ------------------------------------------------------


def test_same_image_from_oci_oci_archive_and_docker_archive(tmp_path: Path) -> None:
    oci = make_image(tmp_path, LAYERS, history=["RUN a", "RUN b", "COPY c"])
    refs = {
        "oci": oci,
        "oci-archive": f"oci-archive:{tmp_path / 'img-oci.tar'}:v1",
        "docker-archive": f"docker-archive:{tmp_path / 'img-docker.tar'}:example/app:v1",
    }
    skopeo_copy(oci, refs["oci-archive"])
    skopeo_copy(oci, refs["docker-archive"])
    seen = {}
    oci_sizes: list[int] = []
    oci_digest = ""
    for fmt, ref in refs.items():
        with open_image(ref) as image:
            seen[fmt] = summary(image)
            blob_sizes = [layer.blob.size for layer in image.layers]
            if fmt == "oci-archive":
                assert blob_sizes == oci_sizes
            if fmt == "oci":
                oci_sizes, oci_digest = blob_sizes, image.digest
            if fmt == "docker-archive":
                assert blob_sizes == seen[fmt]["uncompressed"]  # docker save stores plain tars
            for i, layer in enumerate(image.layers):
                assert sha256(uncompressed(image, i)) == layer.diff_id
    assert seen["oci"] == seen["oci-archive"] == seen["docker-archive"]
    assert seen["oci"]["history"] == ["RUN a", "RUN b", "COPY c"]
    with open_image(refs["oci-archive"]) as image:
        assert image.digest == oci_digest


@pytest.mark.parametrize(
    ("compression", "suffix"),
    [("gzip", "tar+gzip"), ("zstd", "tar+zstd"), ("none", "v1.tar")],
)
def test_layer_compressions(tmp_path: Path, compression: str, suffix: str) -> None:
    ref, written = make_image_written(tmp_path, LAYERS, compression=compression)  # type: ignore[arg-type]
    with open_image(ref) as image:
        assert image.digest == written.manifest_digest
        assert [layer.compression for layer in image.layers] == [compression] * 3
        assert all(layer.blob.media_type.endswith(suffix) for layer in image.layers)
        for i, layer in enumerate(image.layers):
            assert sha256(uncompressed(image, i)) == layer.diff_id


def test_config_fields_are_parsed(tmp_path: Path) -> None:
    config = {
        "config": {
            "Env": ["PATH=/usr/bin", "PORT=8080"],
            "Entrypoint": ["python", "-m", "app"],
            "Cmd": ["--x"],
            "WorkingDir": "/app",
            "User": "1000:1000",
            "Labels": {"org.example": "yes"},
        }
    }
    ref = make_image(tmp_path, LAYERS[:1], config=config, history=["RUN x"])
    with open_image(ref) as image:
        c = image.config
        assert (c.os, c.architecture) == ("linux", "amd64")
        assert c.env == ("PATH=/usr/bin", "PORT=8080")
        assert c.entrypoint == ("python", "-m", "app") and c.cmd == ("--x",)
        assert (c.working_dir, c.user, dict(c.labels)) == (
            "/app",
            "1000:1000",
            {"org.example": "yes"},
        )
        assert c.raw["rootfs"]["diff_ids"] == list(c.diff_ids)
        assert image.compressed_size == sum(layer.blob.size for layer in image.layers)


# -- multi-platform indexes --------------------------------------------------------------------


def _index_layout(
    tmp_path: Path, nested: bool = False, in_index_json: bool = False, tag_entries: bool = False
) -> tuple[Path, dict[str, str]]:
    """One layout holding an amd64 and an arm64/v8 image behind an index (maybe two deep)."""
    layout = tmp_path / "multi"
    entries = []
    digests: dict[str, str] = {}
    for arch in ("amd64", "arm64"):
        ref, written = make_image_written(
            tmp_path, [{f"arch-{arch}": arch.encode()}], config={"architecture": arch}, name=arch
        )
        src = Path(ref.split(":")[1])
        if not layout.exists():
            shutil.copytree(src, layout)
        shutil.copytree(src / "blobs", layout / "blobs", dirs_exist_ok=True)
        digest = written.manifest_digest
        size = (layout / "blobs" / "sha256" / digest[7:]).stat().st_size
        digests[arch] = digest
        platform = {
            "os": "linux",
            "architecture": arch,
            **({"variant": "v8"} if arch == "arm64" else {}),
        }
        entries.append(
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": digest,
                "size": size,
                "platform": platform,
            }
        )
    entries.append(  # attestation-like entry that must never be picked
        {**entries[0], "platform": {"os": "unknown", "architecture": "unknown"}}
    )
    if tag_entries:  # one tag on every platform's entry, as some exporters write it
        entries = [
            {**e, "annotations": {"org.opencontainers.image.ref.name": "multi"}} for e in entries
        ]
    if in_index_json:
        _write_json(layout / "index.json", {"schemaVersion": 2, "manifests": entries})
        return layout, digests
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }
    top = _put_blob(layout, index)
    if nested:
        top = _put_blob(
            layout, {"schemaVersion": 2, "mediaType": index["mediaType"], "manifests": [top]}
        )
    top["annotations"] = {"org.opencontainers.image.ref.name": "multi"}
    _write_json(layout / "index.json", {"schemaVersion": 2, "manifests": [top]})
    return layout, digests


def _write_json(path: Path, obj: Any) -> bytes:
    body = json.dumps(obj).encode()
    path.write_bytes(body)
    return body


def _put_blob(
    layout: Path, obj: Any, media_type: str = "application/vnd.oci.image.index.v1+json"
) -> dict[str, Any]:
    body = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
    (layout / "blobs" / "sha256" / hashlib.sha256(body).hexdigest()).write_bytes(body)
    return {"mediaType": media_type, "digest": sha256(body), "size": len(body)}


@pytest.mark.parametrize("shape", ["index", "nested", "index.json", "tagged-entries"])
def test_multi_platform_index_picks_the_platform(tmp_path: Path, shape: str) -> None:
    layout, digests = _index_layout(
        tmp_path,
        nested=shape == "nested",
        in_index_json=shape in ("index.json", "tagged-entries"),
        tag_entries=shape == "tagged-entries",
    )
    ref = f"oci:{layout}" if shape == "index.json" else f"oci:{layout}:multi"
    with open_image(ref) as image:  # default: this machine's platform (linux/amd64 here)
        assert image.config.architecture == "amd64"
    with open_image(ref, platform=Platform("linux", "arm64", "v8")) as image:
        assert image.config.architecture == "arm64"
        assert image.digest == digests["arm64"]
    with pytest.raises(BadInputError) as info:
        open_image(ref, platform=Platform("linux", "ppc64le"))
    assert "linux/amd64, linux/arm64/v8" in info.value.hint
    assert "unknown" not in info.value.hint


# -- broken images -----------------------------------------------------------------------------


def _layout(tmp_path: Path) -> tuple[str, Path, dict[str, Any]]:
    ref, written = make_image_written(tmp_path, LAYERS)
    return ref, Path(ref.split(":")[1]), dict(written.manifest)


def _blob_path(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":")[1]


def _repoint(
    layout: Path,
    manifest: bytes | dict[str, Any],
    media_type: str = "application/vnd.oci.image.manifest.v1+json",
) -> None:
    desc = _put_blob(
        layout,
        manifest if isinstance(manifest, bytes) else json.dumps(manifest).encode(),
        media_type,
    )
    desc["annotations"] = {"org.opencontainers.image.ref.name": "latest"}
    _write_json(layout / "index.json", {"schemaVersion": 2, "manifests": [desc]})


def test_corrupt_layer_blob_is_a_digest_mismatch(tmp_path: Path) -> None:
    ref, layout, manifest = _layout(tmp_path)
    path = _blob_path(layout, manifest["layers"][1]["digest"])
    data = bytearray(path.read_bytes())
    data[20] ^= 0xFF
    path.write_bytes(bytes(data))
    with open_image(ref) as image:
        with image.source.open_blob(image.layers[0].blob) as f:
            f.read()  # the untouched layer reads fine
        with (
            pytest.raises(DigestMismatchError) as info,
            image.source.open_blob(image.layers[1].blob) as f,
        ):
            while f.read(7):
                pass
    assert info.value.exit_code == 3 and info.value.hint
    assert info.value.expected == manifest["layers"][1]["digest"]


def test_truncated_and_missing_blobs(tmp_path: Path) -> None:
    ref, layout, manifest = _layout(tmp_path)
    first, second = (_blob_path(layout, layer["digest"]) for layer in manifest["layers"][:2])
    first.write_bytes(first.read_bytes()[:-3])
    second.unlink()
    with open_image(ref) as image:
        with pytest.raises(BadInputError, match="bytes, its descriptor says"):
            image.source.open_blob(image.layers[0].blob)
        with pytest.raises(BadInputError, match="missing") as info:
            image.source.open_blob(image.layers[1].blob)
        assert info.value.hint


def test_missing_config_blob(tmp_path: Path) -> None:
    ref, layout, manifest = _layout(tmp_path)
    _blob_path(layout, manifest["config"]["digest"]).unlink()
    with pytest.raises(BadInputError, match="missing"):
        open_image(ref)


def test_tampered_manifest_is_a_digest_mismatch(tmp_path: Path) -> None:
    ref, layout, _ = _layout(tmp_path)
    index = json.loads((layout / "index.json").read_bytes())
    path = _blob_path(layout, index["manifests"][0]["digest"])
    path.write_bytes(path.read_bytes().replace(b"schemaVersion", b"schemaVersioN"))
    with pytest.raises(DigestMismatchError):
        open_image(ref)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m, c: (b"{not json", c), "not valid JSON"),
        (lambda m, c: ({**m, "layers": "nope"}, c), "'layers' should be a list"),
        (
            lambda m, c: ({**m, "config": {**m["config"], "size": "12"}}, c),
            "'size' should be a int",
        ),
        (lambda m, c: (m, b"[1, 2]"), "not an object"),
        (lambda m, c: (m, {k: v for k, v in c.items() if k != "rootfs"}), "has no 'rootfs'"),
        (lambda m, c: (m, {**c, "rootfs": {"diff_ids": [1]}}), "diff_ids should be digest strings"),
        (lambda m, c: (m, {**c, "rootfs": {"diff_ids": []}}), "3 layers but the config 0"),
        (lambda m, c: (m, {**c, "history": "x"}), "'history' should be a list"),
    ],
)
def test_malformed_manifest_or_config(
    tmp_path: Path, mutate: Callable[..., Any], message: str
) -> None:
    ref, layout, manifest = _layout(tmp_path)
    config = json.loads(_blob_path(layout, manifest["config"]["digest"]).read_bytes())
    new_manifest, new_config = mutate(manifest, config)
    if new_config is not config:
        body = new_config if isinstance(new_config, bytes) else json.dumps(new_config).encode()
        desc = _put_blob(layout, body, "application/vnd.oci.image.config.v1+json")
        new_manifest = {**new_manifest, "config": desc}
    _repoint(layout, new_manifest)
    with pytest.raises(BadInputError, match=message) as info:
        open_image(ref)
    assert info.value.exit_code == 3


@pytest.mark.parametrize(
    ("where", "media_type"),
    [
        ("manifest", "application/vnd.example.manifest+json"),
        ("manifest", "application/vnd.docker.distribution.manifest.v1+prettyjws"),
        ("config", "application/vnd.example.config+json"),
        ("layer", "application/vnd.example.layer.tar+lz4"),
    ],
)
def test_unknown_media_types_are_named(tmp_path: Path, where: str, media_type: str) -> None:
    ref, layout, manifest = _layout(tmp_path)
    if where == "manifest":
        manifest = {**manifest, "mediaType": media_type}
    elif where == "config":
        manifest = {**manifest, "config": {**manifest["config"], "mediaType": media_type}}
    else:
        manifest = {
            **manifest,
            "layers": [{**manifest["layers"][0], "mediaType": media_type}, *manifest["layers"][1:]],
        }
    _repoint(layout, manifest)
    with pytest.raises(BadInputError, match=media_type.replace("+", r"\+")) as info:
        open_image(ref)
    assert info.value.hint


def test_layout_errors(tmp_path: Path) -> None:
    ref, layout, _ = _layout(tmp_path)
    with pytest.raises(BadInputError, match="no image tagged 'v9'") as info:
        open_image(f"oci:{layout}:v9")
    assert "latest" in info.value.hint
    with pytest.raises(BadInputError, match="no OCI layout directory"):
        open_image(f"oci:{tmp_path / 'absent'}")
    with pytest.raises(BadInputError, match="no such file"):
        open_image(f"oci-archive:{tmp_path / 'absent.tar'}")
    (layout / "oci-layout").unlink()
    with pytest.raises(BadInputError, match="oci-layout"):
        open_image(ref)
    (tmp_path / "junk.tar").write_bytes(b"this is not a tar" * 100)
    with pytest.raises(BadInputError, match="not a readable tar"):
        open_image(f"docker-archive:{tmp_path / 'junk.tar'}")


# -- docker save archives, written as docker does ----------------------------------------------


def _layer_tar(files: dict[str, bytes]) -> bytes:
    out = io.BytesIO()
    write_tar(files, out)
    return out.getvalue()


def _docker_archive(
    path: Path,
    images: list[tuple[list[str], list[bytes]]],
    *,
    gzip_layers: bool = False,
    symlink_shared: bool = False,
    blobs_layout: bool = False,
) -> None:
    """A ``docker save`` tar; each image is (RepoTags, layer tars)."""
    members: dict[str, bytes] = {}
    links: dict[str, str] = {}
    entries = []
    for tags, tars in images:
        diff_ids = [sha256(t) for t in tars]
        config = json.dumps(
            {
                "architecture": "amd64",
                "os": "linux",
                "rootfs": {"type": "layers", "diff_ids": diff_ids},
                "history": [{"created_by": "RUN x"} for _ in tars],
            }
        ).encode()
        config_name = (
            f"blobs/sha256/{sha256(config)[7:]}" if blobs_layout else f"{sha256(config)[7:]}.json"
        )
        members[config_name] = config
        names = []
        for t in tars:
            stored = gzip.compress(t, mtime=0) if gzip_layers else t
            name = (
                f"blobs/sha256/{sha256(stored)[7:]}"
                if blobs_layout
                else f"{sha256(t)[7:19]}/layer.tar"
            )
            if symlink_shared and name in members:
                link_name = f"{sha256(config)[7:19]}-{len(names)}/layer.tar"
                links[link_name] = f"../{name}"
                name = link_name
            else:
                members[name] = stored
            names.append(name)
        entries.append({"Config": config_name, "RepoTags": tags, "Layers": names})
    members["manifest.json"] = json.dumps(entries).encode()
    with tarfile.open(path, "w") as tar:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        for name, target in links.items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            tar.addfile(info)


BASE = _layer_tar({"etc/base": b"base" * 100})
APP1 = _layer_tar({"app/one": b"1" * 3000})
APP2 = _layer_tar({"app/two": b"2" * 5000})


def test_docker_archive_with_several_images(tmp_path: Path) -> None:
    path = tmp_path / "two.tar"
    _docker_archive(
        path,
        [(["app:one"], [BASE, APP1]), (["registry.example/app:two", "app:latest"], [BASE, APP2])],
        symlink_shared=True,
    )
    with open_image(f"docker-archive:{path}:app:one") as image:
        assert image.config.diff_ids == (sha256(BASE), sha256(APP1))
    for ref in (
        f"docker-archive:{path}:registry.example/app:two",
        f"docker-archive:{path}:app",
        f"docker-archive:{path}:@1",
    ):
        with open_image(ref) as image:
            assert image.config.diff_ids == (sha256(BASE), sha256(APP2))
            assert len(uncompressed(image, 0)) == len(BASE)  # the symlinked shared layer
    with pytest.raises(BadInputError, match="holds 2 images") as info:
        open_image(f"docker-archive:{path}")
    assert "app:one" in info.value.hint
    with pytest.raises(BadInputError, match="no image tagged 'app:three'"):
        open_image(f"docker-archive:{path}:app:three")
    with pytest.raises(BadInputError, match="there is no @2"):
        open_image(f"docker-archive:{path}:@2")


@pytest.mark.parametrize("blobs_layout", [False, True])
def test_docker_archive_with_gzip_layers(tmp_path: Path, blobs_layout: bool) -> None:
    path = tmp_path / "gz.tar"
    _docker_archive(path, [(["app:1"], [BASE, APP1])], gzip_layers=True, blobs_layout=blobs_layout)
    with open_image(f"docker-archive:{path}") as image:
        assert [layer.compression for layer in image.layers] == ["gzip", "gzip"]
        assert image.layers[1].blob.digest == sha256(gzip.compress(APP1, mtime=0))
        assert uncompressed(image, 1) == APP1


def test_gzipped_docker_archive_and_identical_digest(tmp_path: Path) -> None:
    plain = tmp_path / "plain.tar"
    _docker_archive(plain, [(["app:1"], [BASE, APP1])])
    packed = tmp_path / "packed.tar.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    with open_image(f"docker-archive:{plain}") as a, open_image(f"docker-archive:{packed}") as b:
        assert a.digest == b.digest
        assert uncompressed(b, 1) == APP1


def test_gzipped_docker_archive_bomb_stops_before_the_disk_fills(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    # 256 MiB of zeros in a 260 kB .tar.gz: spooling it must stop while the reserve is free
    # (the reserve is set to what is free now minus 8 MiB, so the real check trips).
    from advisor.oci.sources import base

    bomb = io.BytesIO()
    with tarfile.open(fileobj=bomb, mode="w") as tar:
        info = tarfile.TarInfo("zeros")
        info.size = 256 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    packed = tmp_path / "bomb.tar.gz"
    packed.write_bytes(gzip.compress(bomb.getvalue(), compresslevel=1))
    assert packed.stat().st_size < 2 << 20
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(base, "SPOOL_RESERVE_BYTES", shutil.disk_usage(tmp_path).free - (8 << 20))
    with pytest.raises(BadInputError, match="expands past the free space") as info:
        open_image(f"docker-archive:{packed}")
    assert "TMPDIR" in info.value.hint
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.tar.gz"]


def test_docker_archive_layer_that_lies_about_its_diff_id(tmp_path: Path) -> None:
    path = tmp_path / "lie.tar"
    _docker_archive(path, [(["app:1"], [BASE, APP1])])
    data = path.read_bytes()
    offset = data.index(b"1" * 3000)
    path.write_bytes(data[:offset] + b"X" + data[offset + 1 :])
    with open_image(f"docker-archive:{path}") as image, pytest.raises(DigestMismatchError):
        uncompressed(image, 1)


def test_oci_archive_is_read_in_place(tmp_path: Path) -> None:
    """Reading an oci-archive creates no file next to it or in the temp dir."""
    ref = make_image(tmp_path, LAYERS, fmt="oci-archive")
    before = sorted(p.name for p in tmp_path.iterdir())
    with open_image(ref) as image:
        assert [len(uncompressed(image, i)) for i in range(3)]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    listing = subprocess.run(
        ["tar", "tf", ref.split(":")[1]], capture_output=True, text=True, check=True
    )
    assert "index.json" in listing.stdout
