"""A CUDA-shaped torch in an image, and the CPU wheel of the same version, built in the test.

The real CUDA build of torch 2.13.0 is several GB from PyPI; these stand-ins have its shape
as advise and fix see it: a ``torch-2.13.0+cu130`` distribution with ``libtorch_cuda.so``,
a console script, a GPU-only ``nvidia-*`` package it alone requires, and a real dependency
(filelock) both builds share. The wheel is a real wheel (METADATA, WHEEL, RECORD with
hashes, entry points) that pypa's installer installs.
"""

from __future__ import annotations

import base64
import hashlib
import os
import zipfile
from pathlib import Path

from advisor.oci.tarball import FileSpec
from tests.fix.images import SITE, _installed

SCRIPT = "import sys\nfrom torch.distributed.run import main\nsys.exit(main())\n"


def _record(files: dict[str, bytes], dist_info: str, extra: tuple[str, ...] = ()) -> bytes:
    rows = []
    for path, data in sorted(files.items()):
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        rows.append(f"{path},sha256={digest},{len(data)}")
    rows += [f"{e},," for e in extra]
    rows.append(f"{dist_info}/RECORD,,")
    return ("\n".join(rows) + "\n").encode()


def cuda_torch_layer() -> dict[str, FileSpec | bytes]:
    torch = {
        "torch/__init__.py": b'__version__ = "2.13.0+cu130"\n',
        "torch/distributed/__init__.py": b"",
        "torch/distributed/run.py": b"def main():\n    return 0\n",
        "torch/lib/libtorch_cpu.so": os.urandom(1_000_000),
        "torch/lib/libtorch_cuda.so": os.urandom(2_500_000),
    }
    info = "torch-2.13.0+cu130.dist-info"
    torch[f"{info}/METADATA"] = (b"Metadata-Version: 2.1\nName: torch\nVersion: 2.13.0+cu130\n"
                                 b"Requires-Dist: filelock\n"
                                 b'Requires-Dist: nvidia-cublas==13.0.0; platform_system == "Linux"\n')
    torch[f"{info}/INSTALLER"] = b"pip\n"
    torch[f"{info}/entry_points.txt"] = b"[console_scripts]\ntorchrun = torch.distributed.run:main\n"
    torch[f"{info}/RECORD"] = _record(torch, info, ("../../../bin/torchrun",))
    cublas = {"nvidia/cublas/lib/libcublas.so.13": os.urandom(3_000_000), "nvidia/cublas/__init__.py": b""}
    cinfo = "nvidia_cublas-13.0.0.dist-info"
    cublas[f"{cinfo}/METADATA"] = b"Metadata-Version: 2.1\nName: nvidia-cublas\nVersion: 13.0.0\n"
    cublas[f"{cinfo}/RECORD"] = _record(cublas, cinfo)
    layer: dict[str, FileSpec | bytes] = {f"{SITE}/{k}": v for k, v in {**torch, **cublas}.items()}
    layer["usr/local/bin/torchrun"] = FileSpec(content=b"#!/usr/bin/python3\n" + SCRIPT.encode(), mode=0o755)
    layer.update(_installed(("filelock",)))
    return layer


def cpu_wheel(directory: Path) -> Path:
    files = {
        "torch/__init__.py": b'__version__ = "2.13.0+cpu"\n',
        "torch/distributed/__init__.py": b"",
        "torch/distributed/run.py": b"def main():\n    return 0\n",
        "torch/lib/libtorch_cpu.so": os.urandom(1_000_000),
    }
    info = "torch-2.13.0+cpu.dist-info"
    files[f"{info}/METADATA"] = b"Metadata-Version: 2.1\nName: torch\nVersion: 2.13.0+cpu\nRequires-Dist: filelock\n"
    files[f"{info}/WHEEL"] = b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: false\nTag: py3-none-any\n"
    files[f"{info}/entry_points.txt"] = b"[console_scripts]\ntorchrun = torch.distributed.run:main\n"
    files[f"{info}/RECORD"] = _record(files, info)
    directory.mkdir(parents=True, exist_ok=True)
    wheel = directory / "torch-2.13.0+cpu-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as z:
        for name, data in sorted(files.items()):
            z.writestr(zipfile.ZipInfo(name, (2020, 1, 1, 0, 0, 0)), data)
    return wheel


APP = b'''\
import os
from http.server import BaseHTTPRequestHandler, HTTPServer

import filelock
import torch


class Handler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = torch.__version__.encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


HTTPServer(("127.0.0.1", int(os.environ.get("PORT", "8080"))), Handler).serve_forever()
'''


def build_torch_image(dest: str, base_ref: str) -> str:
    from advisor.oci.loader import open_image
    from advisor.oci.writer import write_image

    config = {
        "config": {"Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                   "Cmd": ["python3", "/app/main.py"], "WorkingDir": "/app", "ExposedPorts": {"8080/tcp": {}}},
        "history": [{"created_by": "RUN /bin/sh -c pip install torch # buildkit"},
                    {"created_by": "COPY . /app # buildkit"}],
    }
    with open_image(base_ref) as base:
        return write_image(dest, [cuda_torch_layer(), {"app/main.py": APP}], config, base=base).reference
