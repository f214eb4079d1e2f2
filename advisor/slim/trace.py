"""What the running server loads, found by running it: the ground truth for pruning.

``trace_server`` starts the staged server (``advisor.serve``'s own entry point, on the
staged deps, this interpreter without site-packages) on loopback with the model, serves
every route once (good and bad requests, concurrent ones, both Open Inference Protocol
tensor encodings), runs every task's head on the model's real encodings, stops it with
SIGTERM, and reports every file it imported, opened (an audit hook sees each ``open``) or
mapped (``/proc/self/maps``: shared libraries, however dlopen found them), with the
predictions it made. ``prune_unloaded`` then removes the files of the wheels' RECORDs that
none of that touched; the build traces the pruned tree again and requires the same files
and the same predictions, byte for byte.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import subprocess
import sys
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from advisor.errors import BuildError
from advisor.slim.probe import PythonTarget
from advisor.slim.wheels import rewrite_record

MACHINES = {"amd64": ("x86_64", "amd64"), "arm64": ("aarch64", "arm64")}

TRACE_SCRIPT = r"""
import http.client, io, json, os, signal, socket, struct, sys, threading, time
out_path, artifacts = sys.argv[1], sys.argv[2]
opened = set()
def audit(event, args):
    if event == "open" and isinstance(args[0], (str, bytes)):
        opened.add(os.fsdecode(args[0]))
sys.addaudithook(audit)

class Tee(io.TextIOBase):  # the banner names the port
    def __init__(self, inner): self.inner, self.text = inner, ""
    def write(self, s): self.text += s; return self.inner.write(s)
    def flush(self): self.inner.flush()
sys.stderr = Tee(sys.stderr)
os.environ.update(MODEL_DIR=artifacts, HOST="127.0.0.1", PORT="0", WORKERS="2", MAX_BATCH="8")
from advisor.serve.__main__ import main

TEXTS = ["a gripping, beautifully shot film", "dull", "Alice lives in Paris. " * 20]
answers = []

def call(port, method, path, body=None, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request(method, path, body=body, headers=headers or {})
    resp = conn.getresponse()
    data = resp.read()
    conn.close()
    return data

def raw(port, data):
    with socket.create_connection(("127.0.0.1", port), timeout=30) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        while s.recv(65536):
            pass

def v2(port, name):
    call(port, "GET", "/v2/models/" + name)
    call(port, "GET", "/v2/models/" + name + "/versions/1/ready")
    infer = "/v2/models/" + name + "/infer"
    doc = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [3], "data": TEXTS}]}
    answers.append(json.loads(call(port, "POST", infer, json.dumps(doc))))
    blob = b"".join(struct.pack("<I", len(t.encode())) + t.encode() for t in TEXTS)
    doc["inputs"][0] = {"name": "text", "datatype": "BYTES", "shape": [3],
                        "parameters": {"binary_data_size": len(blob)}}
    doc["parameters"] = {"binary_data_output": True}
    head = json.dumps(doc).encode()
    answers.append(call(port, "POST", infer, head + blob,
                        {"Inference-Header-Content-Length": str(len(head))}).hex())
    doc = {"inputs": [{"name": "text", "datatype": "BYTES", "shape": [1], "data": ["x"]}],
           "outputs": [{"name": "scores", "parameters": {"classification": 1}}]}
    call(port, "POST", infer, json.dumps(doc))
    call(port, "POST", infer, b'{"inputs": [{"name": "text", "datatype": "FP32", "shape": [1]}]}')

def drive():
    while "on http://" not in sys.stderr.text:
        time.sleep(0.01)
    port = int(sys.stderr.text.split("on http://", 1)[1].split(" ", 1)[0].rsplit(":", 1)[1])
    for path in ("/health", "/metadata", "/metrics", "/v2", "/v2/health/live",
                 "/v2/health/ready", "/nope", "/predict"):
        call(port, "GET", path)
    answers.append(json.loads(call(port, "POST", "/predict", json.dumps({"texts": TEXTS}))))
    answers.append(json.loads(call(port, "POST", "/predict", json.dumps({"text": TEXTS[0]}))))
    for bad in (b"{nope", b'{"texts": []}', b'{"text": "\xff"}', b"[" * 5000):
        call(port, "POST", "/predict", bad)
    for data in (b"GARBAGE\r\n\r\n", b"GET /health\r\n", b"BREW / HTTP/1.1\r\nHost: x\r\n\r\n"):
        raw(port, data)
    v2(port, json.loads(call(port, "GET", "/metadata"))["model_name"] or "model")
    threads = [threading.Thread(target=call, args=(port, "POST", "/predict",
               json.dumps({"text": t * (i + 1)}))) for i, t in enumerate(TEXTS * 4)]
    for t in threads: t.start()
    for t in threads: t.join()
    os.kill(os.getpid(), signal.SIGTERM)

