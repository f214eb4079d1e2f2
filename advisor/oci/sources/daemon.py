"""A Docker engine as a source (``docker-daemon:NAME:TAG``), over its API socket.

``GET /images/{name}/get`` streams the same tar as ``docker save``; it is spooled to an
anonymous temporary file (gone when the source closes) and read by the docker-archive reader,
which needs random access to find layers by offset.
"""

from __future__ import annotations

import http.client
import os
import socket
import urllib.parse
from dataclasses import dataclass
from typing import BinaryIO

from advisor.errors import BadInputError, RegistryError
from advisor.oci.refs import DockerName
from advisor.oci.sources.archive import DockerArchiveSource, open_docker_archive
from advisor.oci.sources.base import spool

DEFAULT_SOCKET = "/var/run/docker.sock"
_HINT = (
    "start Docker or set DOCKER_HOST=unix:///path/to/docker.sock; or read the image with docker://"
)


class ImageNotInEngine(BadInputError):
    """The engine answered, but does not hold the image."""


class _UnixConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float) -> None:
        super().__init__("localhost", timeout=timeout)
        self._path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self._path)
        except OSError:
            sock.close()
            raise
        self.sock = sock


@dataclass(frozen=True, slots=True)
class DockerEngine:
    """Where the engine listens: a unix socket path, or ``host:port`` for ``tcp://``."""

    socket_path: str = DEFAULT_SOCKET
    tcp_address: str = ""
    timeout: float = 300.0

    @classmethod
    def from_env(cls) -> DockerEngine:
        host = os.environ.get("DOCKER_HOST", "")
        if not host:
            return cls()
        parsed = urllib.parse.urlparse(host)
        if parsed.scheme == "unix":
            return cls(socket_path=parsed.path)
        if parsed.scheme in ("tcp", "http"):
            return cls(tcp_address=parsed.netloc)
        raise RegistryError(
            f"DOCKER_HOST={host} is not supported (only unix:// and tcp:// without TLS)", hint=_HINT
        )

    @property
    def where(self) -> str:
        return f"tcp://{self.tcp_address}" if self.tcp_address else f"unix://{self.socket_path}"

    def connect(self, timeout: float | None = None) -> http.client.HTTPConnection:
        t = self.timeout if timeout is None else timeout
        if self.tcp_address:
            return http.client.HTTPConnection(self.tcp_address, timeout=t)
        return _UnixConnection(self.socket_path, t)

    def answers(self) -> bool:
        """True when ``/_ping`` says OK within a second (used to resolve bare names)."""
        if not self.tcp_address and not os.path.exists(self.socket_path):
            return False
        conn = self.connect(timeout=1.0)
        try:
            conn.request("GET", "/_ping")
            resp = conn.getresponse()
            resp.read()
            return resp.status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            conn.close()

    def save(self, name: str) -> BinaryIO:
        """The ``docker save`` tar of ``name``, in a temporary file positioned at 0."""
        conn = self.connect()
        try:
            conn.request("GET", f"/images/{urllib.parse.quote(name, safe='')}/get")
            resp = conn.getresponse()
            if resp.status == 404:
                raise ImageNotInEngine(
                    f"image not found in the Docker engine at {self.where}: {name}",
                    hint="`docker images` lists what the engine has; pull it first or use docker://",
                )
            if resp.status != 200:
                detail = resp.read(300).decode(errors="replace").strip()
                raise RegistryError(
                    f"the Docker engine at {self.where} answered HTTP {resp.status}: {detail}",
                    hint=_HINT,
                    status=resp.status,
                )
            return spool(resp, f"the image stream from the Docker engine at {self.where}")
        except (OSError, http.client.HTTPException) as e:
            raise RegistryError(
                f"cannot read from the Docker engine at {self.where}: {e}", hint=_HINT
            ) from e
        finally:
            conn.close()


def engine_name(name: DockerName) -> str:
    """How the engine knows the image (``ubuntu:latest``, ``repo@sha256:...``)."""
    if name.digest:
        return f"{name.familiar.rsplit(':', 1)[0] if name.tag else name.familiar}@{name.digest}"
    return name.familiar


def open_daemon_image(
    name: DockerName, *, engine: DockerEngine | None = None, reference: str = ""
) -> DockerArchiveSource:
    engine = engine or DockerEngine.from_env()
    stream = engine.save(engine_name(name))
    return open_docker_archive(stream, "", reference or f"docker-daemon:{name}")
