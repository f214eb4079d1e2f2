"""A small fat image on the cached Debian base, built in the test without a daemon: real
pip-installed distributions (their RECORD, their bytecode) under Debian's dist-packages, a pip
cache, a test suite inside a package, a dev tool (pytest and what only it needs), and a
``COPY . .`` app with its ``.git``. The app is a stdlib HTTP server on $PORT that imports
``requests`` and ``rich``; ``hidden_import`` makes it also import a dev-tool module through
``importlib`` (invisible to advise's static closure: the removal that breaks it); ``model``
adds a model folder in two weight formats, served on POST /predict from the ``.bin`` when
it is there (dropping it changes every label: the removal the prediction check catches)."""

from __future__ import annotations

import importlib.metadata
import os
import posixpath
from pathlib import Path

from advisor.oci.tarball import FileSpec

SITE = "usr/local/lib/python3.11/dist-packages"
RUNTIME = ("requests", "urllib3", "idna", "certifi", "charset-normalizer", "rich", "markdown-it-py",
           "mdurl", "pygments")
DEV = ("pytest", "pluggy", "iniconfig")

APP = '''\
import importlib
import json
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

import requests
import rich

HIDDEN = {hidden!r}
if HIDDEN:
    importlib.import_module(HIDDEN)
MODEL = "/app/model"
WEIGHTS = None
for name in ("pytorch_model.bin", "model.safetensors"):  # the .bin first, as old code does
    if os.path.exists(os.path.join(MODEL, name)):
        with open(os.path.join(MODEL, name), "rb") as f:
            WEIGHTS = f.read(1)[0]
        break


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        texts = json.loads(self.rfile.read(int(self.headers["Content-Length"])))["texts"]
        labels = ["POSITIVE" if (len(t) + WEIGHTS) % 2 else "NEGATIVE" for t in texts]
        body = json.dumps({{"predictions": [{{"label": x, "score": 1.0}} for x in labels]}}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        body = json.dumps({{"status": "ok", "requests": requests.__version__}}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
'''


def _installed(names: tuple[str, ...]) -> dict[str, FileSpec | bytes]:
    """Every file of the named distributions (RECORD's list, bytecode included)."""
    layer: dict[str, FileSpec | bytes] = {}
    for name in names:
        dist = importlib.metadata.distribution(name)
        files = {str(f) for f in dist.files or []}
        root = Path(str(dist.locate_file("")))
        for top in {f.split("/", 1)[0] for f in files if "/" in f and not f.startswith("..")}:
            for pyc in (root / top).rglob("*.pyc"):  # pip compiles these, RECORD may not list them
                files.add(str(pyc.relative_to(root)))
        for f in sorted(files):
            src = root / f
            if src.is_file() and not f.startswith(".."):
                layer[posixpath.join(SITE, f)] = FileSpec(source=src, mode=0o644)
    return layer


def fat_layers(hidden_import: str = "", entry: str = "main.py",
               model: bool = False) -> tuple[list[dict[str, FileSpec | bytes]], dict]:
    runtime = _installed(RUNTIME)
    runtime[f"{SITE}/idna/tests/test_idna.py"] = b"def test_nothing():\n    pass\n" * 400
    runtime[f"{SITE}/idna/tests/__init__.py"] = b"# tests\n"
    runtime["root/.cache/pip/http-v2/a/b/c/blob"] = os.urandom(1_500_000)
    runtime["root/.cache/pip/wheels/ab/cd/rich-13-py3-none-any.whl"] = os.urandom(400_000)
    dev = _installed(DEV)
    app = {
        "app/main.py": APP.format(hidden=hidden_import).encode(),
        "app/.git/HEAD": b"ref: refs/heads/main\n",
        "app/.git/objects/pack/pack-1.pack": os.urandom(600_000),
    }
    if model:  # one model in two formats whose first bytes give different labels
        app["app/model/config.json"] = b'{"model_type": "bert", "architectures": ["BertForSequenceClassification"]}'
        app["app/model/model.safetensors"] = b"\x01" + os.urandom(300_000)
        app["app/model/pytorch_model.bin"] = b"\x00" + os.urandom(500_000)
    config = {
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
            "Cmd": ["python3", f"/app/{entry}"],
            "WorkingDir": "/app",
            "ExposedPorts": {"8080/tcp": {}},
        },
        "history": [
            {"created_by": "RUN /bin/sh -c pip install requests rich # buildkit"},
            {"created_by": "RUN /bin/sh -c pip install pytest # buildkit"},
            {"created_by": "COPY . /app # buildkit"},
        ],
    }
    return [runtime, dev, app], config


def build_fat(dest: str, base_ref: str, hidden_import: str = "", entry: str = "main.py",
              model: bool = False) -> str:
    from advisor.oci.loader import open_image
    from advisor.oci.writer import write_image

    layers, config = fat_layers(hidden_import, entry, model)
    with open_image(base_ref) as base:
        return write_image(dest, layers, config, base=base).reference
