"""End to end on real images: real pip-installed distributions (the files this venv holds,
RECORD and all) written as image layers, read back daemonlessly, advised; then the fix is
applied by building the image again without what the recommendations remove, and the bytes
actually freed are compared with the estimates."""

from __future__ import annotations

import importlib.metadata
import json
import os
import posixpath
from pathlib import Path

import pytest

from advisor import advise
from advisor.advise import Advice, AdviseConfig
from advisor.report.advise import render
from tests.oci.helpers import FileSpec, make_image

SITE = "usr/local/lib/python3.11/site-packages"
DEV = ("pytest", "pluggy", "iniconfig", "packaging")
RUNTIME = ("requests", "urllib3", "idna", "certifi", "charset-normalizer", "rich", "markdown-it-py", "mdurl", "pygments")


def _installed(names: tuple[str, ...]) -> tuple[dict[str, FileSpec], dict[str, int]]:
    """Layer entries for real installed distributions, and each one's `du` (sum of its file sizes)."""
    layer: dict[str, FileSpec] = {}
    du: dict[str, int] = {}
    for name in names:
        dist = importlib.metadata.distribution(name)
        total = 0
        for f in dist.files or []:
            src = Path(str(f.locate()))
            if not src.is_file():
                continue
            path = posixpath.normpath(posixpath.join(SITE, str(f)))
            if path not in layer:
                layer[path] = FileSpec(source=src)
                total += src.stat().st_size
        du[name] = total
    return layer, du


def _base() -> dict[str, FileSpec | bytes]:
    status = "".join(
        f"Package: {p}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.{i}\nInstalled-Size: 10\n\n"
        for i, p in enumerate(("libc6", "gcc-12", "perl", "git", "libc6-dev")))
    files: dict[str, FileSpec | bytes] = {
        "etc/os-release": b'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n',
        "var/lib/dpkg/status": status.encode(),
        "usr/local/bin/python3.11": os.urandom(64_000),
    }
    for p, blob in (("gcc-12", "usr/libexec/gcc/x86_64-linux-gnu/12/cc1"), ("perl", "usr/bin/perl"),
                    ("git", "usr/bin/git"), ("libc6-dev", "usr/include/stdio.h"), ("libc6", "usr/lib/x86_64-linux-gnu/libc.so.6")):
        files[f"var/lib/dpkg/info/{p}.list"] = f"/.\n/{blob}\n".encode()
        files[blob] = os.urandom(300_000)
    return files


def _layers(with_dev: bool, with_cache: bool) -> tuple[list, list[str], dict[str, int]]:
    runtime, du = _installed(RUNTIME)
    layers: list = [_base(), runtime]
    history = ["/bin/sh -c #(nop) ADD file:base in / ", '/bin/sh -c #(nop)  CMD ["python3"]',
               "RUN /bin/sh -c pip install requests rich # buildkit"]
    if with_dev:
        dev, du_dev = _installed(DEV)
        du.update(du_dev)
        layers.append(dev)
        history.append("RUN /bin/sh -c pip install --no-cache-dir pytest # buildkit")
    if with_cache:
        layers[1] = {**runtime, "root/.cache/pip/http-v2/0/1/blob": os.urandom(2_000_000),
                     "root/.cache/pip/wheels/ab/requests.whl": os.urandom(700_000)}
    layers.append({"app/main.py": b"import requests, rich\n", "app/.git/objects/pack/p.pack": os.urandom(500_000)})
    history.append("COPY . /app # buildkit")
    return layers, history, du


def _history(lines: list[str]) -> list[dict[str, object]]:
    return [{"created_by": ln, "empty_layer": "#(nop)  CMD" in ln} for ln in lines]


def _advise(ref: str) -> Advice:
    """What `advisor advise` runs (the layer cache off: every layer walked here)."""
    return advise.run(AdviseConfig(image=ref, use_cache=False))


@pytest.fixture(scope="module")
def fat(tmp_path_factory: pytest.TempPathFactory) -> tuple[Advice, dict[str, int], Path]:
    tmp = tmp_path_factory.mktemp("fat")
    layers, history, du = _layers(with_dev=True, with_cache=True)
    ref = make_image(tmp, layers, fmt="docker-archive",
                     config={"config": {"WorkingDir": "/app", "Cmd": ["python", "main.py"]}, "history": _history(history)})
    return _advise(ref), du, tmp


def test_real_distributions_match_du(fat: tuple) -> None:
    advice, du, _tmp = fat
    rows = {d.key: d for d in advice.distributions}
    for name, size in du.items():
        key = name.lower()
        assert abs(rows[key].size_bytes - size) <= 0.01 * size, (name, rows[key].size_bytes, size)
    assert [e["path"] for e in advice.environments] == [SITE]


def test_findings_present_and_absent(fat: tuple) -> None:
    advice, _du, _tmp = fat
    rules = {f.rule for f in advice.findings}
    assert {"py-dev-tools", "py-pip-cache", "dockerfile-pip-cache", "vcs-git-dir", "os-full-base",
            "dockerfile-no-multistage", "dockerfile-copy-context"} <= rules
    assert not rules & {"ml-cuda-torch", "ml-onnx-export", "model-duplicate-formats", "os-apt-lists", "layer-hidden-bytes"}
    (dev,) = [f for f in advice.findings if f.rule == "py-dev-tools"]
    assert set(dev.data["removed_distributions"]) == set(DEV)  # pygments stays: rich needs it
    (pip,) = [f for f in advice.findings if f.rule == "dockerfile-pip-cache"]
    assert pip.data["step"] == 2  # the RUN without --no-cache-dir, not the one with it
    data = json.loads(render(advice, "json"))
    assert data["image"]["compressed_size_bytes"] > 0 and len(data["layers"]) == 4
    assert data["image"]["base_layers"] == 1
    (base,) = [f for f in advice.findings if f.rule == "os-full-base"]
    assert base.data["base_layers"] == 1 and "the base layers are" in base.message


def test_estimates_match_the_rebuilt_image(fat: tuple) -> None:
    """Apply remove-dev-tools and clean-caches for real: rebuild without them and measure."""
    advice, _du, tmp = fat
    recs = {r.id: r for r in advice.recommendations}
    layers, history, _ = _layers(with_dev=False, with_cache=False)
    ref = make_image(tmp, layers, fmt="oci", config={"history": _history(history)}, name="fixed")
    fixed = _advise(ref)
    # The dev tools' console scripts live in usr/local/bin: part of what they free.
    actual = advice.size_bytes - fixed.size_bytes
    estimated = recs["remove-dev-tools"].estimated_savings_bytes + recs["clean-caches"].estimated_savings_bytes
    assert abs(estimated - actual) <= 0.10 * actual, (estimated, actual)
