"""Shared fixtures: real docker-registry servers on loopback, started once per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.registry_server import RegistryServer, available, start_registry

# The slim-image fixtures (a Debian base, one build) serve tests/slim and tests/sandbox alike.
pytest_plugins = ("tests.slim.fixtures",)


def _start(tmp_path_factory: pytest.TempPathFactory, name: str, auth: str) -> Iterator[RegistryServer]:
    if not available():
        pytest.fail("docker-registry is not installed: apt-get install -y docker-registry")
    workdir: Path = tmp_path_factory.mktemp(name)
    server = start_registry(workdir, auth=auth)  # type: ignore[arg-type]
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """An anonymous registry: ``registry.host`` is ``127.0.0.1:PORT`` (plain HTTP)."""
    yield from _start(tmp_path_factory, "registry", "none")


@pytest.fixture(scope="session")
def auth_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A registry behind htpasswd basic auth (``tests.registry_server.USER``/``PASSWORD``)."""
    yield from _start(tmp_path_factory, "auth-registry", "htpasswd")


@pytest.fixture(scope="session")
def token_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RegistryServer]:
    """A registry using bearer token auth, with its token service in this process."""
    yield from _start(tmp_path_factory, "token-registry", "token")


@pytest.fixture
def docker_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty, private DOCKER_CONFIG, so the user's own credentials never leak into tests."""
    directory = tmp_path / "docker-config"
    directory.mkdir()
    monkeypatch.setenv("DOCKER_CONFIG", str(directory))
    return directory
