from __future__ import annotations

import os

import pytest

from advisor.serve.settings import Settings, SettingsError


def test_defaults_match_the_image_contract() -> None:
    s = Settings.from_env({})
    assert (s.port, s.host, s.model_dir) == (8080, "0.0.0.0", "/app/model")
    # a worker per usable core, one onnxruntime thread each (benchmarks/load/README.md)
    assert (s.workers, s.intra_op_threads) == (len(os.sched_getaffinity(0)), 1)
    assert s.max_wait_ms == 0  # a free worker does not wait for company


def test_env_overrides() -> None:
    s = Settings.from_env(
        {"PORT": "9001", "MAX_BATCH": "4", "WORKERS": "2", "MAX_BODY_BYTES": "10"}
    )
    assert (s.port, s.max_batch, s.workers, s.max_body_bytes) == (9001, 4, 2, 10)


@pytest.mark.parametrize(
    "env", [{"PORT": "x"}, {"PORT": "70000"}, {"MAX_BATCH": "0"}, {"WORKERS": "-1"}]
)
def test_bad_values_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(SettingsError):
        Settings.from_env(env)
