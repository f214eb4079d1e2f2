"""Fixtures for the security suite: the tiny classifier the serving tests load."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.serve.tiny_artifacts import make_tiny_artifacts

    return make_tiny_artifacts(tmp_path_factory.mktemp("security-artifacts"))
