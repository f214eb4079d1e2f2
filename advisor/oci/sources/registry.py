"""Registry v2 client and source (``docker://HOST/REPO:TAG`` or ``@sha256:...``).

Written on ``requests`` rather than ``oras`` (oras-py 0.2.x): its ``download_blob`` writes
blobs to files without checking their digest, ``put_upload`` reads a whole blob into memory,
its retry sleeps a fixed ``2 + 3**n`` s without jitter or Retry-After and it prints, so
wrapping it would have meant replacing most of it.
"""

from __future__ import annotations

import base64
import io
import random
import re
import time
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, BinaryIO

import requests
import urllib3

from advisor.errors import BadInputError, DigestMismatchError, RegistryError
from advisor.oci.model import Descriptor
from advisor.oci.refs import DOCKER_HUB, DOCKER_HUB_API, DockerName
from advisor.oci.sources.base import MAX_MANIFEST_BYTES, check_small
from advisor.oci.sources.credentials import Credentials, load_credentials
from advisor.oci.sources.manifests import ACCEPT_MANIFESTS, CONFIG_TYPES
from advisor.oci.sources.neterrors import classify
from advisor.oci.sources.verify import digest_bytes, open_verified, split_digest, verify_bytes

_LOGIN_HINT = "run `docker login {host}`, or point DOCKER_CONFIG at a config.json with credentials"
_NET_HINT = "check the registry address and your network"
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


def _transient(resp: requests.Response) -> bool:
    return resp.status_code == 429 or resp.status_code >= 500


class _Sized:
    """A body stream with a known length, so requests sends Content-Length, not chunked."""

    def __init__(self, stream: BinaryIO, size: int) -> None:
        self._stream = stream
        self._size = size

    def __len__(self) -> int:
        return self._size

    def read(self, n: int = -1) -> bytes:
        return self._stream.read(n)


