"""Rules: small objects with a stable id and severity that turn analyses into findings."""

from advisor.advise.rules.base import Finding, Rule, Severity
from advisor.advise.rules.registry import ALL_RULES, rule_by_id

__all__ = ["ALL_RULES", "Finding", "Rule", "Severity", "rule_by_id"]
