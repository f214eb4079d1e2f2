"""Fixtures for export tests: tiny models per (arch, task), built once per session."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.export.tiny import make_tiny_model

TinyFactory = Callable[[str, str], Path]


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> TinyFactory:
    """``tiny_model(arch, task)`` -> a model folder (cached: treat it as read-only)."""
    built: dict[tuple[str, str], Path] = {}

    def get(arch: str, task: str = "text-classification") -> Path:
        key = (arch, task)
        if key not in built:
            built[key] = make_tiny_model(tmp_path_factory.mktemp(f"{arch}-{task}"), arch, task)
        return built[key]

    return get
