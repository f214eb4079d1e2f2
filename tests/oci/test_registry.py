"""The registry v2 client and source against a real ``docker-registry`` on loopback.

Images are built by advisor's writer, pushed with skopeo (an independent client) or with
``RegistryClient`` and then checked with skopeo. Auth runs against htpasswd and token-auth
registries; retries run through a small flaky HTTP proxy in front of the real registry.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import io
import json
import os
import socket
import stat
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
import requests
import zstandard

from advisor.errors import BadInputError, DigestMismatchError, RegistryError
from advisor.oci.loader import load_image, open_image
from advisor.oci.model import Descriptor, Image, Platform
from advisor.oci.refs import host_platform, parse_docker_name
from advisor.oci.sources.registry import RegistryClient, RegistrySource, RetryPolicy, is_loopback
from advisor.oci.writer import write_image
from tests.oci.helpers import make_image, make_image_written
from tests.registry_server import (
    PASSWORD,
    REFRESH_TOKEN,
    USER,
    RegistryServer,
    free_port,
    skopeo_copy,
    write_docker_config,
)

pytestmark = pytest.mark.registry

LAYERS: list[dict[str, Any]] = [
    {"etc/os-release": b"ID=test\n", "usr/lib/big.so": os.urandom(300_000)},
    {"app/main.py": b"print('hi')\n" * 100},
]
FAST = RetryPolicy(attempts=3, base_delay=0.01, max_delay=0.05, timeout=10)


def read_blobs(image: Image) -> list[int]:
    sizes = []
    for layer in image.layers:
        with image.source.open_blob(layer.blob) as f:
            sizes.append(len(f.read()))
    return sizes


def facts(image: Image) -> tuple[str, str, tuple[str, ...], list[int]]:
    return (
        image.digest,
        image.config.digest,
        tuple(image.config.diff_ids),
        [layer.blob.size for layer in image.layers],
    )


@pytest.fixture(scope="module")
def pushed(registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """An image written to an OCI layout and copied to the registry by skopeo."""
    oci = make_image(tmp_path_factory.mktemp("pushed"), LAYERS, history=["RUN a", "RUN b"])
    dest = f"docker://{registry.host}/advisor/pushed:v1"
    skopeo_copy(oci, dest)
    return oci, dest


def test_registry_image_matches_the_layout(pushed: tuple[str, str], docker_config: Path) -> None:
    oci, dest = pushed
    with open_image(oci) as local, open_image(dest) as remote:
        assert facts(remote) == facts(local)
        assert read_blobs(remote) == [layer.blob.size for layer in local.layers]
        assert [h.created_by for h in remote.config.history] == ["RUN a", "RUN b"]
        pinned = dest.rsplit(":", 1)[0] + "@" + remote.digest
    with open_image(pinned) as by_digest:
        assert facts(by_digest) == facts(local)


@pytest.mark.parametrize("compression", ["gzip", "zstd", "none"])
def test_one_image_in_all_four_transports(
    registry: RegistryServer, tmp_path: Path, compression: str, docker_config: Path
) -> None:
    """oci:, oci-archive:, docker-archive: and docker:// agree on config, diff_ids and sizes."""
    oci = make_image(tmp_path, LAYERS, compression=compression)  # type: ignore[arg-type]
    refs = [
        oci,
        f"oci-archive:{tmp_path / 'a.tar'}:v1",
        f"docker-archive:{tmp_path / 'd.tar'}:app:v1",
        f"docker://{registry.host}/advisor/four-{compression}:v1",
    ]
    skopeo_copy(oci, refs[1], "--dest-oci-accept-uncompressed-layers")
    if compression == "gzip":
        skopeo_copy(oci, refs[3])
    else:  # skopeo gzips plain layers on push, and swaps in gzip variants it has seen
        write_image(refs[3], LAYERS, {}, compression=compression)  # type: ignore[arg-type]
    if compression == "zstd":  # skopeo 1.9 refuses zstd in docker formats; advisor's writer not
        make_image(tmp_path, LAYERS, fmt="docker-archive", name="d", tag="v1")
        refs[2] = f"docker-archive:{tmp_path / 'd.tar'}"
    else:
        skopeo_copy(oci, refs[2])
    seen = []
    for ref in refs:
        with open_image(ref) as image:
            uncompressed = []
            for layer in image.layers:
                with image.source.open_blob(layer.blob) as f:
                    uncompressed.append(len(_decompress(f.read(), layer.compression)))
            seen.append((image.config.digest, tuple(image.config.diff_ids), uncompressed))
            if not ref.startswith("docker-archive:"):
                got = [layer.compression for layer in image.layers]
                assert got == [compression] * 2, ref
    assert seen[0] == seen[1] == seen[2] == seen[3]


