"""``advisor fix --format json``: schema_version 1, sizes in bytes, lists in report order."""

from __future__ import annotations

import json
from typing import Any

from advisor.fix.model import FixResult, ProofReport

SCHEMA_VERSION = 1


def _proof(p: ProofReport | None) -> dict[str, Any] | None:
    if p is None:
        return None
    return {"reference": p.reference, "passed": p.passed,
            "checks": [{"name": c.name, "ok": c.ok, "detail": c.detail} for c in p.checks]}


def to_dict(r: FixResult) -> dict[str, Any]:
    return {
        "schema_version": SCHEMA_VERSION,
        "image": {"reference": r.reference, "size_bytes": r.size_before,
                  "compressed_size_bytes": r.compressed_before},
        "output": {"reference": r.output, "digest": r.manifest_digest, "size_bytes": r.size_after,
                   "compressed_size_bytes": r.compressed_after},
        "removed_bytes": r.size_before - r.size_after,
        "verified": r.verified,
        "fixes": [{"id": f.id, "title": f.title, "applied": f.applied, "reason": f.reason,
                   "estimated_bytes": f.estimated_bytes, "removed_bytes": f.removed_bytes,
                   "lower_layer_bytes": f.hidden_removed_bytes, "files": f.files, "proof": f.proof}
                  for f in r.fixes],
        "layers": [{"index": c.index, "digest_before": c.digest_before, "digest_after": c.digest_after,
                    "files_removed": c.files_removed, "bytes_removed": c.bytes_removed, "note": c.note}
                   for c in r.layers],
        "baseline_proof": _proof(r.baseline),
        "proof": _proof(r.proof),
        "notes": list(r.notes),
    }


def render_json(r: FixResult) -> str:
    return json.dumps(to_dict(r), indent=2, sort_keys=False) + "\n"