class RegistryClient:
    """One registry host: auth (anonymous, basic, bearer), retries, streaming, verification."""

    def __init__(
        self,
        registry: str,
        *,
        insecure: bool = False,
        credentials: Credentials | None = None,
        use_docker_config: bool = True,
        retry: RetryPolicy | None = None,
        session: requests.Session | None = None,
    ) -> None:
        self.registry = registry
        self.host = api_host(registry)
        self.insecure = insecure
        # like Docker: loopback registries may use plain HTTP or unverified TLS
        self.verify_tls = not (insecure or is_loopback(self.host))
        self.retry = retry or RetryPolicy()
        self._session = session or requests.Session()
        self._credentials = credentials
        self._use_docker_config = use_docker_config and credentials is None
        self._base: str | None = None
        self._challenge: Challenge | None = None
        self._tokens: dict[str, str] = {}

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        self._session.close()

    def _creds(self) -> Credentials | None:
        if self._credentials is None and self._use_docker_config:
            self._credentials = load_credentials(self.registry)
            self._use_docker_config = False
        return self._credentials

    def base_url(self) -> str:
        """``https://HOST`` or, for loopback and ``insecure``, whichever scheme answers."""
        if self._base is not None:
            return self._base
        if not (self.insecure or is_loopback(self.host)):
            self._base = f"https://{self.host}"
            return self._base
        for scheme in ("https", "http"):
            try:
                self._session.get(
                    f"{scheme}://{self.host}/v2/",
                    timeout=min(5.0, self.retry.timeout),
                    verify=self.verify_tls,
                ).close()
            except requests.exceptions.RequestException:  # TLS to a plain server, refused ...
                continue
            self._base = f"{scheme}://{self.host}"
            return self._base
        self._base = f"http://{self.host}"
        return self._base

    def _url(self, path_or_url: str) -> str:
        if path_or_url.startswith(("http://", "https://")):
            return path_or_url
        return urllib.parse.urljoin(self.base_url() + "/", path_or_url.lstrip("/"))

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        scope: str = "",
        headers: Mapping[str, str] | None = None,
        body: Callable[[], Any] | None = None,
        stream: bool = False,
        retry: bool = True,
    ) -> requests.Response:
        """Send one request with auth; retry 5xx/429/network errors when ``retry``."""
        url = self._url(path_or_url)
        authenticated = False
        attempt = 0
        while True:
            sent = {**(headers or {}), **self._auth_headers(scope)}
            try:
                resp = self._session.request(
                    method,
                    url,
                    headers=sent,
                    data=body() if body else None,
                    stream=stream,
                    timeout=self.retry.timeout,
                    verify=self.verify_tls,
                )
            except requests.exceptions.RequestException as e:
                failure = classify(e, self.host)
                if not (retry and failure.retryable and attempt + 1 < self.retry.attempts):
                    raise failure.error() from e
                time.sleep(self.retry.delay(attempt))
                attempt += 1
                continue
            if resp.status_code == 401 and not authenticated:
                authenticated = True
                if self._authenticate(resp, scope):
                    resp.close()
                    continue
            if retry and _transient(resp) and attempt + 1 < self.retry.attempts:
                delay = self.retry.delay(attempt, resp.headers.get("Retry-After"))
                resp.close()
                time.sleep(delay)
                attempt += 1
                continue
            if resp.status_code in (401, 403):
                resp.close()
                raise self._denied(resp.status_code, scope)
            return resp

    def _denied(self, status: int, scope: str) -> RegistryError:
        verb = "refused" if status == 403 else "requires authentication for"
        what = scope.split(":")[1] if scope.count(":") >= 2 else self.registry
        creds = " (with the saved credentials)" if self._credentials else ""
        return RegistryError(
            f"registry {self.registry} {verb} {what}{creds}: HTTP {status}",
            hint=_LOGIN_HINT.format(host=self.registry),
            status=status,
        )

    def _auth_headers(self, scope: str) -> dict[str, str]:
        challenge = self._challenge
        if challenge is None:
            return {}
        if challenge.scheme == "basic":
            creds = self._creds()
            if creds is None:
                return {}
            raw = f"{creds.username}:{creds.password}".encode()
            return {"Authorization": "Basic " + base64.b64encode(raw).decode()}
        token = self._tokens.get(scope)
        if token is None:
            token = self._fetch_token(challenge, scope)
            self._tokens[scope] = token
        return {"Authorization": f"Bearer {token}"}

    def _authenticate(self, resp: requests.Response, scope: str) -> bool:
        """Learn the challenge from a 401; False when there is nothing new to try."""
        challenge = parse_challenge(resp.headers.get("WWW-Authenticate", ""))
        if challenge is None or challenge.scheme not in ("basic", "bearer"):
            return False
        if challenge.scheme == "basic" and self._creds() is None:
            return False
        self._challenge = challenge
        self._tokens.pop(scope, None)
        return True

    def _fetch_token(self, challenge: Challenge, scope: str) -> str:
        realm = challenge.params.get("realm", "")
        if not realm:
            raise RegistryError(f"registry {self.registry} sent a bearer challenge without a realm")
        # several scopes (a cross-repository mount) travel as repeated scope parameters
        params = [("service", challenge.params.get("service", ""))]
        params += [("scope", s) for s in scope.split()]
        creds = self._creds()
        try:
            if creds and creds.identity_token:
                form = [
                    *params,
                    ("grant_type", "refresh_token"),
                    ("client_id", "advisor"),
                    ("refresh_token", creds.identity_token),
                ]
                resp = self._session.post(
                    realm, data=form, timeout=self.retry.timeout, verify=self.verify_tls
                )
            else:
                auth = (creds.username, creds.password) if creds and creds.username else None
                resp = self._session.get(
                    realm,
                    params=params,
                    auth=auth,
                    timeout=self.retry.timeout,
                    verify=self.verify_tls,
                )
        except requests.exceptions.RequestException as e:
            token_host = urllib.parse.urlsplit(realm).netloc or realm
            failure = classify(e, token_host)
            raise RegistryError(f"token service: {failure.message}", hint=failure.hint) from e
        if resp.status_code in (401, 403):
            raise self._denied(resp.status_code, scope)
        if resp.status_code != 200:
            raise RegistryError(
                f"token service {realm} answered HTTP {resp.status_code}", status=resp.status_code
            )
        try:
            obj = resp.json()
            token = obj.get("token") or obj.get("access_token")
        except (ValueError, AttributeError) as e:
            raise RegistryError(f"token service {realm} answered without JSON") from e
        if not isinstance(token, str) or not token:
            raise RegistryError(f"token service {realm} gave no token")
        return token

    def _unexpected(self, resp: requests.Response, what: str) -> RegistryError:
        detail = resp.text[:200].strip().replace("\n", " ")
        return RegistryError(
            f"registry {self.registry} answered HTTP {resp.status_code} for {what}: {detail}",
            hint="the registry refused or failed the request; check the reference, or try again later",
            status=resp.status_code,
        )

    # -- read side ---------------------------------------------------------------------------

    def ping(self) -> bool:
        """True when ``/v2/`` answers as a registry (200, or 401 asking for auth)."""
        try:
            resp = self._session.get(self._url("/v2/"), timeout=5, verify=self.verify_tls)
        except requests.exceptions.RequestException:
            return False
        resp.close()
        return resp.status_code in (200, 401)

    def get_manifest(self, repo: str, reference: str) -> ManifestResponse:
        """A manifest or index by tag or digest, digest-checked (404 -> ``BadInputError``).

        A body cut or stalled mid-read is fetched again (manifests are small), within the
        retry policy; when it keeps failing the error is a ``RegistryError``, never urllib3's.
        """
        for attempt in range(self.retry.attempts):
            try:
                return self._get_manifest_once(repo, reference)
            except (requests.exceptions.RequestException, urllib3.exceptions.HTTPError, OSError) as e:
                if attempt + 1 >= self.retry.attempts:
                    raise RegistryError(
                        f"connection broke reading manifest {repo}:{reference} from "
                        f"{self.registry}: {type(e).__name__}",
                        hint=_NET_HINT,
                    ) from e
                time.sleep(self.retry.delay(attempt))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _get_manifest_once(self, repo: str, reference: str) -> ManifestResponse:
        resp = self.request(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            scope=f"repository:{repo}:pull",
            headers={"Accept": ", ".join(ACCEPT_MANIFESTS)},
            stream=True,
        )
        with resp:
            if resp.status_code == 404:
                raise BadInputError(
                    f"image not found: {self.registry}/{repo}:{reference}".replace(
                        ":sha256:", "@sha256:"
                    ),
                    hint=f"check the name; `skopeo list-tags docker://{self.registry}/{repo}` lists its tags",
                )
            if resp.status_code != 200:
                raise self._unexpected(resp, f"manifest {repo}:{reference}")
            body = resp.raw.read(MAX_MANIFEST_BYTES + 1, decode_content=True)
        if len(body) > MAX_MANIFEST_BYTES:
            raise BadInputError(
                f"manifest of {repo}:{reference} is larger than {MAX_MANIFEST_BYTES} bytes"
            )
        media_type = resp.headers.get("Content-Type", "").split(";")[0].strip()
        digest = self._check_manifest_digest(
            body, reference, resp.headers.get("Docker-Content-Digest")
        )
        return ManifestResponse(media_type, body, digest)

    def _check_manifest_digest(self, body: bytes, reference: str, header: str | None) -> str:
        expected = reference if reference.startswith("sha") and ":" in reference else (header or "")
        algorithm = split_digest(expected)[0] if expected else "sha256"
        actual = digest_bytes(body, algorithm)
        if expected and actual != expected:
            raise DigestMismatchError(
                f"manifest {reference} from {self.registry}", expected, actual
            )
        return actual if algorithm == "sha256" else digest_bytes(body)

    def open_blob(self, repo: str, descriptor: Descriptor) -> BinaryIO:
        """Stream a blob (redirects to storage followed), verifying size and digest as read.

        A connection that breaks mid-blob is resumed with a ``Range`` request, up to the
        retry policy's attempts.
        """
        split_digest(descriptor.digest)
        resp = self._get_blob(repo, descriptor, 0)
        body = _RawBody(resp, lambda offset: self._get_blob(repo, descriptor, offset), self.retry)
        return open_verified(body, descriptor, f"blob {descriptor.digest}")

    def _get_blob(self, repo: str, descriptor: Descriptor, offset: int) -> requests.Response:
        headers = {"Accept-Encoding": "identity"}
        if offset:
            headers["Range"] = f"bytes={offset}-"
        resp = self.request(
            "GET",
            f"/v2/{repo}/blobs/{descriptor.digest}",
            scope=f"repository:{repo}:pull",
            headers=headers,
            stream=True,
        )
        if resp.status_code == 404:
            resp.close()
            raise BadInputError(
                f"blob {descriptor.digest} is missing from {self.registry}/{repo}",
                hint="the image in the registry is incomplete; push it again",
            )
        expected = 206 if offset else 200
        if resp.status_code != expected or (
            offset and not resp.headers.get("Content-Range", "").startswith(f"bytes {offset}-")
        ):
            resp.close()
            raise self._unexpected(resp, f"blob {descriptor.digest} from byte {offset}")
        return resp

    def read_blob(self, repo: str, descriptor: Descriptor) -> bytes:
        check_small(descriptor, "blob")
        with self.open_blob(repo, descriptor) as f:
            return f.read()

    # -- write side --------------------------------------------------------------------------

    def blob_exists(self, repo: str, digest: str) -> bool:
        resp = self.request("HEAD", f"/v2/{repo}/blobs/{digest}", scope=f"repository:{repo}:pull")
        resp.close()
        if resp.status_code in (200, 404):
            return resp.status_code == 200
        raise self._unexpected(resp, f"blob {digest}")

    def push_blob(
        self,
        repo: str,
        descriptor: Descriptor,
        stream_factory: Callable[[], BinaryIO],
        *,
        mount_from: str = "",
        chunk_size: int = 0,
    ) -> None:
        """Upload a blob unless present: cross-repo mount if asked, else monolithic or chunked.

        ``stream_factory`` opens the blob's bytes afresh for each attempt.
        """
        if self.blob_exists(repo, descriptor.digest):
            return
        for attempt in range(self.retry.attempts):
            try:
                self._upload(repo, descriptor, stream_factory, mount_from, chunk_size)
                return
            except RegistryError as e:
                if e.status in (401, 403) or (
                    e.status is not None and e.status < 500 and e.status != 429
                ):
                    raise
                if attempt + 1 >= self.retry.attempts:
                    raise
                time.sleep(self.retry.delay(attempt))

    def _upload(
        self,
        repo: str,
        descriptor: Descriptor,
        factory: Callable[[], BinaryIO],
        mount_from: str,
        chunk_size: int,
    ) -> None:
        scope = f"repository:{repo}:pull,push"
        if mount_from:
            scope += f" repository:{mount_from}:pull"
            query = urllib.parse.urlencode({"mount": descriptor.digest, "from": mount_from})
            resp = self.request(
                "POST", f"/v2/{repo}/blobs/uploads/?{query}", scope=scope, retry=False
            )
            resp.close()
            if resp.status_code == 201:
                return
        else:
            resp = self.request("POST", f"/v2/{repo}/blobs/uploads/", scope=scope, retry=False)
            resp.close()
        if resp.status_code != 202:
            raise self._unexpected(resp, f"starting the upload of {descriptor.digest}")
        location = self._url(resp.headers.get("Location", ""))
        if chunk_size and descriptor.size > chunk_size:
            with factory() as stream:
                location = self._patch_chunks(location, stream, descriptor.size, chunk_size, scope)
            self._finish_upload(location, descriptor, scope, None)
            return
        opened: list[BinaryIO] = []

        def fresh() -> _Sized:  # a re-sent PUT (after a 401) needs the bytes from the start
            opened.append(factory())
            return _Sized(opened[-1], descriptor.size)

        try:
            self._finish_upload(location, descriptor, scope, fresh)
        finally:
            for stream in opened:
                stream.close()

    def _patch_chunks(
        self, location: str, stream: BinaryIO, size: int, chunk_size: int, scope: str
    ) -> str:
        offset = 0
        while offset < size:
            chunk = stream.read(min(chunk_size, size - offset))
            if not chunk:
                raise BadInputError(f"the blob stream ended after {offset} of {size} bytes")
            headers = {
                "Content-Type": "application/octet-stream",
                "Content-Range": f"{offset}-{offset + len(chunk) - 1}",
                "Content-Length": str(len(chunk)),
            }
            resp = self.request(
                "PATCH", location, scope=scope, headers=headers, body=_const(chunk), retry=False
            )
            resp.close()
            if resp.status_code != 202:
                raise self._unexpected(resp, "a chunk upload")
            location = self._url(resp.headers.get("Location", location))
            offset += len(chunk)
        return location

    def _finish_upload(
        self,
        location: str,
        descriptor: Descriptor,
        scope: str,
        body: Callable[[], _Sized] | None,
    ) -> None:
        sep = "&" if urllib.parse.urlparse(location).query else "?"
        url = f"{location}{sep}{urllib.parse.urlencode({'digest': descriptor.digest})}"
        headers = {"Content-Type": "application/octet-stream"}
        if body is None:
            headers["Content-Length"] = "0"
        resp = self.request(
            "PUT",
            url,
            scope=scope,
            headers=headers,
            body=body,
            retry=False,
        )
        resp.close()
        if resp.status_code != 201:
            if resp.status_code == 400 and "DIGEST_INVALID" in resp.text:
                raise BadInputError(
                    f"the registry computed another digest than {descriptor.digest}"
                )
            raise self._unexpected(resp, f"the upload of {descriptor.digest}")

    def push_manifest(self, repo: str, reference: str, media_type: str, body: bytes) -> str:
        """Put a manifest or index under a tag (or its digest); returns its digest."""
        digest = digest_bytes(body)
        resp = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            scope=f"repository:{repo}:pull,push",
            headers={"Content-Type": media_type},
            body=lambda: body,
        )
        resp.close()
        if resp.status_code not in (200, 201):
            raise self._unexpected(resp, f"manifest {repo}:{reference}")
        return digest