def _decompress(data: bytes, compression: str) -> bytes:
    if compression == "gzip":
        return gzip.decompress(data)
    if compression == "zstd":
        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as r:
            return r.read()
    return data


def test_unknown_tag_and_repository_are_not_found(
    pushed: tuple[str, str], registry: RegistryServer, docker_config: Path
) -> None:
    for ref in (
        f"docker://{registry.host}/advisor/pushed:nope",
        f"docker://{registry.host}/advisor/absent:v1",
    ):
        with pytest.raises(BadInputError, match="image not found") as info:
            open_image(ref)
        assert info.value.exit_code == 3 and info.value.hint


def test_wrong_digest_reference_is_a_mismatch_or_not_found(
    pushed: tuple[str, str], registry: RegistryServer, docker_config: Path
) -> None:
    with pytest.raises(BadInputError):
        open_image(f"docker://{registry.host}/advisor/pushed@sha256:{'0' * 64}")


def test_deleted_blob_is_reported_missing(
    registry: RegistryServer, tmp_path: Path, docker_config: Path
) -> None:
    oci = make_image(tmp_path, [{"only": b"x" * 1000}], name="gone")
    dest = f"docker://{registry.host}/advisor/gone:v1"
    skopeo_copy(oci, dest)
    with open_image(dest) as image:
        digest = image.layers[0].blob.digest
        resp = requests.delete(f"http://{registry.host}/v2/advisor/gone/blobs/{digest}", timeout=10)
        assert resp.status_code == 202
        with pytest.raises(BadInputError, match="missing"):
            image.source.open_blob(image.layers[0].blob)


def test_blob_with_wrong_descriptor_fails_verification(
    pushed: tuple[str, str], registry: RegistryServer, docker_config: Path
) -> None:
    with open_image(pushed[1]) as image:
        blob = image.layers[1].blob
        lying = Descriptor(blob.media_type, image.layers[0].blob.digest, blob.size)
        client = RegistryClient(registry.host)
        # the registry serves layer 0's bytes under its digest; claiming layer 1's size must fail
        with pytest.raises(BadInputError), client.open_blob("advisor/pushed", lying) as f:
            f.read()
        with pytest.raises(DigestMismatchError):
            client._check_manifest_digest(b"{}", "sha256:" + "1" * 64, None)


# -- push side ---------------------------------------------------------------------------------


def _layout_blob(layout: Path, digest: str) -> Path:
    return layout / "blobs" / "sha256" / digest.split(":")[1]


def _push_layout(
    client: RegistryClient, repo: str, layout: Path, manifest: dict[str, Any], tag: str, **kw: Any
) -> str:
    for desc in [manifest["config"], *manifest["layers"]]:
        d = Descriptor(desc["mediaType"], desc["digest"], desc["size"])
        client.push_blob(repo, d, lambda d=d: _layout_blob(layout, d.digest).open("rb"), **kw)
    body = manifest_bytes(layout, manifest)
    return client.push_manifest(repo, tag, manifest["mediaType"], body)


def manifest_bytes(layout: Path, manifest: dict[str, Any]) -> bytes:
    """The manifest exactly as the writer stored it (its digest covers these bytes)."""
    index = json.loads((layout / "index.json").read_bytes())
    body = _layout_blob(layout, index["manifests"][0]["digest"]).read_bytes()
    assert json.loads(body) == manifest
    return body


