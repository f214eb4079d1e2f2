"""What a new user types: paths without a transport, bare names with no engine, unreachable
registries, a platform the image lacks. Each against real files, sockets and resolvers."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from advisor.errors import BadInputError, RegistryError
from advisor.oci.loader import open_image
from advisor.oci.model import Platform
from tests.oci.helpers import make_image, make_image_written

LAYERS = [{"etc/hello": b"hi\n"}]


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once it is closed


def _cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "advisor.cli", *args], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **(env or {})})


# -- paths without a transport -------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["docker-archive", "oci-archive", "oci"])
def test_a_path_is_read_with_the_transport_it_needs(tmp_path: Path, fmt: str,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    ref = make_image(tmp_path, LAYERS, fmt=fmt)  # type: ignore[arg-type]
    path = Path(ref.split(":")[1])
    monkeypatch.chdir(path.parent)
    for spelled in (str(path), f"./{path.name}", path.name):
        with open_image(spelled) as image:
            assert image.reference.startswith(f"{fmt}:"), spelled
            assert [layer.index for layer in image.layers] == [0]


def test_paths_that_are_no_image_say_which_transport(tmp_path: Path) -> None:
    (tmp_path / "notes.tar").write_bytes(b"not a tar at all" * 64)
    (tmp_path / "plain").mkdir()
    for spelled, words in ((str(tmp_path / "notes.tar"), "not a tar archive"),
                           (str(tmp_path / "plain"), "not an OCI layout"),
                           (str(tmp_path / "missing.tar"), "no such file")):
        with pytest.raises(BadInputError, match=words) as e:
            open_image(spelled)
        assert "oci" in e.value.hint, spelled


def test_cli_on_a_bare_archive_path(tmp_path: Path) -> None:
    ref = make_image(tmp_path, LAYERS, fmt="docker-archive")
    r = _cli("advise", ref.split(":")[1], "--format", "json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["image"]["reference"].startswith("docker-archive:")


# -- the network: fast, one line, the cause ------------------------------------------------------


def test_connection_refused_is_fast_and_says_so() -> None:
    port = _closed_port()
    t = time.perf_counter()
    with pytest.raises(RegistryError) as e:
        open_image(f"docker://127.0.0.1:{port}/some/image:1")
    took = time.perf_counter() - t
    assert str(e.value) == f"connection refused by 127.0.0.1:{port}"
    assert "--insecure" not in e.value.hint and e.value.exit_code == 4
    assert took < 2.0, took  # no retries: nobody listens, trying again cannot help


def test_unresolvable_name_is_fast_and_says_so() -> None:
    t = time.perf_counter()
    with pytest.raises(RegistryError) as e:
        open_image("docker://no-such-registry.invalid/some/image:1")
    took = time.perf_counter() - t
    assert str(e.value) == "cannot resolve no-such-registry.invalid: no network?"
    assert "--insecure" not in e.value.hint and "HTTPSConnectionPool" not in str(e.value)
    assert took < 5.0, took  # one resolver round, not five


def test_cli_network_error_is_one_line_with_a_hint() -> None:
    port = _closed_port()
    r = _cli("advise", f"docker://127.0.0.1:{port}/x:1")
    assert r.returncode == 4
    lines = r.stderr.strip().splitlines()
    assert lines[0] == f"error: connection refused by 127.0.0.1:{port}", r.stderr
    assert lines[1].startswith("hint: ") and len(lines) == 2


def test_a_bare_name_says_which_engine_it_asked(tmp_path: Path) -> None:
    port = _closed_port()
    sock = tmp_path / "docker.sock"  # no engine listens here
    with pytest.raises(RegistryError) as e:
        old = os.environ.get("DOCKER_HOST")
        os.environ["DOCKER_HOST"] = f"unix://{sock}"
        try:
            open_image(f"127.0.0.1:{port}/team/app:1")
        finally:
            if old is None:
                del os.environ["DOCKER_HOST"]
            else:
                os.environ["DOCKER_HOST"] = old
    msg = str(e.value)
    assert msg.startswith(f"connection refused by 127.0.0.1:{port}")
    assert f"no Docker engine answered at unix://{sock} (DOCKER_HOST), so advisor asked the registry 127.0.0.1:{port}" in msg


# -- --platform ------------------------------------------------------------------------------


def _arm64_only(tmp_path: Path, as_index: bool) -> str:
    """An arm64 image: a layout whose index.json names it with its platform, or (as_index)
    behind an image index that lists that one platform."""
    ref, written = make_image_written(tmp_path, LAYERS, config={"architecture": "arm64"}, name="arm")
    layout = Path(ref.split(":")[1])
    entry = {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": written.manifest_digest,
             "size": (layout / "blobs" / "sha256" / written.manifest_digest[7:]).stat().st_size,
             "platform": {"os": "linux", "architecture": "arm64"}}
    top = entry
    if as_index:
        import hashlib

        body = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                           "manifests": [entry]}).encode()
        digest = hashlib.sha256(body).hexdigest()
        (layout / "blobs" / "sha256" / digest).write_bytes(body)
        top = {"mediaType": "application/vnd.oci.image.index.v1+json", "digest": f"sha256:{digest}",
               "size": len(body)}
    top = {**top, "annotations": {"org.opencontainers.image.ref.name": "only"}}
    (layout / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": [top]}))
    return f"oci:{layout}:only"


@pytest.mark.parametrize("as_index", [False, True])
def test_a_platform_the_image_lacks_is_exit_3(tmp_path: Path, as_index: bool) -> None:
    ref = _arm64_only(tmp_path, as_index)
    with open_image(ref, platform=Platform("linux", "arm64")) as image:
        assert image.config.architecture == "arm64"
    with pytest.raises(BadInputError) as e:
        open_image(ref, platform=Platform("linux", "amd64"))
    assert "linux/arm64" in str(e.value) + e.value.hint and e.value.exit_code == 3
    r = _cli("advise", ref, "--platform", "linux/amd64")
    assert r.returncode == 3 and r.stderr.startswith("error: "), r.stderr
