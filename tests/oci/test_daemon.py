"""The Docker engine source over a unix socket.

No Docker engine can run on these machines, so each test starts a small HTTP server on a
unix socket that speaks the two endpoints advisor uses (``GET /_ping`` and
``GET /images/{name}/get``) and streams a real docker-archive built in the test, in HTTP
chunks as dockerd does. The archive reader on the other side is the real one.
"""

from __future__ import annotations

import os
import socketserver
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

from advisor.errors import BadInputError, RegistryError
from advisor.oci.loader import open_image
from advisor.oci.refs import parse_docker_name
from advisor.oci.sources.daemon import DockerEngine, engine_name
from tests.oci.helpers import make_image
from tests.registry_server import RegistryServer, skopeo_copy

LAYERS: list[dict[str, Any]] = [{"etc/hostname": b"engine\n"}, {"app/x": b"x" * 70_000}]


class _UnixHTTPServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


@dataclass
class FakeEngine:
    socket: Path
    images: dict[str, bytes]
    requests: list[str] = field(default_factory=list)
    fail_with: int = 0


def _handler(engine: FakeEngine) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            path = urllib.parse.unquote(self.path)
            engine.requests.append(path)
            if path == "/_ping":
                self._send(200, b"OK")
            elif engine.fail_with:
                self._send(engine.fail_with, b'{"message":"engine exploded"}')
            elif path.startswith("/images/") and path.endswith("/get"):
                name = path[len("/images/") : -len("/get")]
                if name in engine.images:
                    self._stream(engine.images[name])
                else:
                    self._send(404, b'{"message":"reference does not exist"}')
            else:
                self._send(404, b"{}")

        def _send(self, status: int, body: bytes) -> None:
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _stream(self, data: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "application/x-tar")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for i in range(0, len(data), 8192):
                chunk = data[i : i + 8192]
                self.wfile.write(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
            self.wfile.write(b"0\r\n\r\n")

        def log_message(self, format: str, *args: Any) -> None:
            return None

    return Handler


@pytest.fixture
def engine(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[FakeEngine, str]]:
    archive = make_image(tmp_path, LAYERS, fmt="docker-archive", name="app", tag="1.0")
    data = Path(archive.split(":")[1]).read_bytes()
    sock = Path(f"/tmp/advisor-engine-{os.getpid()}-{id(tmp_path)}.sock")  # AF_UNIX paths are short
    fake = FakeEngine(sock, {"advisor-test/app:1.0": data})
    server = _UnixHTTPServer(str(sock), _handler(fake))
    threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True).start()
    monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
    try:
        yield fake, archive
    finally:
        server.shutdown()
        server.server_close()
        sock.unlink(missing_ok=True)


def test_daemon_image_reads_like_the_archive(engine: tuple[FakeEngine, str]) -> None:
    fake, archive = engine
    with open_image("docker-daemon:advisor-test/app:1.0") as image, open_image(archive) as local:
        assert image.reference == "docker-daemon:docker.io/advisor-test/app:1.0"
        assert (image.digest, image.config.digest) == (local.digest, local.config.digest)
        assert image.config.diff_ids == local.config.diff_ids
        for layer in image.layers:
            with image.source.open_blob(layer.blob) as f:
                assert len(f.read()) == layer.blob.size
        spool = image.source.files._file  # type: ignore[attr-defined]
    assert spool.closed  # the temporary file went away with the image
    assert fake.requests == ["/images/advisor-test/app:1.0/get"]


def test_bare_name_prefers_a_running_engine(engine: tuple[FakeEngine, str]) -> None:
    fake, _ = engine
    with open_image("advisor-test/app:1.0") as image:
        assert image.reference == "docker.io/advisor-test/app:1.0"
        assert len(image.layers) == 2
    assert fake.requests[0] == "/_ping"


def test_unknown_image_and_engine_errors(engine: tuple[FakeEngine, str]) -> None:
    fake, _ = engine
    with pytest.raises(BadInputError, match="image not found in the Docker engine") as info:
        open_image("docker-daemon:advisor-test/absent:1")
    assert info.value.hint
    fake.fail_with = 500
    with pytest.raises(RegistryError, match="engine exploded") as failed:
        open_image("docker-daemon:advisor-test/app:1.0")
    assert failed.value.exit_code == 4


def test_no_engine_is_exit_4(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'absent.sock'}")
    assert not DockerEngine.from_env().answers()
    with pytest.raises(RegistryError, match="cannot read from the Docker engine") as info:
        open_image("docker-daemon:app:1")
    assert info.value.exit_code == 4 and "DOCKER_HOST" in info.value.hint
    monkeypatch.setenv("DOCKER_HOST", "ssh://me@host")
    with pytest.raises(RegistryError, match="not supported"):
        DockerEngine.from_env()


@pytest.mark.registry
def test_bare_name_falls_back_to_the_registry(
    registry: RegistryServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, docker_config: Path
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path / 'absent.sock'}")
    oci = make_image(tmp_path, LAYERS)
    skopeo_copy(oci, f"docker://{registry.host}/advisor/bare:v1")
    with open_image(f"{registry.host}/advisor/bare:v1") as image, open_image(oci) as local:
        assert image.digest == local.digest


@pytest.mark.registry
def test_bare_name_missing_from_the_engine_comes_from_the_registry(
    engine: tuple[FakeEngine, str], registry: RegistryServer, tmp_path: Path, docker_config: Path
) -> None:
    fake, _ = engine
    oci = make_image(tmp_path, LAYERS, name="pulled")
    skopeo_copy(oci, f"docker://{registry.host}/advisor/pulled:v1")
    with open_image(f"{registry.host}/advisor/pulled:v1") as image, open_image(oci) as local:
        assert image.digest == local.digest
    assert fake.requests == ["/_ping", f"/images/{registry.host}/advisor/pulled:v1/get"]


def test_engine_names() -> None:
    assert engine_name(parse_docker_name("ubuntu")) == "ubuntu:latest"
    assert engine_name(parse_docker_name("localhost:5000/a:b")) == "localhost:5000/a:b"
    digest = "sha256:" + "c" * 64
    assert engine_name(parse_docker_name(f"ghcr.io/o/r:t@{digest}")) == f"ghcr.io/o/r@{digest}"