@pytest.mark.parametrize("chunk_size", [0, 65536])
def test_push_then_skopeo_reads_it(
    registry: RegistryServer, tmp_path: Path, chunk_size: int, docker_config: Path
) -> None:
    ref, written = make_image_written(tmp_path, LAYERS, name=f"push{chunk_size}")
    layout = Path(ref.split(":")[1])
    client = RegistryClient(registry.host)
    repo = f"advisor/push{chunk_size}"
    digest = _push_layout(client, repo, layout, dict(written.manifest), "v1", chunk_size=chunk_size)
    assert all(client.blob_exists(repo, layer["digest"]) for layer in written.manifest["layers"])
    out = subprocess.run(
        ["skopeo", "inspect", "--tls-verify=false", f"docker://{registry.host}/{repo}:v1"],
        check=True,
        capture_output=True,
        text=True,
    )
    inspected = json.loads(out.stdout)
    assert inspected["Digest"] == digest
    assert inspected["Layers"] == [layer["digest"] for layer in written.manifest["layers"]]
    skopeo_copy(
        f"docker://{registry.host}/{repo}:v1", f"oci:{tmp_path / 'back'}:v1"
    )  # verifies blobs
    with open_image(f"oci:{tmp_path / 'back'}:v1") as back, open_image(ref) as original:
        assert facts(back) == facts(original)


def _never() -> Any:
    raise AssertionError("a mounted blob must not be uploaded")


def test_push_mounts_from_another_repository(
    registry: RegistryServer, tmp_path: Path, docker_config: Path
) -> None:
    ref, written = make_image_written(tmp_path, LAYERS, name="mount")
    layout = Path(ref.split(":")[1])
    client = RegistryClient(registry.host)
    _push_layout(client, "advisor/mount-src", layout, dict(written.manifest), "v1")
    layer = written.manifest["layers"][0]
    desc = Descriptor(layer["mediaType"], layer["digest"], layer["size"])
    assert not client.blob_exists("advisor/mount-dst", desc.digest)

    client.push_blob("advisor/mount-dst", desc, _never, mount_from="advisor/mount-src")
    assert client.blob_exists("advisor/mount-dst", desc.digest)


def test_push_with_bad_bytes_is_refused(
    registry: RegistryServer, tmp_path: Path, docker_config: Path
) -> None:
    (tmp_path / "blob").write_bytes(b"not what the digest says")
    client = RegistryClient(registry.host, retry=FAST)
    desc = Descriptor("application/octet-stream", "sha256:" + "2" * 64, 24)
    with pytest.raises(BadInputError, match="another digest"):
        client.push_blob("advisor/bad", desc, lambda: (tmp_path / "blob").open("rb"))


def test_multi_platform_index_from_the_registry(
    registry: RegistryServer, tmp_path: Path, docker_config: Path
) -> None:
    client = RegistryClient(registry.host)
    entries = []
    for arch in ("amd64", "arm64"):
        ref, written = make_image_written(
            tmp_path, [{f"arch/{arch}": arch.encode()}], config={"architecture": arch}, name=arch
        )
        manifest = dict(written.manifest)
        digest = _push_layout(
            client, "advisor/multi", Path(ref.split(":")[1]), manifest, written.manifest_digest
        )
        size = len(manifest_bytes(Path(ref.split(":")[1]), manifest))
        entries.append(
            {
                "mediaType": manifest["mediaType"],
                "digest": digest,
                "size": size,
                "platform": {"os": "linux", "architecture": arch},
            }
        )
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": entries,
    }
    client.push_manifest("advisor/multi", "v1", index["mediaType"], json.dumps(index).encode())
    ref = f"docker://{registry.host}/advisor/multi:v1"
    with open_image(ref) as image:
        assert image.config.architecture == "amd64"
    with open_image(ref, platform=Platform("linux", "arm64")) as image:
        assert image.config.architecture == "arm64" and image.digest == entries[1]["digest"]
    with pytest.raises(BadInputError, match="no image for platform linux/s390x"):
        open_image(ref, platform=Platform("linux", "s390x"))


