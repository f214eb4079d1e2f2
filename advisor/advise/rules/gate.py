"""The CI gate: a severity threshold and a rules file, dive's ``.dive-ci`` or advisor's TOML.

advisor's rules file (TOML; every key optional; sizes are bytes or strings like "500MB")::

    [gate]
    fail_on = "high"                 # any finding at or above this severity
    min_efficiency = 0.9             # dive: lowestEfficiency
    max_wasted_bytes = "50MB"        # dive: highestWastedBytes
    max_wasted_percent = 0.1         # dive: highestUserWastedPercent (wasted / user-layer bytes)
    max_image_bytes = "2GB"
    max_cuda_bytes = 0               # bytes of GPU-only packages and libraries
    max_model_bytes = "500MB"
    banned_packages = ["pytest", "jupyter*"]
    ignore_rules = ["py-bytecode"]

A dive file (YAML, ``rules:`` with dive's camelCase or kebab-case keys) is read as dive reads
it: a key it leaves out takes dive's default (lowestEfficiency 0.9, highestUserWastedPercent
0.1, highestWastedBytes disabled), ``disabled``/``off``/``false``/empty turns a rule off, and
keys dive does not check (``plugins``, ``plugin/rule``) are ignored as dive ignores them.
The share is dive's: wasted bytes over the bytes of every layer but the first.
"""

from __future__ import annotations

import contextlib
import enum
import fnmatch
import math
import re
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Protocol

from advisor.advise.facts.layer_rows import LayerRow
from advisor.advise.rules.base import Finding, Severity, human, plural
from advisor.errors import GateFailed, UsageError


class _Distribution(Protocol):
    @property
    def name(self) -> str: ...
    @property
    def key(self) -> str: ...


class GateInput(Protocol):
    """What the gate reads of an ``Advice`` (which holds the gate's result: typing the input
    as this protocol keeps advice -> gate the only import between the two modules)."""

    @property
    def findings(self) -> Sequence[Finding]: ...
    @property
    def efficiency(self) -> float: ...
    @property
    def wasted_bytes(self) -> int: ...
    @property
    def size_bytes(self) -> int: ...
    @property
    def layers(self) -> Sequence[LayerRow]: ...
    @property
    def categories(self) -> Mapping[str, int]: ...
    @property
    def distributions(self) -> Sequence[_Distribution]: ...

_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3,
          "gb": 1000**3, "t": 1000**4, "tb": 1000**4, "ki": 1024, "kib": 1024, "mi": 1024**2,
          "mib": 1024**2, "gi": 1024**3, "gib": 1024**3, "ti": 1024**4, "tib": 1024**4}
KNOWN_KEYS = frozenset({"fail_on", "min_efficiency", "max_wasted_bytes", "max_wasted_percent", "max_image_bytes",
                        "max_cuda_bytes", "max_model_bytes", "banned_packages", "ignore_rules"})
# dive's keys (its legacy camelCase and its current kebab-case) -> advisor's
DIVE_KEYS = {"lowestEfficiency": "min_efficiency", "lowest-efficiency": "min_efficiency",
             "highestWastedBytes": "max_wasted_bytes", "highest-wasted-bytes": "max_wasted_bytes",
             "highestUserWastedPercent": "max_wasted_percent",
             "highest-user-wasted-percent": "max_wasted_percent"}
DIVE_NAME = {"min_efficiency": "lowestEfficiency", "max_wasted_bytes": "highestWastedBytes",
             "max_wasted_percent": "highestUserWastedPercent"}
DIVE_DEFAULTS: Mapping[str, object] = {"min_efficiency": 0.9, "max_wasted_bytes": "disabled",
                                       "max_wasted_percent": 0.1}
_SHARES = ("min_efficiency", "max_wasted_percent")


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
    disabled: frozenset[str] = field(default_factory=frozenset)  # keys turned off on purpose
    source: str = ""  # the rules file, for the report

    def with_fail_on(self, fail_on: str | Severity | None) -> GateRules:
        if fail_on is None:
            return self
        return replace(self, fail_on=fail_on if isinstance(fail_on, Severity) else Severity.parse(fail_on))


class Status(enum.StrEnum):
    PASS = "PASS"
    FAIL = "FAIL"
    SKIP = "SKIP"


@dataclass(frozen=True)
class Check:
    """One rule of the gate: its verdict, the value measured and the limit, as dive shows them."""

    rule: str
    status: Status
    value: str
    limit: str
    detail: str = ""
    dive_key: str = ""


