from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")

# task_artifacts(task, quantize="int8") -> an artifacts directory (cached: treat as read-only)
ArtifactsFactory = Callable[..., Path]


@pytest.fixture(scope="session")
def tiny_artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from tests.serve.tiny_artifacts import make_tiny_artifacts

    return make_tiny_artifacts(tmp_path_factory.mktemp("artifacts"))


@pytest.fixture(scope="session")
def task_artifacts(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> ArtifactsFactory:
    """Exported once per (task, quantize) and session; text-classification int8 is
    ``tiny_artifacts`` itself."""
    from tests.serve.tiny_artifacts import make_tiny_artifacts

    built: dict[tuple[str, str], Path] = {}

    def get(task: str, quantize: str = "int8") -> Path:
        if (task, quantize) == ("text-classification", "int8"):
            path: Path = request.getfixturevalue("tiny_artifacts")
            return path
        if (task, quantize) not in built:
            dest = tmp_path_factory.mktemp(f"{task}-{quantize}") / "artifacts"
            built[task, quantize] = make_tiny_artifacts(dest, task=task, quantize=quantize)
        return built[task, quantize]

    return get


def serve_model(model: Any, **settings: Any) -> Iterator[Any]:
    """A fixture body: ``model`` served on a loopback port in-process, stopped after."""
    from advisor.serve.app import App
    from advisor.serve.server import serve_in_thread
    from advisor.serve.settings import Settings

    app = App(model, Settings(host="127.0.0.1", port=0, access_log=False, **settings))
    with serve_in_thread(app) as srv:
        yield srv
    app.close()
