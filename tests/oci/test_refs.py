"""Image references: every transport of docs/DESIGN.md, "Image references", Docker's normalisation, round trips, errors."""

from __future__ import annotations

import pytest

from advisor.errors import UsageError
from advisor.oci.model import Platform
from advisor.oci.refs import (
    DockerName,
    ImageRef,
    Transport,
    parse_docker_name,
    parse_platform,
    parse_ref,
    platform_matches,
)

DIGEST = "sha256:" + "ab" * 32

NAMES = [
    ("ubuntu", DockerName("docker.io", "library/ubuntu", "latest")),
    ("ubuntu:22.04", DockerName("docker.io", "library/ubuntu", "22.04")),
    ("user/app", DockerName("docker.io", "user/app", "latest")),
    ("docker.io/ubuntu", DockerName("docker.io", "library/ubuntu", "latest")),
    ("index.docker.io/library/ubuntu:1", DockerName("docker.io", "library/ubuntu", "1")),
    ("localhost/app", DockerName("localhost", "app", "latest")),
    ("localhost:5000/x", DockerName("localhost:5000", "x", "latest")),
    ("127.0.0.1:5000/a/b:v1", DockerName("127.0.0.1:5000", "a/b", "v1")),
    ("host.tld/a/b:tag@" + DIGEST, DockerName("host.tld", "a/b", "tag", DIGEST)),
    ("host.tld/a/b@" + DIGEST, DockerName("host.tld", "a/b", "", DIGEST)),
    ("ghcr.io/o/r-x_y.z:1.0-rc", DockerName("ghcr.io", "o/r-x_y.z", "1.0-rc")),
    ("[::1]:5000/img:t", DockerName("[::1]:5000", "img", "t")),
]


@pytest.mark.parametrize(("text", "expected"), NAMES)
def test_docker_names_normalise_like_docker(text: str, expected: DockerName) -> None:
    assert parse_docker_name(text) == expected


REFS = [
    ("oci:/tmp/layout", ImageRef(Transport.OCI, path="/tmp/layout")),
    ("oci:/tmp/layout:v1", ImageRef(Transport.OCI, path="/tmp/layout", tag="v1")),
    ("oci:rel/dir:a.b-c", ImageRef(Transport.OCI, path="rel/dir", tag="a.b-c")),
    ("oci-archive:img.tar:latest", ImageRef(Transport.OCI_ARCHIVE, path="img.tar", tag="latest")),
    ("docker-archive:img.tar", ImageRef(Transport.DOCKER_ARCHIVE, path="img.tar")),
    ("docker-archive:img.tar:@1", ImageRef(Transport.DOCKER_ARCHIVE, path="img.tar", tag="@1")),
    (
        "docker-archive:img.tar:app:2",
        ImageRef(
            Transport.DOCKER_ARCHIVE,
            path="img.tar",
            tag="docker.io/library/app:2",
            name=DockerName("docker.io", "library/app", "2"),
        ),
    ),
    (
        "docker://ubuntu",
        ImageRef(Transport.REGISTRY, name=DockerName("docker.io", "library/ubuntu", "latest")),
    ),
    (
        "docker://localhost:5000/x@" + DIGEST,
        ImageRef(Transport.REGISTRY, name=DockerName("localhost:5000", "x", "", DIGEST)),
    ),
    (
        "docker-daemon:app:1",
        ImageRef(Transport.DAEMON, name=DockerName("docker.io", "library/app", "1")),
    ),
    (
        "python:3.11-slim",
        ImageRef(Transport.NAME, name=DockerName("docker.io", "library/python", "3.11-slim")),
    ),
]


@pytest.mark.parametrize(("text", "expected"), REFS)
def test_refs_parse_and_round_trip(text: str, expected: ImageRef) -> None:
    ref = parse_ref(text)
    assert ref == expected
    assert parse_ref(str(ref)) == ref


def test_canonical_spelling() -> None:
    assert str(parse_ref("ubuntu")) == "docker.io/library/ubuntu:latest"
    assert str(parse_ref("docker://localhost:5000/x:t")) == "docker://localhost:5000/x:t"
    assert str(parse_ref("oci:dir")) == "oci:dir"
    assert parse_docker_name("ubuntu").familiar == "ubuntu:latest"
    assert parse_docker_name("localhost:5000/x:t").familiar == "localhost:5000/x:t"


BAD = [
    "",
    "user/UPPER",
    "ubuntu:bad tag",
    "ubuntu@sha256:short",
    "ubuntu:" + "x" * 129,
    "oci:",
    "oci::tag",
    "oci:dir:bad tag!",
    "docker-archive:f.tar:@x",
    "docker-archive:f.tar:app@" + DIGEST,
    "docker://",
    "dir:/some/path",
    "containers-storage:img",
    "https://example.com/img",
    "host:abc/img",
    "a//b",
]


@pytest.mark.parametrize("text", BAD)
def test_malformed_refs_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError) as info:
        parse_ref(text)
    assert info.value.exit_code == 2
    assert info.value.hint


def test_platforms() -> None:
    assert parse_platform("linux/arm64/v8") == Platform("linux", "arm64", "v8")
    assert str(parse_platform("linux/amd64")) == "linux/amd64"
    with pytest.raises(UsageError):
        parse_platform("amd64")
    assert platform_matches(Platform("linux", "arm64", "v8"), Platform("linux", "arm64"))
    assert platform_matches(Platform("linux", "arm", ""), Platform("linux", "arm", "v7"))
    assert not platform_matches(Platform("linux", "arm", "v6"), Platform("linux", "arm", "v7"))
    assert not platform_matches(Platform("linux", "amd64"), Platform("windows", "amd64"))
