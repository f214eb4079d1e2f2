"""Fixtures for export tests: tiny models per (arch, task), cached under ADVISOR_CACHE."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from tests.export.tiny import tiny_model_dir

TinyFactory = Callable[..., Path]


@pytest.fixture(scope="session")
def tiny_model() -> TinyFactory:
    """``tiny_model(arch, task)`` -> a model folder (cached and shared: treat it as read-only)."""
    return tiny_model_dir
