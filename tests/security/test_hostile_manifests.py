"""Lying and hostile manifests, configs, indexes and archives: exit 3 with one clear line.

Library calls must raise ``BadInputError`` (or its ``DigestMismatchError``); the console
script must print ``error:``/``hint:``, exit 3 and never show a traceback.
"""

from __future__ import annotations

import io
import json
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from advisor.advise.facts.capture import capture_for
from advisor.errors import BadInputError, DigestMismatchError
from advisor.oci.layers import read_layers
from advisor.oci.loader import open_image
from tests.security.craft import (
    LAYER_GZIP,
    OCI_CONFIG,
    OCI_INDEX,
    OCI_MANIFEST,
    REPO,
    config_for,
    gz,
    member,
    put_blob,
    set_root,
    tar,
    write_layout,
)

LAYER = tar(member("etc/os-release", b"ID=debian\n"), member("app/main.py", b"print(1)\n"))
DEEP = b'{"a":' + b"[" * 100_000 + b"]" * 100_000 + b"}"
BIG_INT = b"9" * 5000


def _open_and_walk(ref: str) -> None:
    with open_image(ref) as image:
        read_layers(image, capture_for)


def _refused(ref: str) -> BadInputError:
    with pytest.raises(BadInputError) as info:
        _open_and_walk(ref)
    err = info.value
    assert err.message and "\n" not in err.message
    return err


def _cli(ref: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(REPO / ".venv/bin/advisor"), "advise", ref, "--format", "json"],
                          capture_output=True, text=True, timeout=120)


def _assert_cli_refuses(ref: str) -> None:
    proc = _cli(ref)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert proc.stderr.startswith("error: ") and proc.returncode == 3, proc.stderr


# -- each case: a function that writes a hostile layout and returns its reference -------------


def _tampered_layer(root: Path) -> str:
    layout = write_layout(root, [LAYER])
    blob = root / "blobs/sha256" / layout.manifest["layers"][0]["digest"].split(":")[1]
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob.write_bytes(bytes(data))  # same size, same name, other bytes
    return layout.ref


def _layer_size_lies(root: Path) -> str:
    good = write_layout(root / "x", [LAYER]).manifest
    man = json.loads(json.dumps(good))
    man["layers"][0]["size"] -= 7
    return write_layout(root, [LAYER], manifest=man).ref


def _layer_digest_lies(root: Path) -> str:
    other = put_blob(root, gz(tar(member("other", b"x"))))
    good = write_layout(root, [LAYER]).manifest
    man = json.loads(json.dumps(good))
    man["layers"][0]["digest"] = other["digest"]  # an existing blob, the wrong size
    return write_layout(root, [LAYER], manifest=man).ref


def _manifest_digest_lies(root: Path) -> str:
    layout = write_layout(root, [LAYER])
    index = json.loads((root / "index.json").read_text())
    desc = index["manifests"][0]
    path = root / "blobs/sha256" / desc["digest"].split(":")[1]
    body = path.read_bytes().replace(b'"schemaVersion": 2', b'"schemaVersion":  2')[: desc["size"]]
    path.write_bytes(body)
    return layout.ref


def _config_deep(root: Path) -> str:
    return write_layout(root, [LAYER], config=DEEP).ref


def _manifest_deep(root: Path) -> str:
    return write_layout(root, [LAYER], manifest=DEEP).ref


def _manifest_big_int(root: Path) -> str:
    return write_layout(root, [LAYER], manifest=b'{"schemaVersion": ' + BIG_INT + b"}").ref


def _config_big_int(root: Path) -> str:
    cfg = json.dumps(config_for([LAYER])).encode().replace(b'"os": "linux"', b'"os": ' + BIG_INT)
    return write_layout(root, [LAYER], config=cfg).ref


def _float_size(root: Path) -> str:
    man = json.loads(json.dumps(write_layout(root / "x", [LAYER]).manifest))
    body = json.dumps(man).replace(str(man["layers"][0]["size"]), "1e400", 1).encode()
    return write_layout(root, [LAYER], manifest=body).ref


def _huge_size(root: Path) -> str:
    man = json.loads(json.dumps(write_layout(root / "x", [LAYER]).manifest))
    man["config"]["size"] = 10**30
    return write_layout(root, [LAYER], manifest=man).ref