@dataclass(frozen=True)
class GateResult:
    checks: tuple[Check, ...]
    source: str = ""

    @property
    def passed(self) -> bool:
        return all(c.status is not Status.FAIL for c in self.checks)

    def tally(self) -> dict[str, int]:
        return {s.value.lower(): sum(1 for c in self.checks if c.status is s) for s in Status}

    def summary(self) -> str:
        counts = " ".join(f"{k}:{v}" for k, v in self.tally().items() if v)
        return f"{'PASS' if self.passed else 'FAIL'} [{counts}]"


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
    if isinstance(value, str):
        with contextlib.suppress(ValueError):  # dive's YAML values may be strings: "0.9"
            value = float(value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise UsageError(f"gate rule {key}: expected a number, got {value!r}")
    number = float(value)
    if key in _SHARES and not 0 <= number <= 1:
        raise UsageError(f"gate rule {key}: {value!r} is outside 0..1",
                         hint="it is a share, as in dive: 0.1 means 10 %")
    return number


def _is_disabled(value: object) -> bool:
    """dive's test: an empty value, "disabled", "off" or "false" (YAML reads the last two as False)."""
    if value is None or value is False:
        return True
    return isinstance(value, str) and value.strip().lower() in ("", "disabled", "off", "false")


def rules_from_mapping(data: Mapping[str, Any], source: str = "") -> GateRules:
    table = data.get("gate", data)
    if not isinstance(table, Mapping):
        raise UsageError("rules file: [gate] must be a table")
    unknown = sorted(set(table) - KNOWN_KEYS)
    if unknown:
        raise UsageError(f"rules file: unknown key(s) {', '.join(unknown)}", hint=f"known keys: {', '.join(sorted(KNOWN_KEYS))}")
    disabled = frozenset(k for k in table if _is_disabled(table[k]))

    def opt(key: str, conv: Any) -> Any:
        return conv(table[key], key) if key in table and key not in disabled else None

    banned = table.get("banned_packages") or []
    ignore = table.get("ignore_rules") or []
    if not isinstance(banned, list) or not isinstance(ignore, list):
        raise UsageError("rules file: banned_packages and ignore_rules must be lists of strings")
    return GateRules(
        fail_on=Severity.parse(str(table["fail_on"])) if "fail_on" in table and "fail_on" not in disabled else None,
        min_efficiency=opt("min_efficiency", _float), max_wasted_bytes=opt("max_wasted_bytes", parse_size),
        max_wasted_percent=opt("max_wasted_percent", _float), max_image_bytes=opt("max_image_bytes", parse_size),
        max_cuda_bytes=opt("max_cuda_bytes", parse_size), max_model_bytes=opt("max_model_bytes", parse_size),
        banned_packages=tuple(str(b) for b in banned), ignore_rules=frozenset(str(r) for r in ignore),
        disabled=disabled, source=source,
    )


def rules_from_dive(data: Mapping[str, Any], source: str = "") -> GateRules:
    """A ``.dive-ci`` mapping (``rules:`` holding dive's keys), with dive's defaults."""
    rules = data.get("rules")
    if not isinstance(rules, Mapping):
        raise UsageError(f"rules file {source}: a dive file needs a 'rules:' mapping",
                         hint="dive's keys: lowestEfficiency, highestWastedBytes, highestUserWastedPercent")
    table: dict[str, object] = dict(DIVE_DEFAULTS)
    table.update({DIVE_KEYS[k]: v for k, v in rules.items() if k in DIVE_KEYS})
    return rules_from_mapping(table, source)


def _is_dive_file(path: Path) -> bool:
    return path.name.startswith(".dive-ci") or path.suffix.lower() in (".yaml", ".yml")


def _load_yaml(path: Path, text: str) -> GateRules:
    import yaml  # a YAML parser only for dive's files

    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        first = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"rules file {path} is not valid YAML: {first}") from e
    if not isinstance(data, Mapping):
        raise UsageError(f"rules file {path}: expected a mapping with 'rules:'")
    return rules_from_dive(data, str(path))


def load_rules(path: Path) -> GateRules:
    try:
        text = path.read_text(encoding="utf-8")
    except (FileNotFoundError, IsADirectoryError, NotADirectoryError) as e:
        raise UsageError(f"rules file not found: {path}",
                         hint="give a TOML file with a [gate] table, or dive's .dive-ci") from e
    if _is_dive_file(path):
        return _load_yaml(path, text)
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        if re.search(r"^rules:\s*$", text, re.MULTILINE):  # a .dive-ci under another name
            return _load_yaml(path, text)
        raise UsageError(f"rules file {path} is not valid TOML: {e}") from e
    return rules_from_mapping(data, str(path))


def load_gate(fail_on: str | Severity | None = None, rules_file: Path | None = None) -> GateRules | None:
    """The gate the options ask for (None: no gate); every value checked before any image is read."""
    if fail_on is None and rules_file is None:
        return None
    rules = load_rules(rules_file) if rules_file is not None else GateRules()
    return rules.with_fail_on(fail_on)


# -- evaluation ----------------------------------------------------------------------------------


