"""Registry v2 client and source (``docker://HOST/REPO:TAG`` or ``@sha256:...``).

Written on ``requests`` rather than ``oras`` (oras-py 0.2.x): its ``download_blob`` writes
blobs to files without checking their digest, ``put_upload`` reads a whole blob into memory,
its retry sleeps a fixed ``2 + 3**n`` s without jitter or Retry-After and it prints, so
wrapping it would have meant replacing most of it.
"""

from __future__ import annotations

import time
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any, BinaryIO

import requests
import urllib3

from advisor.errors import BadInputError, DigestMismatchError, RegistryError
from advisor.oci.model import Descriptor
from advisor.oci.refs import DockerName
from advisor.oci.sources.auth import RegistryAuth
from advisor.oci.sources.base import MAX_MANIFEST_BYTES, check_small
from advisor.oci.sources.credentials import Credentials
from advisor.oci.sources.http import (
    NET_HINT,
    ManifestResponse,
    ResumableBody,
    RetryPolicy,
    SizedBody,
    api_host,
    const,
    is_loopback,
    transient,
)
from advisor.oci.sources.manifests import ACCEPT_MANIFESTS, CONFIG_TYPES
from advisor.oci.sources.neterrors import classify
from advisor.oci.sources.verify import digest_bytes, open_verified, split_digest, verify_bytes


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
        self._base: str | None = None
        self.auth = RegistryAuth(registry, self._session, credentials, use_docker_config,
                                 verify_tls=self.verify_tls, timeout=self.retry.timeout)

    # -- plumbing ---------------------------------------------------------------------------

    def close(self) -> None:
        self._session.close()

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
            sent = {**(headers or {}), **self.auth.headers(scope)}
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
                if self.auth.learn(resp, scope):
                    resp.close()
                    continue
            if retry and transient(resp) and attempt + 1 < self.retry.attempts:
                delay = self.retry.delay(attempt, resp.headers.get("Retry-After"))
                resp.close()
                time.sleep(delay)
                attempt += 1
                continue
            if resp.status_code in (401, 403):
                resp.close()
                raise self.auth.denied(resp.status_code, scope)
            return resp

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
                        hint=NET_HINT,
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
        body = ResumableBody(resp, lambda offset: self._get_blob(repo, descriptor, offset), self.retry)
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

        def fresh() -> SizedBody:  # a re-sent PUT (after a 401) needs the bytes from the start
            opened.append(factory())
            return SizedBody(opened[-1], descriptor.size)

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
                "PATCH", location, scope=scope, headers=headers, body=const(chunk), retry=False
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
        body: Callable[[], SizedBody] | None,
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
