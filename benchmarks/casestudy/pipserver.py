"""The local wheel stores served to buildah's RUN steps the way PyPI serves them.

pip keeps no cache of ``file://`` indexes, so a ``RUN pip install`` without ``--no-cache-dir``
would leave almost nothing in ``/root/.cache/pip``; served over loopback HTTP with PyPI's
``Cache-Control`` header, the wheels land in pip's HTTP cache exactly as in a real docker build.
"""

from __future__ import annotations

import contextlib
import http.server
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any


class _WheelHandler(http.server.SimpleHTTPRequestHandler):
    """Serves /opt (the local wheel stores) with PyPI's caching header, quietly."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory="/opt", **kwargs)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "max-age=365000000, immutable, public")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


CPU_TORCH = sorted(Path("/opt/wheels").glob("torch-*+cpu-*.whl"))
TORCH_INDEX = "file:///etc/xdg/pip/torch-index"  # inside RUN steps: the local CPU wheel only


@contextlib.contextmanager
def wheel_server(work: Path) -> Iterator[Path]:
    """Serve the local wheel stores over loopback HTTP; yield a pip config folder using them.

    pip keeps no cache of file:// indexes, so RUN pip install without --no-cache-dir would
    leave almost nothing in /root/.cache/pip; served over HTTP with PyPI's Cache-Control,
    the wheels land in pip's HTTP cache exactly as they do in a real docker build.
    The folder is mounted at /etc/xdg/pip (pip's site config) for RUN steps: pip.conf, the
    host's CA bundle (this network's TLS proxy signs PyPI with its own CA), the host's
    constraints (torch<=2.14.1, torchvision<=0.29.1) and a one-package index holding the
    local CPU torch wheel (``TORCH_INDEX`` for the fixes' Dockerfile). One mount point,
    which buildah leaves behind as an empty directory.
    """
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WheelHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    conf = work / "pip"
    conf.mkdir()
    shutil.copyfile("/etc/ssl/certs/ca-certificates.crt", conf / "ca.crt")
    constraints = Path("/etc/xdg/pip/constraints.txt")
    extra = ""
    if constraints.exists():
        shutil.copyfile(constraints, conf / "constraints.txt")
        extra = "constraint = /etc/xdg/pip/constraints.txt\n"
    (conf / "pip.conf").write_text(
        f"[global]\ncert = /etc/xdg/pip/ca.crt\n{extra}"
        f"extra-index-url = {url}/pypi/simple {url}/pypi-more/simple\n"
        f"find-links = {url}/wheels/\ntrusted-host = 127.0.0.1\n"
    )
    index = conf / "torch-index" / "torch"
    index.mkdir(parents=True)
    links = "".join(f'<a href="{url}/wheels/{w.name}">{w.name}</a>\n' for w in CPU_TORCH)
    (index / "index.html").write_text(f"<!DOCTYPE html><html><body>\n{links}</body></html>\n")
    try:
        yield conf
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def volumes(pip_dir: Path) -> list[str]:
    """What RUN steps borrow from the host: pip's config folder (the wheels come over HTTP)."""
    return [f"{pip_dir}:/etc/xdg/pip:ro"]
