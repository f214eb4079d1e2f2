"""The HTTP plumbing of the registry client: retry policy, auth challenges, loopback hosts,
request bodies of a known size, and a blob body that resumes by byte offset on a break."""

from __future__ import annotations

import io
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import BinaryIO

import requests

from advisor.errors import RegistryError
from advisor.oci.refs import DOCKER_HUB, DOCKER_HUB_API

LOGIN_HINT = "run `docker login {host}`, or point DOCKER_CONFIG at a config.json with credentials"
NET_HINT = "check the registry address and your network"
_LOOPBACK = ("localhost", "127.0.0.1", "::1", "[::1]")
_PARAM = re.compile(r'(\w+)=(?:"((?:[^"\\]|\\.)*)"|([^,\s]*))')


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """Bounded retries with exponential backoff and jitter; Retry-After wins when given."""

    attempts: int = 5
    base_delay: float = 0.5
    max_delay: float = 20.0
    timeout: float = 60.0

    def delay(self, attempt: int, retry_after: str | None = None) -> float:
        if retry_after is not None:
            try:
                return min(self.max_delay, max(0.0, float(retry_after)))
            except ValueError:
                pass  # an HTTP date: fall back to our own backoff
        return min(self.max_delay, self.base_delay * 2**attempt) * (0.5 + random.random() / 2)


@dataclass(frozen=True, slots=True)
class ManifestResponse:
    media_type: str
    body: bytes
    digest: str


@dataclass(frozen=True, slots=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    params: Mapping[str, str]


def parse_challenge(header: str) -> Challenge | None:
    scheme, _, rest = header.strip().partition(" ")
    if not scheme:
        return None
    params = {
        m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
        for m in _PARAM.finditer(rest)
    }
    return Challenge(scheme.lower(), params)


def api_host(registry: str) -> str:
    return DOCKER_HUB_API if registry == DOCKER_HUB else registry


def is_loopback(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if not host.endswith("]") and host.count(":") == 1 else host
    if name.startswith("[") and "]" in name:
        name = name[: name.index("]") + 1]
    return name in _LOOPBACK


def transient(resp: requests.Response) -> bool:
    return resp.status_code == 429 or resp.status_code >= 500


class SizedBody:
    """A body stream with a known length, so requests sends Content-Length, not chunked."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream = stream
        self._size = size

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        return self._stream.read(n)


def const(data: bytes) -> Callable[[], bytes]:
    return lambda: data


class ResumableBody(io.RawIOBase):
    """The blob's bytes from a streamed response, resumed by ``reopen(offset)`` on a break.

    A transfer encoding (storage behind a CDN may add one despite ``Accept-Encoding:
    identity``) is undone, since the digest covers the blob, not its transport form; such a
    stream cannot be resumed by byte offset.
    """

    def __init__(
        self,
        resp: requests.Response,
        reopen: Callable[[int], requests.Response],
        retry: RetryPolicy,
    ) -> None:
        super().__init__()
        self._resp = resp
        self._reopen = reopen
        self._retry = retry
        self._resumes = 0
        self._offset = 0
        self._pending = b""
        encoding = resp.headers.get("Content-Encoding", "identity").strip().lower()
        self._decode = encoding not in ("", "identity")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        view = memoryview(buffer).cast("B")
        chunk = self._pending or self._read(len(view))
        n = min(len(chunk), len(view))
        view[:n] = chunk[:n]
        self._pending = chunk[n:]
        return n

    def _read(self, amount: int) -> bytes:
        while True:
            try:
                data = bytes(self._resp.raw.read(amount, decode_content=self._decode))
            except Exception as e:  # urllib3's ProtocolError, ReadTimeoutError ...
                self._resume(e)
                continue
            self._offset += len(data)
            return data

    def _resume(self, error: Exception) -> None:
        self._resp.close()
        if self._decode or self._resumes + 1 >= self._retry.attempts:
            raise RegistryError(
                f"the registry connection broke while reading a blob: {error}", hint=NET_HINT
            ) from error
        time.sleep(self._retry.delay(self._resumes))
        self._resumes += 1
        self._resp = self._reopen(self._offset)

    def close(self) -> None:
        if not self.closed:
            self._resp.close()
        super().close()
