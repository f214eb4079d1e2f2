"""Likely secrets shipped in the image: a security finding per secret, value redacted."""

from __future__ import annotations

from advisor.advise.facts.context import Context
from advisor.advise.facts.secrets import SecretHit, find_secrets
from advisor.advise.rules.base import Finding, Rule, Severity

# Kinds that grant access on their own; the rest (a .env with no recognised value, a
# credentials file seen by name only) may be empty or fake.
CRITICAL_KINDS = frozenset({"private-key", "ssh-private-key", "aws-access-key-id",
                            "aws-secret-access-key", "github-token", "huggingface-token",
                            "slack-token", "gcp-service-account"})


def _where(hit: SecretHit) -> str:
    if hit.layer < 0:
        return "in the image config's Env (every container and `docker inspect` shows it)"
    if hit.hidden:
        return (f"in layer {hit.layer}, deleted or replaced by a later layer but still in the "
                "image: anyone who pulls it can read the layer")
    return f"in layer {hit.layer}"


class SecretsInLayers(Rule):
    id = "sec-secrets-in-layers"
    severity = Severity.HIGH
    title = "likely secrets (keys, credentials, tokens) shipped in the image"
    category = "security"
    recommendation = "remove-secrets"

    def evaluate(self, ctx: Context) -> list[Finding]:
        out = []
        for hit in find_secrets(ctx.trees, ctx.facts.env):
            shown = "/" + hit.location if hit.layer >= 0 else hit.location
            severity = Severity.CRITICAL if hit.kind in CRITICAL_KINDS else self.severity
            message = f"{hit.kind} {hit.redacted} at {shown} {_where(hit)}"
            out.append(self.finding(
                max(hit.size, 1), [hit.location], message, severity=severity,
                data={"kind": hit.kind, "layer": hit.layer, "hidden": hit.hidden,
                      "redacted": hit.redacted},
            ))
        return out