def _diff_ids_count_lies(root: Path) -> str:
    return write_layout(root, [LAYER], config=config_for([LAYER, LAYER])).ref


def _not_json(root: Path) -> str:
    return write_layout(root, [LAYER], manifest=b"\xff\xfe not json").ref


def _json_array(root: Path) -> str:
    return write_layout(root, [LAYER], config=b"[1, 2, 3]").ref


def _wrong_types(root: Path) -> str:
    return write_layout(root, [LAYER], manifest=b'{"schemaVersion": 2, "config": [], "layers": {}}').ref


def _unknown_layer_type(root: Path) -> str:
    return write_layout(root, [LAYER], media_type="application/x-evil").ref


def _index_self_loop(root: Path) -> str:
    # An index listing its own digest cannot hash right, so name the blob by a claimed digest.
    write_layout(root, [LAYER])
    claimed = "sha256:" + "ab" * 32
    body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX,
                       "manifests": [{"mediaType": OCI_INDEX, "digest": claimed, "size": 0}]}).encode()
    body = body.replace(b'"size": 0', b'"size": %d' % (len(body) + 0))
    (root / "blobs/sha256" / claimed.split(":")[1]).write_bytes(body)
    set_root(root, {"mediaType": OCI_INDEX, "digest": claimed, "size": len(body)})
    return f"oci:{root}:latest"


def _index_chain(root: Path) -> str:
    # Ten nested platform-less indexes, each hashing right: descent must stop, not recurse.
    layout = write_layout(root, [LAYER])
    desc: dict[str, Any] = json.loads((root / "index.json").read_text())["manifests"][0]
    desc = {k: desc[k] for k in ("mediaType", "digest", "size")}
    for _ in range(10):
        body = json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [desc]}).encode()
        desc = {"mediaType": OCI_INDEX, **put_blob(root, body)}
    set_root(root, desc)
    return layout.ref


def _blob_symlink_outside(root: Path) -> str:
    layout = write_layout(root, [LAYER])
    digest = layout.manifest["layers"][0]["digest"].split(":")[1]
    outside = root.parent / "outside-secret"
    outside.write_bytes((root / "blobs/sha256" / digest).read_bytes())
    (root / "blobs/sha256" / digest).unlink()
    (root / "blobs/sha256" / digest).symlink_to(outside)
    return layout.ref


def _docker_archive(root: Path, manifest: Any, extra: dict[str, bytes] | None = None,
                    links: dict[str, str] | None = None) -> str:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "img.tar"
    with tarfile.open(path, "w") as t:
        for name, data in {"manifest.json": json.dumps(manifest).encode(), **(extra or {})}.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            t.addfile(info, io.BytesIO(data))
        for name, target in (links or {}).items():
            info = tarfile.TarInfo(name)
            info.type = tarfile.SYMTYPE
            info.linkname = target
            t.addfile(info)
    return f"docker-archive:{path}"


def _archive_traversal(root: Path) -> str:
    cfg = json.dumps(config_for([LAYER])).encode()
    return _docker_archive(root, [{"Config": "../../../etc/passwd", "RepoTags": ["a:b"],
                                   "Layers": ["../../../../etc/shadow"]}], {"c.json": cfg})


def _archive_link_to_host(root: Path) -> str:
    cfg = json.dumps(config_for([LAYER])).encode()
    return _docker_archive(root, [{"Config": "c.json", "RepoTags": ["a:b"], "Layers": ["l/layer.tar"]}],
                           {"c.json": cfg}, links={"l/layer.tar": "/etc/passwd"})


def _archive_manifest_deep(root: Path) -> str:
    root.mkdir(parents=True, exist_ok=True)
    path = root / "img.tar"
    with tarfile.open(path, "w") as t:
        info = tarfile.TarInfo("manifest.json")
        info.size = len(DEEP)
        t.addfile(info, io.BytesIO(DEEP))
    return f"docker-archive:{path}"


def _archive_not_a_tar(root: Path) -> str:
    root.mkdir(parents=True, exist_ok=True)
    (root / "img.tar").write_bytes(b"\x1f\x8b" + b"\x00" * 100)
    return f"docker-archive:{root / 'img.tar'}"