# -- auth --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def private(auth_registry: RegistryServer, tmp_path_factory: pytest.TempPathFactory) -> str:
    oci = make_image(tmp_path_factory.mktemp("private"), LAYERS[:1])
    dest = f"docker://{auth_registry.host}/team/private:v1"
    skopeo_copy(oci, dest, f"--dest-creds={USER}:{PASSWORD}")
    return dest


def test_basic_auth_without_credentials_is_exit_4(private: str, docker_config: Path) -> None:
    with pytest.raises(RegistryError) as info:
        open_image(private)
    assert info.value.exit_code == 4 and info.value.status == 401
    assert "docker login" in info.value.hint and "DOCKER_CONFIG" in info.value.hint


def test_basic_auth_with_config_json(
    private: str, auth_registry: RegistryServer, docker_config: Path
) -> None:
    write_docker_config(docker_config, auth_registry.host)
    with open_image(private) as image:
        assert read_blobs(image) == [layer.blob.size for layer in image.layers]


def test_basic_auth_with_wrong_password(
    private: str, auth_registry: RegistryServer, docker_config: Path
) -> None:
    write_docker_config(docker_config, f"http://{auth_registry.host}/", password="wrong")
    with pytest.raises(RegistryError) as info:
        open_image(private)
    assert info.value.status == 401 and "saved credentials" in info.value.message