def dive_user_bytes(advice: GateInput) -> int:
    """dive's userSizeBytes: every layer but the first (dive does not detect the base)."""
    return sum(r.size_bytes for r in advice.layers if r.index != 0)


def user_wasted_share(advice: GateInput) -> float:
    """dive's WastedUserPercent (a share, 0..1 or more), division by zero as Go's floats do it."""
    user = dive_user_bytes(advice)
    if user:
        return advice.wasted_bytes / user
    return math.inf if advice.wasted_bytes else 0.0


def _limit_check(rule: str, rules: GateRules, value: float, limit: float | None, show: Any,
                 higher_is_worse: bool = True, detail: str = "") -> Check:
    dive = DIVE_NAME.get(rule, "")
    if limit is None:
        why = "disabled" if rule in rules.disabled else "not set"
        return Check(rule, Status.SKIP, show(value), why, detail, dive)
    bad = value > limit if higher_is_worse else value < limit
    return Check(rule, Status.FAIL if bad else Status.PASS, show(value), show(limit), detail, dive)


def _share(x: float) -> str:
    return "inf" if math.isinf(x) else f"{x:.4f}"


def _findings_check(advice: GateInput, rules: GateRules) -> Check:
    if rules.fail_on is None:
        return Check("fail_on", Status.SKIP, plural(len(advice.findings), "finding"), "not set")
    hits = [f for f in advice.findings if f.severity >= rules.fail_on and f.rule not in rules.ignore_rules]
    ids = ", ".join(sorted({f.rule for f in hits}))
    return Check("fail_on", Status.FAIL if hits else Status.PASS, plural(len(hits), "finding"),
                 f"none at or above {rules.fail_on}", ids)


def _banned_checks(advice: GateInput, rules: GateRules) -> list[Check]:
    out = []
    for pattern in rules.banned_packages:
        banned = sorted({d.name for d in advice.distributions if fnmatch.fnmatchcase(d.key, pattern.lower())})
        out.append(Check("banned_packages", Status.FAIL if banned else Status.PASS,
                         ", ".join(banned) or "none installed", f"no {pattern!r}"))
    return out


def evaluate_gate(advice: GateInput, rules: GateRules) -> GateResult:
    """Every rule's verdict: dive's three always (SKIP when off), advisor's own when set."""
    share = user_wasted_share(advice)
    checks = [
        _findings_check(advice, rules),
        _limit_check("min_efficiency", rules, advice.efficiency, rules.min_efficiency, _share, False),
        _limit_check("max_wasted_bytes", rules, advice.wasted_bytes, rules.max_wasted_bytes, human),
        _limit_check("max_wasted_percent", rules, share, rules.max_wasted_percent, _share,
                     detail=f"wasted {human(advice.wasted_bytes)} of {human(dive_user_bytes(advice))} "
                            "in the layers after the first"),
    ]
    if rules.fail_on is None and not rules.source:
        checks = checks[:1]  # --fail-on alone is not a dive gate
    cuda = int(advice.categories.get("gpu", 0))
    models = int(advice.categories.get("models", 0))
    for rule, value, limit in (("max_image_bytes", advice.size_bytes, rules.max_image_bytes),
                               ("max_cuda_bytes", cuda, rules.max_cuda_bytes),
                               ("max_model_bytes", models, rules.max_model_bytes)):
        if limit is not None or rule in rules.disabled:
            checks.append(_limit_check(rule, rules, value, limit, human))
    checks.extend(_banned_checks(advice, rules))
    return GateResult(tuple(checks), rules.source)


def failure_text(c: Check) -> str:
    """One failed rule in a line, as dive words it (value, the comparison, the limit)."""
    if c.rule == "fail_on":
        return f"{c.value} at or above {c.limit.removeprefix('none at or above ')}: {c.detail}"
    if c.rule == "banned_packages":
        return f"banned package(s) {c.value} (rule {c.limit.removeprefix('no ')})"
    op = "<" if c.rule == "min_efficiency" else ">"
    return f"{c.rule} {c.value} {op} {c.limit}"


def raise_if_failed(result: GateResult) -> None:
    """``GateFailed`` (exit 1) naming every failed rule; nothing when the gate passes."""
    failed = [c for c in result.checks if c.status is Status.FAIL]
    if failed:
        raise GateFailed("gate failed: " + "; ".join(failure_text(c) for c in failed),
                         hint="fix the findings above, or relax --fail-on / the rules file")


def gate(advice: GateInput, fail_on: str | Severity | None = None, rules_file: Path | None = None) -> GateResult:
    """Evaluate the gate; raise ``GateFailed`` (exit 1) when a finding or a limit trips."""
    rules = load_gate(fail_on, rules_file) or GateRules()
    result = evaluate_gate(advice, rules)
    raise_if_failed(result)
    return result