Maker = Callable[[Path], str]
CASES: dict[str, Maker] = {
    "tampered-layer-blob": _tampered_layer,
    "layer-size-lies": _layer_size_lies,
    "layer-digest-lies": _layer_digest_lies,
    "manifest-digest-lies": _manifest_digest_lies,
    "float-size-1e400": _float_size,
    "size-10e30": _huge_size,
    "diff-ids-count-lies": _diff_ids_count_lies,
    "manifest-not-json": _not_json,
    "config-json-array": _json_array,
    "manifest-wrong-types": _wrong_types,
    "unknown-layer-media-type": _unknown_layer_type,
    "index-points-at-itself": _index_self_loop,
    "index-chain-10-deep": _index_chain,
    "blob-symlink-outside-layout": _blob_symlink_outside,
    "archive-path-traversal": _archive_traversal,
    "archive-link-to-host-file": _archive_link_to_host,
    "archive-corrupt-gzip": _archive_not_a_tar,
}
# Hostile JSON: json.loads raises RecursionError (deep nesting) or ValueError (digit limit);
# both must come out as bad input (exit 3), never as an internal error.
HOSTILE_JSON: dict[str, Maker] = {
    "config-deeply-nested": _config_deep,
    "manifest-deeply-nested": _manifest_deep,
    "manifest-5000-digit-int": _manifest_big_int,
    "config-5000-digit-int": _config_big_int,
    "archive-manifest-deeply-nested": _archive_manifest_deep,
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_image_is_refused(name: str, tmp_path: Path) -> None:
    ref = CASES[name](tmp_path / "img")
    err = _refused(ref)
    if name in ("tampered-layer-blob", "manifest-digest-lies"):
        assert isinstance(err, DigestMismatchError) or "bytes" in err.message


@pytest.mark.parametrize("name", sorted(HOSTILE_JSON))
def test_hostile_json_is_refused(name: str, tmp_path: Path) -> None:
    _refused(HOSTILE_JSON[name](tmp_path / "img"))


def test_blob_symlink_never_reads_the_target(tmp_path: Path) -> None:
    err = _refused(_blob_symlink_outside(tmp_path / "img"))
    assert "outside" in err.message


@pytest.mark.parametrize("name", ["tampered-layer-blob", "index-points-at-itself", "archive-link-to-host-file"])
def test_cli_exit_3_without_traceback(name: str, tmp_path: Path) -> None:
    _assert_cli_refuses(CASES[name](tmp_path / "img"))


def test_cli_deep_json_exit_3(tmp_path: Path) -> None:
    _assert_cli_refuses(_manifest_deep(tmp_path / "img"))


def test_manifest_media_types_are_the_documented_ones() -> None:
    # The constants this corpus writes must be the ones advisor accepts, or every case
    # above would be refused for the wrong reason.
    from advisor.oci.sources import manifests

    assert (manifests.OCI_MANIFEST, manifests.OCI_INDEX, manifests.OCI_CONFIG) == (
        OCI_MANIFEST, OCI_INDEX, OCI_CONFIG)
    assert LAYER_GZIP in manifests.LAYER_TYPES


def test_a_sound_layout_from_the_same_helpers_is_read(tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "ok", [LAYER])
    with open_image(layout.ref) as image:
        (tree,) = read_layers(image, capture_for)
    assert sorted(tree.entries) == ["app/main.py", "etc/os-release"]
    proc = _cli(layout.ref)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["schema_version"] == 1


def test_cli_reports_non_utf8_names_in_every_format(tmp_path: Path) -> None:
    site = b"usr/lib/python3/site-packages/b\xe4d-1.0.dist-info/"
    layer = tar(member(b"app/caf\xe9-\xff.bin", b"x" * 3_000_000),
                member(site + b"METADATA", b"Name: b\xe4d\nVersion: 1\n"),
                member(site + b"RECORD", b"b\xe4d/x.py,,\n"))
    layout = write_layout(tmp_path / "img", [layer])
    for fmt in ("json", "text", "markdown", "html"):
        out = tmp_path / f"report.{fmt}"
        proc = subprocess.run([str(REPO / ".venv/bin/advisor"), "advise", layout.ref, "--format", fmt,
                               "-o", str(out)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0 and "Traceback" not in proc.stderr, proc.stderr
        assert out.stat().st_size > 0
    doc = json.loads((tmp_path / "report.json").read_text())
    assert doc["image"]["size_bytes"] >= 3_000_000