def every_head():
    # Each task's head on this model's real encodings: the deps keep what any task needs.
    import numpy as np
    from advisor.serve.model import HEADS, Model
    model = Model(artifacts, 1)
    encodings = model.encode(TEXTS)
    model._pad(encodings)
    width = len(encodings[0])
    for head in HEADS.values():
        shape = (len(TEXTS), 3) if head.rank == 2 else (len(TEXTS), width, 3)
        output = np.linspace(-1, 1, num=int(np.prod(shape)), dtype="f4").reshape(shape)
        head(["O", "B-X", "I-X"], 3).decode(TEXTS, encodings, output)

threading.Thread(target=drive, daemon=True).start()
code = main()
every_head()
maps = set()
with open("/proc/self/maps") as f:
    for line in f:
        parts = line.split(None, 5)
        if len(parts) == 6 and parts[5].startswith("/"):
            maps.add(parts[5].strip())
modules = {m.__file__ for m in list(sys.modules.values()) if getattr(m, "__file__", None)}
with open(out_path, "w") as f:
    json.dump({"code": code, "files": sorted(opened | maps | modules), "answers": answers}, f)
"""


@dataclass(frozen=True, slots=True)
class Trace:
    files: frozenset[Path]  # under the traced roots, resolved
    answers: str  # the predictions the server made, as JSON: equal before and after pruning


def runs_here(target: PythonTarget) -> str | None:
    """Why this machine cannot run the base's Python on its wheels, or None when it can."""
    if sys.version_info[:2] != target.version:
        return f"this is Python {sys.version_info[0]}.{sys.version_info[1]}, the base's is {target.version_str}"
    if platform.machine().lower() not in MACHINES.get(target.architecture, (target.architecture,)):
        return f"this machine is {platform.machine()}, the base is {target.architecture}"
    return None


def trace_server(roots: Sequence[Path], artifacts: Path) -> Trace:
    """Serve ``artifacts`` from the staged ``roots`` (deps, app) and record what it loads."""
    roots = [r.resolve() for r in roots]
    env = {"PYTHONPATH": os.pathsep.join(str(r) for r in roots), "PYTHONDONTWRITEBYTECODE": "1",
           "PATH": os.defpath, "ACCESS_LOG": "0", "HF_HUB_OFFLINE": "1"}
    with tempfile.TemporaryDirectory(prefix="advisor-trace-") as tmp:
        out = Path(tmp) / "trace.json"
        cmd = [sys.executable, "-S", "-c", TRACE_SCRIPT, str(out), str(artifacts.resolve())]
        try:
            proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600,
                                  cwd=roots[-1], check=False)
        except (subprocess.TimeoutExpired, OSError) as e:
            raise BuildError(f"tracing the server failed: {e}", hint="build with --no-prune") from e
        if proc.returncode != 0 or not out.is_file():
            tail = " | ".join(proc.stderr.strip().splitlines()[-3:])
            raise BuildError(f"the staged server failed while traced: {tail}",
                             hint="build with --no-prune (and report it: serving must not fail)")
        doc = json.loads(out.read_text())
    if doc["code"] != 0:
        raise BuildError(f"the traced server exited {doc['code']}", hint="build with --no-prune")
    files = {Path(f).resolve() for f in doc["files"]}
    inside = frozenset(f for f in files if any(f.is_relative_to(r) for r in roots))
    return Trace(inside, json.dumps(doc["answers"], sort_keys=True))


@dataclass(frozen=True, slots=True)
class Pruned:
    files: int
    bytes: int


def prune_unloaded(site: Path, loaded: Iterable[Path]) -> Pruned:
    """Remove every file a wheel's RECORD lists under ``site`` that the server never loaded.

    Only RECORD's files are candidates (nothing else is ever removed), dist-info metadata
    stays (licences included), and each RECORD is rewritten to what remains. A loaded file
    that no RECORD lists means the trace saw something the wheels did not install: refused.
    """
    site = site.resolve()
    keep = {p.resolve() for p in loaded}
    listed = _recorded(site)
    strays = sorted(p for p in keep if p.is_relative_to(site) and p not in listed
                    and ".dist-info" not in p.parent.name and p.suffix != ".pyc")
    if strays:
        raise BuildError(f"the server loaded {strays[0]}, which no wheel's RECORD lists",
                         hint="build with --no-prune")
    doomed = sorted(p for p in listed if p not in keep and not p.parent.name.endswith(".dist-info"))
    freed = 0
    for path in doomed:
        if path.is_file() or path.is_symlink():
            freed += path.lstat().st_size
            path.unlink()
    for d in sorted({p.parent for p in doomed}, key=lambda p: len(p.parts), reverse=True):
        while d != site and d.is_dir() and not any(d.iterdir()):
            d.rmdir()
            d = d.parent
    for dist_info in sorted(site.glob("*.dist-info")):
        rewrite_record(dist_info, site)
    return Pruned(len(doomed), freed)


def _recorded(site: Path) -> set[Path]:
    listed: set[Path] = set()
    for record in site.glob("*.dist-info/RECORD"):
        for row in csv.reader(io.StringIO(record.read_text())):
            path = (site / row[0]).resolve() if row else site
            if path != site and path.is_relative_to(site):
                listed.add(path)
    return listed
