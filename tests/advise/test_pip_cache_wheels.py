"""Leaving a package out of requirements.txt also leaves its wheel out of pip's cache.

Real images: the dev tools this venv holds (pytest and what only it needs) installed next to
a runtime package, with pip's HTTP cache holding each one's wheel (a real zip of the installed
files, dist-info last, as pip caches the downloaded wheel); then the image rebuilt the way
`pip install` would build it without the dev tools: their files and their cached wheels gone,
the runtime wheel still cached. remove-dev-tools' estimate must be within 10 % of what that
freed (the case study's fidelity target).
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import io
import posixpath
import zipfile
from pathlib import Path

import pytest

from advisor import advise
from advisor.advise import AdviseConfig
from advisor.advise.facts.pipcache import cached_wheel_owner
from tests.oci.helpers import FileSpec, make_image

SITE = "usr/local/lib/python3.11/site-packages"
DEV = ("pytest", "pluggy", "iniconfig")
RUNTIME = ("requests", "urllib3", "idna", "certifi", "charset-normalizer")
HISTORY = ["/bin/sh -c #(nop) ADD file:base in / ", '/bin/sh -c #(nop)  CMD ["python3"]',
           "/bin/sh -c pip install -r requirements.txt", "/bin/sh -c #(nop) COPY dir:app in . "]  # fmt: skip


def _files(name: str) -> list[tuple[str, Path]]:
    """(path in site-packages, source) of one installed distribution, dist-info last."""
    dist = importlib.metadata.distribution(name)
    out = [(str(f), Path(str(f.locate()))) for f in dist.files or [] if "__pycache__" not in str(f)]
    out = [(p, s) for p, s in out if s.is_file()]
    return sorted(out, key=lambda ps: (".dist-info/" in ps[0], ps[0].endswith("RECORD"), ps[0]))


def _wheel(name: str) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for path, src in _files(name):
            if not path.startswith(".."):  # console scripts: pip writes them, the wheel has none
                z.write(src, path)
    return buf.getvalue()


def _cache_entry(name: str) -> dict[str, bytes]:
    """pip >= 23.3's HTTP cache: a hashed name, the response headers and the body (the wheel)."""
    key = hashlib.sha224(name.encode()).hexdigest()
    where = f"root/.cache/pip/http-v2/{'/'.join(key[:5])}/{key}"
    return {where: b"cc=4,headers", f"{where}.body": _wheel(name)}


def _layers(names: tuple[str, ...]) -> list[dict[str, FileSpec | bytes]]:
    installed: dict[str, FileSpec | bytes] = {}
    for name in names:
        installed |= {posixpath.normpath(posixpath.join(SITE, p)): FileSpec(source=s) for p, s in _files(name)}
        installed |= _cache_entry(name)
    base: dict[str, FileSpec | bytes] = {"etc/os-release": b'ID=debian\nVERSION_ID="12"\n',
                                         "usr/local/bin/python3.11": b"\x7fELF" + bytes(60_000)}
    return [base, installed, {"app/main.py": b"import requests\n"}]


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    tmp = tmp_path_factory.mktemp("pipcache")
    config = {"config": {"WorkingDir": "/app", "Cmd": ["python", "main.py"]},
              "history": [{"created_by": h, "empty_layer": "CMD" in h} for h in HISTORY]}
    fat = make_image(tmp, _layers(RUNTIME + DEV), config=config, name="fat")
    lean = make_image(tmp, _layers(RUNTIME), config=config, name="lean")
    return fat, lean


def test_cached_wheels_are_named_from_their_tail(images: tuple[str, str]) -> None:
    advice = advise.run(AdviseConfig(image=images[0], use_cache=False))
    (dev,) = [f for f in advice.findings if f.rule == "py-dev-tools"]
    cached = [p for p in dev.frees if "/.cache/pip/" in p]
    assert len(cached) == len(DEV) and all(p.endswith(".body") for p in cached)
    assert "of it their wheels in pip's cache" in dev.message
    assert cached_wheel_owner("root/.cache/pip/wheels/ab/cd/Jupyter_Core-5.7.2-py3-none-any.whl", None) == "jupyter-core"
    assert cached_wheel_owner("root/.cache/pip/http-v2/a/b/c/d/e/f.body", None) is None  # no tail: unknown


def test_remove_dev_tools_estimate_within_10_percent_of_the_rebuilt_image(images: tuple[str, str]) -> None:
    fat = advise.run(AdviseConfig(image=images[0], use_cache=False))
    lean = advise.run(AdviseConfig(image=images[1], use_cache=False))
    (rec,) = [r for r in fat.recommendations if r.id == "remove-dev-tools"]
    freed = fat.size_bytes - lean.size_bytes
    assert abs(rec.standalone_savings_bytes - freed) <= 0.10 * freed, (rec.standalone_savings_bytes, freed)