def test_credential_helper(
    private: str,
    auth_registry: RegistryServer,
    docker_config: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    helper = bindir / "docker-credential-advisortest"
    answer = json.dumps({"ServerURL": auth_registry.host, "Username": USER, "Secret": PASSWORD})
    helper.write_text(
        f"#!/bin/sh\nread host\n[ \"$host\" = {auth_registry.host} ] || exit 1\necho '{answer}'\n"
    )
    helper.chmod(helper.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{bindir}:{os.environ['PATH']}")
    (docker_config / "config.json").write_text(
        json.dumps({"credHelpers": {auth_registry.host: "advisortest"}})
    )
    with open_image(private) as image:
        assert image.layers
    (docker_config / "config.json").write_text(json.dumps({"credsStore": "absent-helper"}))
    with pytest.raises(RegistryError, match="docker-credential-absent-helper") as info:
        open_image(private)
    assert info.value.hint


def test_token_auth(token_registry: RegistryServer, tmp_path: Path, docker_config: Path) -> None:
    oci = make_image(tmp_path, LAYERS[:1])
    dest = f"docker://{token_registry.host}/team/tokened:v1"
    skopeo_copy(oci, dest, f"--dest-creds={USER}:{PASSWORD}")
    with pytest.raises(RegistryError) as info:
        open_image(dest)
    assert info.value.exit_code == 4
    write_docker_config(docker_config, token_registry.host)
    token_registry.token_requests.clear()
    with open_image(dest) as image, open_image(oci) as local:
        assert facts(image) == facts(local)
        assert read_blobs(image)
    assert {r["scope"] for r in token_registry.token_requests} == {"repository:team/tokened:pull"}
    assert len(token_registry.token_requests) == 1  # the token is cached per scope


def test_token_auth_push_and_mount(
    token_registry: RegistryServer, tmp_path: Path, docker_config: Path
) -> None:
    from advisor.oci.sources.credentials import Credentials

    ref, written = make_image_written(tmp_path, LAYERS[:1], name="tokpush")
    layout = Path(ref.split(":")[1])
    client = RegistryClient(token_registry.host, credentials=Credentials(USER, PASSWORD))
    _push_layout(client, "team/src", layout, dict(written.manifest), "v1")
    layer = written.manifest["layers"][0]
    desc = Descriptor(layer["mediaType"], layer["digest"], layer["size"])
    token_registry.token_requests.clear()
    client.push_blob("team/dst", desc, _never, mount_from="team/src")
    assert client.blob_exists("team/dst", desc.digest)
    scopes = [r["scope"] for r in token_registry.token_requests]
    assert "repository:team/dst:pull,push repository:team/src:pull" in scopes


def test_token_auth_with_identity_token(
    token_registry: RegistryServer, tmp_path: Path, docker_config: Path
) -> None:
    oci = make_image(tmp_path, LAYERS[:1])
    dest = f"docker://{token_registry.host}/team/refreshed:v1"
    skopeo_copy(oci, dest, f"--dest-creds={USER}:{PASSWORD}")
    config = {"auths": {token_registry.host: {"identitytoken": REFRESH_TOKEN}}}
    (docker_config / "config.json").write_text(json.dumps(config))
    token_registry.token_requests.clear()
    with open_image(dest) as image:
        assert read_blobs(image)
    assert token_registry.token_requests == [
        {"scope": "repository:team/refreshed:pull", "grant": "refresh_token"}
    ]


# -- retries and network errors ----------------------------------------------------------------


class _Flaky:
    """An HTTP proxy in front of the real registry that fails the first N requests."""

    def __init__(
        self,
        upstream: str,
        failures: int,
        status: int,
        retry_after: str | None,
        redirect_blobs: bool = False,
        encode_blobs: bool = False,
        cut_blobs: int = 0,
    ) -> None:
        self.upstream = upstream
        self.cut_blobs = cut_blobs  # blob responses to break off halfway
        self.ranges: list[str] = []
        self.encode_blobs = encode_blobs
        self.redirect_blobs = redirect_blobs
        self.failures = failures
        self.seen = 0
        handler = self._handler()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.host = f"127.0.0.1:{self.server.server_address[1]}"
        self.status = status
        self.retry_after = retry_after

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        flaky = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                flaky.seen += 1
                if flaky.seen <= flaky.failures:
                    self.send_response(flaky.status)
                    if flaky.retry_after is not None:
                        self.send_header("Retry-After", flaky.retry_after)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if flaky.redirect_blobs and "/blobs/" in self.path:
                    self.send_response(307)  # as registries send clients to object storage
                    self.send_header("Location", f"http://{flaky.upstream}{self.path}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                headers = {"Accept": self.headers.get("Accept", "*/*")}
                if self.headers.get("Range"):
                    headers["Range"] = self.headers["Range"]
                    flaky.ranges.append(self.headers["Range"])
                conn = http.client.HTTPConnection(flaky.upstream, timeout=10)
                conn.request("GET", self.path, headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                conn.close()
                self.send_response(resp.status)
                if flaky.cut_blobs and "/blobs/" in self.path and len(body) > 10_000:
                    flaky.cut_blobs -= 1
                    if resp.getheader("Content-Range"):
                        self.send_header("Content-Range", resp.getheader("Content-Range", ""))
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body[: len(body) // 2])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                for key in ("Content-Type", "Docker-Content-Digest", "Content-Range"):
                    if resp.getheader(key):
                        self.send_header(key, resp.getheader(key, ""))
                if flaky.encode_blobs and "/blobs/" in self.path:
                    body = gzip.compress(body)  # a CDN compressing in transit
                    self.send_header("Content-Encoding", "gzip")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                return None

        return Handler

    def __enter__(self) -> _Flaky:
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize(
    ("status", "retry_after"), [(503, None), (429, "0"), (502, "not-a-number")]
)
def test_transient_errors_are_retried(
    pushed: tuple[str, str],
    registry: RegistryServer,
    status: int,
    retry_after: str | None,
    docker_config: Path,
) -> None:
    with _Flaky(registry.host, 2, status, retry_after) as flaky:
        name = parse_docker_name(f"{flaky.host}/advisor/pushed:v1")
        client = RegistryClient(name.registry, retry=FAST)
        source = RegistrySource(name, client=client)
        desc = source.root()
        assert desc.digest and flaky.seen >= 3


def test_blob_reads_follow_redirects(
    pushed: tuple[str, str], registry: RegistryServer, docker_config: Path
) -> None:
    with _Flaky(registry.host, 0, 200, None, redirect_blobs=True) as flaky:
        ref = f"docker://{flaky.host}/advisor/pushed:v1"
        with open_image(ref) as image:
            assert read_blobs(image) == [layer.blob.size for layer in image.layers]


def test_blob_reads_undo_a_transfer_encoding(
    pushed: tuple[str, str], registry: RegistryServer, docker_config: Path
) -> None:
    flaky = _Flaky(registry.host, 0, 200, None, encode_blobs=True)
    with flaky, open_image(f"docker://{flaky.host}/advisor/pushed:v1") as image:
        assert read_blobs(image) == [layer.blob.size for layer in image.layers]


def test_broken_blob_downloads_resume_with_range(
    pushed: tuple[str, str], registry: RegistryServer, docker_config: Path
) -> None:
    flaky = _Flaky(registry.host, 0, 200, None, cut_blobs=2)
    with flaky, open_image(f"docker://{flaky.host}/advisor/pushed:v1") as image:
        big = max(image.layers, key=lambda layer: layer.blob.size).blob
        with image.source.open_blob(big) as f:
            assert len(f.read()) == big.size  # and its digest verified at EOF
    first, second = (int(r.removeprefix("bytes=").removesuffix("-")) for r in flaky.ranges)
    assert 0 < first < second < big.size  # resumed twice, each time where it broke


def test_broken_blob_downloads_give_up(
    pushed: tuple[str, str], registry: RegistryServer, docker_config: Path
) -> None:
    with _Flaky(registry.host, 0, 200, None, cut_blobs=100) as flaky:
        name = parse_docker_name(f"{flaky.host}/advisor/pushed:v1")
        source = RegistrySource(name, client=RegistryClient(name.registry, retry=FAST))
        with load_image(source, host_platform()) as image:
            big = max(image.layers, key=lambda layer: layer.blob.size).blob
            with pytest.raises(RegistryError, match="connection broke") as info:
                image.source.open_blob(big).read()
        assert info.value.exit_code == 4
        assert len(flaky.ranges) == FAST.attempts - 1


def test_retries_are_bounded(
    pushed: tuple[str, str], registry: RegistryServer, docker_config: Path
) -> None:
    with _Flaky(registry.host, 100, 500, None) as flaky:
        client = RegistryClient(flaky.host, retry=FAST)
        client._base = f"http://{flaky.host}"
        with pytest.raises(RegistryError) as info:
            client.get_manifest("advisor/pushed", "v1")
        assert info.value.exit_code == 4 and info.value.status == 500
        assert flaky.seen == FAST.attempts


def test_connection_refused_is_exit_4(docker_config: Path) -> None:
    host = f"127.0.0.1:{free_port()}"
    client = RegistryClient(host, retry=FAST)
    with pytest.raises(RegistryError, match=f"connection refused by {host}") as info:
        client.get_manifest("x/y", "v1")
    assert info.value.exit_code == 4 and info.value.hint


def test_plain_http_only_on_loopback_or_insecure() -> None:
    assert is_loopback("localhost:5000") and is_loopback("127.0.0.1") and is_loopback("[::1]:5000")
    assert not is_loopback("registry.example.com:5000")
    assert RegistryClient("registry.example.com").base_url() == "https://registry.example.com"
    assert RegistryClient("docker.io").base_url() == "https://registry-1.docker.io"


def test_credentials_from_auths_entries(docker_config: Path) -> None:
    from advisor.oci.sources.credentials import load_credentials

    auth = base64.b64encode(b"me:pw").decode()
    (docker_config / "config.json").write_text(
        json.dumps(
            {
                "auths": {
                    "https://index.docker.io/v1/": {"auth": auth},
                    "r.example": {"identitytoken": "s3cr3t-refresh"},
                }
            }
        )
    )
    hub = load_credentials("docker.io")
    assert hub is not None and (hub.username, hub.password) == ("me", "pw")
    other = load_credentials("r.example")
    assert other is not None and other.identity_token == "s3cr3t-refresh"
    assert "s3cr3t" not in repr(other) and "pw" not in repr(hub)
    assert load_credentials("nowhere.example") is None
