"""The registry client against the real docker-registry behind a fault-injecting proxy.

Bounded retries and timeouts, resumption of broken blob reads, a clean error (exit 4, one
line) when it gives up, and a push interrupted halfway that the next push completes.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from advisor.advise.facts.capture import capture_for
from advisor.errors import AdvisorError, BadInputError, RegistryError
from advisor.oci.layers import read_layers
from advisor.oci.loader import open_image
from advisor.oci.model import Descriptor
from advisor.oci.sources.registry import RegistryClient, RetryPolicy
from advisor.oci.writer import write_image
from tests.registry_server import RegistryServer
from tests.security.fault_proxy import Fault, FaultProxy, fault_proxy

REPO_NAME = "sec/base"
POLICY = RetryPolicy(attempts=3, base_delay=0.05, max_delay=2.0, timeout=1.5)
BLOB_BYTES = 400_000


@pytest.fixture(scope="module")
def seeded(registry: RegistryServer) -> str:
    """An image of two layers (one ~400 kB incompressible) pushed straight to the registry."""
    layers = [{"data/blob.bin": os.urandom(BLOB_BYTES)}, {"etc/two": b"2" * 5000}]
    write_image(f"docker://{registry.host}/{REPO_NAME}:v1", layers, {})
    return REPO_NAME


@pytest.fixture
def proxy(registry: RegistryServer, docker_config: Path) -> Iterator[FaultProxy]:
    with fault_proxy(registry.host) as p:
        yield p


def _client(proxy: FaultProxy, policy: RetryPolicy = POLICY) -> RegistryClient:
    return RegistryClient(proxy.host, retry=policy, use_docker_config=False)


def _big_layer(client: RegistryClient, repo: str) -> Descriptor:
    manifest = json.loads(client.get_manifest(repo, "v1").body)
    layer = max(manifest["layers"], key=lambda d: d["size"])
    return Descriptor(layer["mediaType"], layer["digest"], layer["size"])


def _read(client: RegistryClient, repo: str, desc: Descriptor) -> int:
    with client.open_blob(repo, desc) as f:
        return len(f.read())


def _one_line(e: AdvisorError) -> None:
    assert e.message and "\n" not in e.message and e.hint


def test_401_then_a_token(proxy: FaultProxy, seeded: str) -> None:
    proxy.add(Fault("bearer", path="^/v2/", times=-1))
    client = _client(proxy)
    desc = _big_layer(client, seeded)
    assert _read(client, seeded, desc) == desc.size
    out = proxy.outcomes()
    assert "GET fault 401" in out and "GET token" in out
    assert out.count("GET token") <= 3  # the token is cached, not fetched per request


def test_403_is_a_clear_registry_error(proxy: FaultProxy, seeded: str) -> None:
    proxy.add(Fault("status", path="/manifests/", status=403, times=-1))
    with pytest.raises(RegistryError) as info:
        _client(proxy).get_manifest(seeded, "v1")
    assert info.value.status == 403 and info.value.exit_code == 4
    _one_line(info.value)


def test_404_blob_is_reported_missing(proxy: FaultProxy, seeded: str) -> None:
    client = _client(proxy)
    desc = _big_layer(client, seeded)
    proxy.add(Fault("status", path="/blobs/sha256:", status=404, times=-1))
    with pytest.raises(BadInputError) as info:
        _read(client, seeded, desc)
    assert "missing" in info.value.message


def test_429_retry_after_is_honoured(proxy: FaultProxy, seeded: str) -> None:
    proxy.add(Fault("status", path="/manifests/", status=429, headers={"Retry-After": "1"}))
    began = time.monotonic()
    _client(proxy).get_manifest(seeded, "v1")
    assert time.monotonic() - began >= 0.95
    assert proxy.outcomes("/manifests/") == ["GET fault status 429", "GET forwarded 200"]


def test_500s_are_retried_then_given_up_boundedly(proxy: FaultProxy, seeded: str) -> None:
    proxy.add(Fault("status", path="/manifests/", status=500, times=POLICY.attempts - 1))
    _client(proxy).get_manifest(seeded, "v1")  # survives attempts-1 failures
    proxy.clear()
    proxy.add(Fault("status", path="/manifests/", status=503, times=-1))
    with pytest.raises(RegistryError) as info:
        _client(proxy).get_manifest(seeded, "v1")
    _one_line(info.value)
    assert info.value.status == 503
    assert len(proxy.outcomes("/manifests/")) == POLICY.attempts


def test_reset_mid_blob_resumes_with_range(proxy: FaultProxy, seeded: str) -> None:
    client = _client(proxy)
    desc = _big_layer(client, seeded)
    proxy.add(Fault("reset", path="/blobs/sha256:", after_bytes=100_000))
    assert _read(client, seeded, desc) == desc.size  # and its digest verified
    ranged = [e for e in proxy.log if "/blobs/" in e.path and "Range" in e.headers]
    assert len(ranged) == 1 and ranged[0].headers["Range"].startswith("bytes=")
    assert int(ranged[0].headers["Range"][6:].rstrip("-")) > 0


def test_reset_mid_blob_every_time_gives_up(proxy: FaultProxy, seeded: str) -> None:
    client = _client(proxy)
    desc = _big_layer(client, seeded)
    proxy.add(Fault("reset", path="/blobs/sha256:", after_bytes=50_000, times=-1))
    with pytest.raises(RegistryError) as info:
        _read(client, seeded, desc)
    _one_line(info.value)
    assert len(proxy.outcomes("/blobs/")) == POLICY.attempts


def test_stalled_blob_times_out_and_resumes(proxy: FaultProxy, seeded: str) -> None:
    client = _client(proxy)
    desc = _big_layer(client, seeded)
    proxy.add(Fault("stall", path="/blobs/sha256:", after_bytes=120_000, stall_s=20))
    began = time.monotonic()
    assert _read(client, seeded, desc) == desc.size
    assert time.monotonic() - began < POLICY.timeout * 3


def test_stalled_blob_every_time_gives_up_in_bounded_time(proxy: FaultProxy, seeded: str) -> None:
    client = _client(proxy)
    desc = _big_layer(client, seeded)
    proxy.add(Fault("stall", path="/blobs/sha256:", after_bytes=10_000, stall_s=30, times=-1))
    began = time.monotonic()
    with pytest.raises(RegistryError):
        _read(client, seeded, desc)
    bound = POLICY.attempts * (POLICY.timeout + POLICY.max_delay) + 2
    assert time.monotonic() - began < bound


@pytest.mark.parametrize("action", ["reset", "stall"])
def test_broken_manifest_body_is_retried_or_a_registry_error(
    proxy: FaultProxy, seeded: str, action: str
) -> None:
    proxy.add(Fault(action, path="/manifests/", after_bytes=40, stall_s=10))
    try:
        _client(proxy).get_manifest(seeded, "v1")
    except RegistryError as e:
        _one_line(e)


def test_whole_image_read_through_transient_faults(proxy: FaultProxy, seeded: str) -> None:
    # The full pipeline (RegistrySource with its default policy) through a flaky link.
    proxy.add(Fault("status", path="/manifests/", status=502),
              Fault("reset", path="/blobs/sha256:", after_bytes=64_000))
    with open_image(f"docker://{proxy.host}/{seeded}:v1") as image:
        trees = read_layers(image, capture_for)
    assert trees[0].entries["data/blob.bin"].size == BLOB_BYTES
    assert "GET fault status 502" in proxy.outcomes() and "GET fault reset" in proxy.outcomes()


def test_push_interrupted_halfway_then_completed(proxy: FaultProxy, registry: RegistryServer) -> None:
    layers = [{"l0/blob.bin": os.urandom(200_000)}, {"l1/blob.bin": os.urandom(200_000)},
              {"l2/blob.bin": os.urandom(200_000)}]
    dest = f"docker://{proxy.host}/sec/pushed:v1"
    # Every upload after the first is lost mid-flight: the push must stop with exit 4.
    proxy.add(Fault("drop", method="PUT", path="/blobs/uploads/", times=-1, skip=1))
    with pytest.raises(RegistryError) as info:
        write_image(dest, layers, {})
    _one_line(info.value)
    puts = proxy.outcomes("/blobs/uploads/")
    assert puts.count("PUT forwarded 201") == 1 and puts.count("PUT fault drop") >= 2
    assert puts.count("POST forwarded 202") >= 3  # each retry starts a fresh upload session
    proxy.clear()
    written = write_image(dest, layers, {})  # the next push completes
    heads = proxy.outcomes("/blobs/sha256:")
    assert "HEAD forwarded 200" in heads  # the blob that made it is not sent again
    with open_image(f"docker://{registry.host}/sec/pushed:v1") as image:
        assert image.digest == written.manifest_digest
        trees = read_layers(image, capture_for)
    assert [sorted(t.entries) for t in trees] == [["l0", "l0/blob.bin"], ["l1", "l1/blob.bin"], ["l2", "l2/blob.bin"]]
