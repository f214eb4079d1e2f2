"""The case study's builder is buildah: real builds on the cached Debian base, read by advise.

buildah's store lives under $ADVISOR_CACHE (benchmarks/casestudy/buildah.py), so its layer
cache makes re-runs of these tests fast; the images they push go to tmp_path.
"""

from __future__ import annotations

import importlib.util
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

from advisor.errors import BuildError
from advisor.slim.debian_base import ensure_debian_base

CASESTUDY = Path(__file__).resolve().parents[2] / "benchmarks" / "casestudy"


def _load(name: str) -> ModuleType:
    """A benchmarks/casestudy module under a name that cannot clash (PyPI has a ``build``)."""
    sys.path.insert(0, str(CASESTUDY))
    spec = importlib.util.spec_from_file_location(f"casestudy_{name}", CASESTUDY / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


cs_build = _load("build")
bh = sys.modules["buildah"]  # the module build.py imports, so both see one set of classes


@pytest.fixture(scope="module")
def store() -> object:
    if shutil.which("buildah") is None:
        pytest.fail("buildah is missing: bash scripts/setup.sh installs it")
    return bh.Store()


@pytest.fixture(scope="module")
def base(store: object) -> str:
    return str(bh.import_layout(store, ensure_debian_base("full").reference, "advisor-test-debian"))


def _advise(ref: str, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "advisor.cli", "advise", ref, "--format", "json", *args],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_buildah_image_is_read_from_oci_and_docker_archive(store: object, base: str, tmp_path: Path) -> None:
    ctx = tmp_path / "ctx"
    ctx.mkdir()
    (ctx / "app.py").write_text("print('hello')\n")
    (ctx / "Dockerfile").write_text(
        "ARG BASE=debian:bookworm\nFROM ${BASE}\nWORKDIR /app\n"
        "RUN head -c 3000000 /dev/urandom > /app/blob && echo kept > /app/kept\n"
        "RUN rm /app/blob\nCOPY app.py .\nCMD [\"python3\", \"app.py\"]\n"
    )
    built = bh.build(store, bh.BuildConfig(ctx, "advisor-test-small", build_args={"BASE": base}))
    assert any("rm /app/blob" in layer.created_by for layer in built.layers)
    bh.push(store, built.tag, f"oci:{tmp_path / 'layout'}:small")
    bh.push(store, built.tag, f"docker-archive:{tmp_path / 'small.tar'}:small:latest")
    manifest = bh.read_manifest(tmp_path / "layout")
    assert {layer["mediaType"] for layer in manifest["layers"]} == {"application/vnd.oci.image.layer.v1.tar+gzip"}
    for layer in manifest["layers"]:  # gzip's XFL byte is 4 for the fastest level, 0 for the default
        blob = tmp_path / "layout" / "blobs" / "sha256" / layer["digest"].split(":", 1)[1]
        assert blob.read_bytes()[8] == 4, layer["digest"]
    # a layout of the same image with zstd layers (bench's umoci cannot unpack them) is redone
    subprocess.run([*store.argv(), "push", "--quiet", "--compression-format", "zstd", built.tag,
                    f"oci:{tmp_path / 'zstd'}:small"], check=True, capture_output=True)
    redone = bh.push(store, built.tag, f"oci:{tmp_path / 'zstd'}:small")
    assert {layer["mediaType"] for layer in redone["layers"]} == {"application/vnd.oci.image.layer.v1.tar+gzip"}
    reports = [_advise(f"oci:{tmp_path / 'layout'}:small"), _advise(f"docker-archive:{tmp_path / 'small.tar'}")]
    sizes = [layer.size_bytes for layer in built.layers]
    for report in reports:
        created = [layer["created_by"] for layer in report["layers"]]
        assert created[-3:] == ["/bin/sh -c head -c 3000000 /dev/urandom > /app/blob && echo kept > /app/kept",
                                "/bin/sh -c rm /app/blob", created[-1]] and " COPY " in created[-1]
        assert report["wasted_bytes"] >= 3_000_000  # the deleted blob still ships
        # buildah's diff sizes are tar bytes, advise's the files' bytes: never more
        assert all(a["size_bytes"] <= b for a, b in zip(report["layers"], sizes, strict=True))
    assert reports[0]["image"]["size_bytes"] == reports[1]["image"]["size_bytes"]
    # a second build is answered by buildah's own layer cache
    again = bh.build(store, bh.BuildConfig(ctx, "advisor-test-small", build_args={"BASE": base}))
    assert again.cached and again.image_id == built.image_id


@pytest.mark.parametrize(("body", "expected"), [
    ("RUN echo one\nRUN ls /nope && false\n", 'building at STEP "RUN ls /nope && false": exit status 2 '
     "(last output: ls: cannot access '/nope': No such file or directory)"),
    ("FOO bar\n", 'Unknown instruction: "FOO"'),
    ("COPY missing.txt /\n", 'building at STEP "COPY missing.txt /"'),
])
def test_rejected_dockerfile_gives_buildahs_error_in_one_line(
    store: object, base: str, tmp_path: Path, body: str, expected: str
) -> None:
    (tmp_path / "Dockerfile").write_text(f"FROM {base}\n{body}")
    with pytest.raises(BuildError) as e:
        bh.build(store, bh.BuildConfig(tmp_path, "advisor-test-bad"))
    assert e.value.exit_code == 6
    message = str(e.value)
    assert expected in message and "\n" not in message and "imagebuilder" not in message, message


FAT_APP = '''import os
from flask import Flask, jsonify, request

app = Flask(__name__)


@app.get("/health")
def health():
    return {"status": "ok", "uid": os.getuid()}


@app.post("/predict")
def predict():
    texts = request.get_json()["texts"]
    return jsonify({"predictions": [{"label": "POSITIVE" if "good" in t else "NEGATIVE"} for t in texts]})


if __name__ == "__main__":
    app.run(host="127.0.0.1", port=int(os.environ.get("PORT", "8080")))
'''

PYBASE = """ARG BASE=debian:bookworm
FROM ${BASE}
RUN apt-get update && apt-get install -y --no-install-recommends python3-venv python3-pip python-is-python3 \\
 && rm -rf /var/lib/apt/lists/* && rm -f /usr/lib/python3*/EXTERNALLY-MANAGED
"""

FAT = """ARG BASE=python:3.11
FROM ${BASE}
WORKDIR /app
RUN apt-get update && apt-get install -y curl
RUN pip install flask pytest
COPY . .
EXPOSE 8080
CMD ["python", "app.py"]
"""


def test_written_fixes_build_with_buildah_and_start(store: object, base: str, tmp_path: Path) -> None:
    from advisor.sandbox import runner

    pyctx = tmp_path / "pybase"
    pyctx.mkdir()
    (pyctx / "Dockerfile").write_text(PYBASE)
    with cs_build.wheel_server(tmp_path) as pip_dir:
        vols = cs_build.volumes(pip_dir)
        bh.build(store, bh.BuildConfig(pyctx, "advisor-test-pybase", build_args={"BASE": base}, volumes=vols))
        pybase = "localhost/advisor-test-pybase"
        app = tmp_path / "app"
        (app / ".git" / "objects").mkdir(parents=True)
        (app / ".git" / "objects" / "pack").write_bytes(b"x" * 200_000)
        (app / "app.py").write_text(FAT_APP)
        (app / "Dockerfile").write_text(FAT)
        bh.build(store, bh.BuildConfig(app, "advisor-test-fat", build_args={"BASE": pybase}, volumes=vols))
        bh.push(store, "advisor-test-fat", f"oci:{tmp_path / 'fat'}:fat")
        fixes = tmp_path / "fixes"
        _advise(f"oci:{tmp_path / 'fat'}:fat", "--write-fixes", str(fixes))
        dockerfile = (fixes / "Dockerfile").read_text()
        assert "ARG BUILD_BASE=python:3.11-slim-bookworm" in dockerfile and "USER 10001" in dockerfile
        assert "flask==" in (fixes / "requirements.txt").read_text().lower()
        assert "pytest==" in (fixes / "requirements-dev.txt").read_text()
        for f in fixes.iterdir():
            shutil.copyfile(f, app / f.name)
        built = bh.build(store, bh.BuildConfig(app, "advisor-test-fixed", volumes=vols,
                                               build_args={"BUILD_BASE": pybase, "BASE": base}))
    bh.push(store, built.tag, f"oci:{tmp_path / 'fixed'}:fixed")
    fat_report = _advise(f"oci:{tmp_path / 'fat'}:fat")
    fixed_report = _advise(f"oci:{tmp_path / 'fixed'}:fixed")
    assert fixed_report["image"]["size_bytes"] < fat_report["image"]["size_bytes"]
    assert "curl" in dockerfile and ".git" in (fixes / ".dockerignore").read_text()
    running = runner.run_image(f"oci:{tmp_path / 'fixed'}:fixed", timeout=120)
    try:
        conn = running.connection(timeout=30)
        conn.request("GET", "/health")
        health = json.loads(conn.getresponse().read())
        conn.request("POST", "/predict", json.dumps({"texts": ["good film", "bad film"]}),
                     {"Content-Type": "application/json"})
        answer = json.loads(conn.getresponse().read())
        conn.close()
    finally:
        running.stop()
    assert health["uid"] == 10001  # non-root, as the rewritten Dockerfile says
    assert [p["label"] for p in answer["predictions"]] == ["POSITIVE", "NEGATIVE"]


def test_quick_context_installs_its_own_requirements_and_commits_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The quick variant's requirements.txt is the context's (and its .git's), in a context of
    its own: the full one keeps the article's list."""
    monkeypatch.setenv("ADVISOR_CACHE", str(tmp_path / "cache"))
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "bert"}\n')
    quick = cs_build.stage_context(model, cs_build.QUICK_REQUIREMENTS)
    full = cs_build.stage_context(model)
    assert quick != full
    assert (quick / "requirements.txt").read_text() == cs_build.QUICK_REQUIREMENTS.read_text()
    assert "torchvision" in (full / "requirements.txt").read_text()
    committed = subprocess.run(["git", "show", "HEAD:requirements.txt"], cwd=quick, capture_output=True,
                               text=True, check=True).stdout
    assert committed == cs_build.QUICK_REQUIREMENTS.read_text()
    assert "torch==2.13.0" in committed.splitlines()  # the CPU wheel: CUDA torch cannot import small
    assert cs_build.stage_context(model, cs_build.QUICK_REQUIREMENTS) == quick  # cached by its inputs


def test_onestep_sizes_a_layer_as_buildah_does(store: object, base: str, tmp_path: Path) -> None:
    """``onestep.tar_size`` on a layer's files gives buildah's own diff size, and with files
    left out the size of the layer built without them (fidelity.py's derived variants)."""
    onestep = _load("onestep")
    long = "/opt/x/keep/" + "d" * 90 + "/" + "f" * 60  # too long for ustar's name field: PAX
    make = (f"mkdir -p /opt/x/keep /opt/x/empty $(dirname {long}) && head -c 1000 /dev/urandom > /opt/x/keep/a"
            f" && head -c 777 /dev/urandom > {long} && ln -s a /opt/x/keep/link")
    drop = " && mkdir -p /opt/x/drop/sub && head -c 5000 /dev/urandom > /opt/x/drop/sub/b"
    sizes = {}
    for name, run in (("full", make + drop), ("lean", make)):
        ctx = tmp_path / name
        ctx.mkdir()
        (ctx / "Dockerfile").write_text(f"ARG BASE=debian:bookworm\nFROM ${{BASE}}\nRUN {run}\n")
        built = bh.build(store, bh.BuildConfig(ctx, f"advisor-test-onestep-{name}", build_args={"BASE": base}))
        sizes[name] = built.layers[-1]
    layer = onestep.layer_dir(store, sizes["full"].diff_id)
    try:
        assert onestep.tar_size(layer) == sizes["full"].size_bytes
        assert onestep.tar_size(layer, lambda rel: not rel.startswith("opt/x/drop")) == sizes["lean"].size_bytes
    finally:
        for name in sizes:
            bh.remove_image(store, f"advisor-test-onestep-{name}")
