"""The CI gate: --fail-on severity and a TOML rules file (dive's .dive-ci, plus ML limits)."""

from __future__ import annotations

from pathlib import Path

import pytest

from advisor.advise.advice import build_advice
from advisor.advise.rules.gate import gate, load_rules, parse_size
from advisor.errors import GateFailed, UsageError
from tests.advise.rules import fixtures as fx


def test_fail_on_severity() -> None:
    advice = build_advice(fx.cuda_torch().context())
    with pytest.raises(GateFailed) as e:
        gate(advice, fail_on="high")
    assert e.value.exit_code == 1 and "ml-cuda-torch" in str(e.value)
    gate(build_advice(fx.clean().context()), fail_on="info")  # nothing found: passes


def test_rules_file_limits(tmp_path: Path) -> None:
    advice = build_advice(fx.cuda_torch().context())
    rules = tmp_path / "advisor.toml"
    rules.write_text('[gate]\nmax_cuda_bytes = "1GB"\nbanned_packages = ["nvidia-*"]\nmax_image_bytes = "10GiB"\n')
    with pytest.raises(GateFailed) as e:
        gate(advice, rules_file=rules)
    msg = str(e.value)
    assert "max_cuda_bytes 2.8 GB > 1.0 GB" in msg and "nvidia-cublas" in msg and "max_image_bytes" not in msg
    rules.write_text('[gate]\nmax_cuda_bytes = "100GB"\nmin_efficiency = 0.5\nmax_model_bytes = 0\n')
    gate(advice, rules_file=rules)


def test_model_and_waste_limits(tmp_path: Path) -> None:
    advice = build_advice(fx.hidden().context())
    rules = tmp_path / "r.toml"
    rules.write_text("[gate]\nmax_wasted_bytes = 1000\n")
    with pytest.raises(GateFailed, match="wasted"):
        gate(advice, rules_file=rules)
    advice = build_advice(fx.model_formats().context())
    rules.write_text('[gate]\nmax_model_bytes = "100MB"\nignore_rules = ["model-duplicate-formats"]\nfail_on = "medium"\n')
    with pytest.raises(GateFailed, match="max_model_bytes") as e:
        gate(advice, rules_file=rules)
    assert "finding" not in str(e.value)


def test_bad_rules_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[gate]\nmax_cuda = 1\n")
    with pytest.raises(UsageError, match="unknown key"):
        load_rules(bad)
    bad.write_text("[gate\n")
    with pytest.raises(UsageError, match="not valid TOML"):
        load_rules(bad)
    with pytest.raises(UsageError):
        load_rules(tmp_path / "missing.toml")
    with pytest.raises(UsageError):
        gate(build_advice(fx.clean().context()), fail_on="severe")
    assert parse_size("1.5GiB", "k") == int(1.5 * 1024**3) and parse_size(10, "k") == 10
    with pytest.raises(UsageError):
        parse_size("ten", "k")


def test_findings_worst_first_then_largest() -> None:
    from tests.advise.test_advice import _combined

    findings = build_advice(_combined(with_model=True).context()).findings
    keys = [(-f.severity, -f.bytes) for f in findings]
    assert keys == sorted(keys) and len({f.severity for f in findings}) > 3
    assert keys != sorted(keys, key=lambda k: k[1])  # a smaller, worse finding comes first
