"""scripts/casestudy.py's steps: overlapping ones keep their own times, CPU included."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "casestudy.py"


def _steps_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("casestudy_script", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_overlapping_steps_record_their_own_wall_and_cpu_seconds(tmp_path: Path) -> None:
    cs = _steps_module()
    steps = cs.Steps(tmp_path)
    # the sleeper is waited for first and ends last; the burner's CPU is a grandchild's
    sleeper = steps.start("sleeper", [sys.executable, "-c", "import time; time.sleep(4); print('{\"s\": 1}')"])
    burner = steps.start("burner", [sys.executable, "-c", "import subprocess, sys; subprocess.run("
                                    "[sys.executable, '-c', 'sum(range(10_000_000))'], check=True); print('{\"b\": 2}')"])
    assert cs.last_json(steps.finish(sleeper)) == {"s": 1}
    assert cs.last_json(steps.finish(burner)) == {"b": 2}
    assert steps.times["sleeper"] >= 4 and steps.cpu["sleeper"] < 1.0
    assert steps.cpu["burner"] >= 0.1  # the grandchild's sum is counted
    assert steps.times["burner"] < steps.times["sleeper"] - 1  # its own end, not the sleeper's


def test_a_failed_step_stops_the_job_with_its_exit_code_and_log(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cs = _steps_module()
    steps = cs.Steps(tmp_path)
    with pytest.raises(SystemExit) as stop:
        steps("broken", [sys.executable, "-c", "import sys; sys.exit('no model here')"])
    assert stop.value.code == 1
    err = capsys.readouterr().err
    assert "no model here" in err and str(tmp_path / "logs" / "broken.log") in err
