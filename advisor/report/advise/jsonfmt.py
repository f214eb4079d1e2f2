"""``advise --format json``: the contract of docs/DESIGN.md, "`advise --format json`", plus what users need beyond it."""

from __future__ import annotations

import json
from typing import Any

from advisor.advise.advice import SCHEMA_VERSION, Advice
from advisor.advise.rules.base import Finding


def _finding(f: Finding) -> dict[str, Any]:
    return {
        "rule": f.rule, "severity": str(f.severity), "bytes": f.bytes, "paths": ["/" + p for p in f.paths],
        "message": f.message, "category": f.category, "hidden_bytes": f.hidden_bytes,
        "added_bytes": f.added_bytes, "data": dict(f.data),
    }


def _distributions(a: Advice) -> list[dict[str, Any]]:
    return [
        {"name": d.name, "version": d.version, "size_bytes": d.size_bytes, "environment": "/" + d.environment,
         "files": d.files, "requires": list(d.requires), "required_by": list(d.required_by),
         "removable_with_deps_bytes": d.removable_with_deps_bytes,
         "removable_with_deps": list(d.removable_with_deps)}
        for d in a.distributions
    ]


def to_dict(a: Advice) -> dict[str, Any]:
    f = a.facts
    return {
        "schema_version": SCHEMA_VERSION,
        "image": {"reference": f.reference, "digest": f.digest, "os": f.os, "architecture": f.architecture,
                  "size_bytes": a.size_bytes, "compressed_size_bytes": f.compressed_size,
                  "os_release": dict(a.os), "python_version": a.python_version,
                  "base_layers": a.base_layers, "base_bytes": a.base_bytes,
                  "user_bytes": sum(r.size_bytes for r in a.layers) - a.base_bytes},
        "layers": [
            {"index": r.index, "digest": r.digest, "diff_id": r.diff_id, "size_bytes": r.size_bytes,
             "compressed_size_bytes": r.compressed_size_bytes, "files": r.files, "created_by": r.created_by,
             "empty_layer": r.empty_layer,
             "largest_files": [{"path": "/" + p, "size_bytes": b} for p, b in r.largest_files]}
            for r in a.layers
        ],
        "layer_bytes": a.layer_bytes,
        "largest_files": [{"path": "/" + p, "size_bytes": b} for p, b in a.largest_files],
        "efficiency": a.efficiency,
        "wasted_bytes": a.wasted_bytes,
        "categories": dict(sorted(a.categories.items(), key=lambda kv: (-kv[1], kv[0]))),
        "python": {
            "environments": [{**e, "path": "/" + str(e["path"])} for e in a.environments],
            "distributions": _distributions(a),
            "unowned": [{**u, "environment": "/" + str(u["environment"])} for u in a.unowned],
        },
        "torch": dict(a.torch),
        "findings": [_finding(x) for x in a.findings],
        "recommendations": [
            {"id": r.id, "title": r.title, "estimated_savings_bytes": r.estimated_savings_bytes,
             "standalone_savings_bytes": r.standalone_savings_bytes, "fix": r.fix,
             "findings": list(r.findings), "rules": list(r.rules), "alternative_to": r.alternative_to}
            for r in a.recommendations
        ],
        "total_estimated_savings_bytes": a.total_estimated_savings_bytes,
        "gate": _gate(a),
    }


def _gate(a: Advice) -> dict[str, Any] | None:
    """The gate's verdict per rule (null when no --fail-on / --rules was given)."""
    g = a.gate
    if g is None:
        return None
    return {"passed": g.passed, "rules_file": g.source or None, "tally": g.tally(),
            "checks": [{"rule": c.rule, "dive_key": c.dive_key or None, "status": c.status.value,
                        "value": c.value, "limit": c.limit, "detail": c.detail} for c in g.checks]}


def render_json(a: Advice) -> str:
    return json.dumps(to_dict(a), indent=2, sort_keys=False) + "\n"
