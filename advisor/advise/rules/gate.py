"""The CI gate: a severity threshold and a rules file (TOML), like dive's ``.dive-ci``.

Rules file (every key optional; sizes are bytes or strings like "500MB", "1.5GiB")::

    [gate]
    fail_on = "high"                 # any finding at or above this severity
    min_efficiency = 0.9             # dive: lowestEfficiency
    max_wasted_bytes = "50MB"        # dive: highestWastedBytes
    max_wasted_percent = 0.1         # dive: highestUserWastedPercent (share of the image)
    max_image_bytes = "2GB"
    max_cuda_bytes = 0               # bytes of GPU-only packages and libraries
    max_model_bytes = "500MB"
    banned_packages = ["pytest", "jupyter*"]
    ignore_rules = ["py-bytecode"]
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.advise.advice import Advice
from advisor.advise.rules.base import Severity, human
from advisor.errors import GateFailed, UsageError

_UNITS = {"": 1, "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
          "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4}
KNOWN_KEYS = frozenset({"fail_on", "min_efficiency", "max_wasted_bytes", "max_wasted_percent", "max_image_bytes",
                        "max_cuda_bytes", "max_model_bytes", "banned_packages", "ignore_rules"})


@dataclass(frozen=True)
class GateRules:
    fail_on: Severity | None = None
    min_efficiency: float | None = None
    max_wasted_bytes: int | None = None
    max_wasted_percent: float | None = None
    max_image_bytes: int | None = None
    max_cuda_bytes: int | None = None
    max_model_bytes: int | None = None
    banned_packages: tuple[str, ...] = ()
    ignore_rules: frozenset[str] = field(default_factory=frozenset)


def parse_size(value: object, key: str) -> int:
    if isinstance(value, bool):
        raise UsageError(f"gate rule {key}: expected a size, got {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value)
    m = re.fullmatch(r"\s*([\d.]+)\s*([a-zA-Z]*)\s*", str(value))
    if not m or m.group(2).lower() not in _UNITS:
        raise UsageError(f"gate rule {key}: cannot read size {value!r}", hint='use bytes or e.g. "500MB", "2GiB"')
    return int(float(m.group(1)) * _UNITS[m.group(2).lower()])


def _float(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"gate rule {key}: expected a number, got {value!r}")
    return float(value)


def rules_from_mapping(data: Mapping[str, Any]) -> GateRules:
    table = data.get("gate", data)
    if not isinstance(table, Mapping):
        raise UsageError("rules file: [gate] must be a table")
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        raise UsageError(f"rules file: unknown key(s) {', '.join(unknown)}", hint=f"known keys: {', '.join(sorted(KNOWN_KEYS))}")

    def opt(key: str, conv: Any) -> Any:
        return conv(table[key], key) if key in table else None

    banned = table.get("banned_packages", [])
    ignore = table.get("ignore_rules", [])
    if not isinstance(banned, list) or not isinstance(ignore, list):
        raise UsageError("rules file: banned_packages and ignore_rules must be lists of strings")
    return GateRules(
        fail_on=Severity.parse(str(table["fail_on"])) if "fail_on" in table else None,
        min_efficiency=opt("min_efficiency", _float), max_wasted_bytes=opt("max_wasted_bytes", parse_size),
        max_wasted_percent=opt("max_wasted_percent", _float), max_image_bytes=opt("max_image_bytes", parse_size),
        max_cuda_bytes=opt("max_cuda_bytes", parse_size), max_model_bytes=opt("max_model_bytes", parse_size),
        banned_packages=tuple(str(b) for b in banned), ignore_rules=frozenset(str(r) for r in ignore),
    )


def load_rules(path: Path) -> GateRules:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as e:
        raise UsageError(f"rules file not found: {path}") from e
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"rules file {path} is not valid TOML: {e}") from e
    return rules_from_mapping(data)


def gate_failures(advice: Advice, rules: GateRules) -> list[str]:
    """Every reason the gate trips (empty: it passes)."""
    out: list[str] = []
    if rules.fail_on is not None:
        hits = [f for f in advice.findings if f.severity >= rules.fail_on and f.rule not in rules.ignore_rules]
        if hits:
            ids = ", ".join(sorted({f.rule for f in hits}))
            out.append(f"{len(hits)} finding(s) at or above {rules.fail_on}: {ids}")
    if rules.min_efficiency is not None and advice.efficiency < rules.min_efficiency:
        out.append(f"efficiency {advice.efficiency:.3f} < {rules.min_efficiency}")
    if rules.max_wasted_bytes is not None and advice.wasted_bytes > rules.max_wasted_bytes:
        out.append(f"wasted {human(advice.wasted_bytes)} > {human(rules.max_wasted_bytes)}")
    if rules.max_wasted_percent is not None and advice.size_bytes:
        share = advice.wasted_bytes / advice.size_bytes
        if share > rules.max_wasted_percent:
            out.append(f"wasted share {share:.3f} > {rules.max_wasted_percent}")
    if rules.max_image_bytes is not None and advice.size_bytes > rules.max_image_bytes:
        out.append(f"image {human(advice.size_bytes)} > {human(rules.max_image_bytes)}")
    cuda = int(advice.categories.get("gpu", 0))
    if rules.max_cuda_bytes is not None and cuda > rules.max_cuda_bytes:
        out.append(f"GPU/CUDA bytes {human(cuda)} > {human(rules.max_cuda_bytes)}")
    models = int(advice.categories.get("models", 0))
    if rules.max_model_bytes is not None and models > rules.max_model_bytes:
        out.append(f"model bytes {human(models)} > {human(rules.max_model_bytes)}")
    for pattern in rules.banned_packages:
        banned = sorted({d.name for d in advice.distributions if fnmatch.fnmatchcase(d.key, pattern.lower())})
        if banned:
            out.append(f"banned package(s) {', '.join(banned)} (rule {pattern!r})")
    return out


def gate(advice: Advice, fail_on: str | Severity | None = None, rules_file: Path | None = None) -> None:
    """Raise ``GateFailed`` (exit 1) when a finding or a rules-file limit trips."""
    rules = load_rules(rules_file) if rules_file is not None else GateRules()
    if fail_on is not None:
        sev = fail_on if isinstance(fail_on, Severity) else Severity.parse(fail_on)
        rules = GateRules(**{**rules.__dict__, "fail_on": sev})
    failures = gate_failures(advice, rules)
    if failures:
        raise GateFailed("gate failed: " + "; ".join(failures),
                         hint="fix the findings above, or relax --fail-on / the rules file")
