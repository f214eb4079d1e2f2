"""Slim-image fixtures (a pytest plugin of tests/conftest.py): the offline Debian base (cached in ADVISOR_CACHE), tiny artifacts, one build."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from advisor.slim.image import BuildResult

os.environ.setdefault("HF_HUB_OFFLINE", "1")

NEEDS_ROOT_TOOLS = pytest.mark.skipif(
    os.geteuid() != 0
    or not all(shutil.which(t) for t in ("mmdebstrap", "umoci", "skopeo", "unshare", "runc")),
    reason="needs root with mmdebstrap, umoci, skopeo, unshare and runc (apt-get install them)",
)


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.serve.tiny_artifacts import make_tiny_artifacts

    return make_tiny_artifacts(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture(scope="session")
def debian_base() -> str:
    """``oci:`` reference of the mmdebstrap base: built once (~1 min), then from the cache."""
    from advisor.slim.debian_base import ensure_debian_base

    return ensure_debian_base("full").reference


@pytest.fixture(scope="session")
def built(
    tmp_path_factory: pytest.TempPathFactory, tiny_artifacts: Path, debian_base: str
) -> BuildResult:
    """One build of the tiny model on the full base, shared by the build and runner tests."""
    from advisor.slim.image import BuildConfig, build_serving_image

    dest = tmp_path_factory.mktemp("img") / "layout"
    return build_serving_image(
        BuildConfig(artifacts=tiny_artifacts, base=debian_base, destination=f"oci:{dest}:v1")
    )