def _const(data: bytes) -> Callable[[], bytes]:
    return lambda: data


class _RawBody(io.RawIOBase):
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
                f"the registry connection broke while reading a blob: {error}", hint=_NET_HINT
            ) from error
        time.sleep(self._retry.delay(self._resumes))
        self._resumes += 1
        self._resp = self._reopen(self._offset)

    def close(self) -> None:
        if not self.closed:
            self._resp.close()
        super().close()


class RegistrySource:
    """A ``ManifestSource`` over one repository of a registry."""

    # A cached walk is trusted by digest: the registry serves content by its digest, and not
    # downloading what was already seen is the cache's point (a scan of a whole registry).
    local = False

    def __init__(
        self,
        name: DockerName,
        *,
        insecure: bool = False,
        reference: str = "",
        client: RegistryClient | None = None,
    ) -> None:
        self.name = name
        self.reference = reference or f"docker://{name}"
        self.client = client or RegistryClient(name.registry, insecure=insecure)
        self._manifests: dict[str, bytes] = {}

    def root(self) -> Descriptor:
        got = self.client.get_manifest(self.name.repository, self.name.reference)
        self._manifests[got.digest] = got.body
        return Descriptor(got.media_type, got.digest, len(got.body))

    def read_manifest(self, descriptor: Descriptor) -> bytes:
        check_small(descriptor, "manifest")
        if descriptor.digest in self._manifests:
            return verify_bytes(self._manifests[descriptor.digest], descriptor, "manifest")
        if descriptor.media_type in CONFIG_TYPES:
            return self.client.read_blob(self.name.repository, descriptor)
        got = self.client.get_manifest(self.name.repository, descriptor.digest)
        self._manifests[got.digest] = got.body
        return verify_bytes(got.body, descriptor, f"manifest {descriptor.digest}")

    def open_blob(self, descriptor: Descriptor) -> BinaryIO:
        return self.client.open_blob(self.name.repository, descriptor)

    def close(self) -> None:
        self.client.close()
