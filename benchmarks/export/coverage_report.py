"""coverage.json -> coverage.md: one row per type x task, advisor beside Optimum."""

from __future__ import annotations

import os
from typing import Any


def _advisor(a: dict[str, Any]) -> list[str]:
    if not a.get("exported"):
        return ["refused: " + str(a.get("error", "?")).replace("|", "/")[:160], "", "", "", "", ""]
    fused = ", ".join(f"{k} {v}" for k, v in sorted(a["fused_operators"].items())) or "none"
    speed = a.get("speedup_vs_torch") or {}
    tried = "+".join(x["exporter"] for x in a.get("attempts", []))
    return [f"yes ({a['shipped']})", f"{a['exporter']}" + (f" (tried {tried})" if "+" in tried else ""),
            f"{a['parity_max_abs_diff']:.1e}", fused, f"{a['int8_size_bytes'] / 1024:.0f} KiB",
            " / ".join(f"{v:.2f}x" for v in speed.values())]


def _optimum(o: dict[str, Any] | None) -> str:
    if not o:
        return "not run"
    if not o.get("ran"):
        return "not run: " + str(o.get("error"))
    if o.get("exported"):
        warned = o.get("validation_warnings") or []
        return "exported" + (f", only warned: {warned[0][:100]}" if warned else "")
    return "failed: " + str(o.get("error", "?")).replace("|", "/")[:160]


def _shards(report: dict[str, Any]) -> list[str]:
    """A merged table comes from runs made at different times and loads: name each one."""
    shards = report.get("shards") or []
    if len(shards) < 2:
        return []
    runs = "; ".join(f"{s['date']} (load {s['loadavg'][0]:.1f})" for s in sorted(shards, key=lambda s: s["date"]))
    return [f"Merged from {len(shards)} runs: {runs}.", ""]


def render(report: dict[str, Any]) -> str:
    rows = report["rows"]
    m = report["machine"]
    lines = [
        "# Export coverage: every encoder type x task, advisor beside Optimum",
        "",
        f"Run {m['date']} on {m['cpu']} (load {', '.join(f'{x:.1f}' for x in m['loadavg'])}); "
        f"torch {m['torch']}, transformers {m['transformers']}, onnxruntime {m['onnxruntime']}. "
        "Reproduce: `.venv/bin/python benchmarks/export/coverage.py` (Optimum from "
        "`/work/venv-optimum`, see report.md).",
        "",
        *_shards(report),
        "Tiny random models (hidden 32, 2 layers) built from transformers' config classes. "
        "advisor: int8 export with the accuracy gate on 8 labelled sentences (text-classification), "
        "fp32 parity = max abs diff vs torch over three shapes (fp32 and fused graphs), speed-up = "
        "torch eager / advisor int8 at b1 / b8, sequence 64, 2 threads (tiny graphs: overhead, "
        "not a speed claim). Optimum: `optimum-cli export onnx --task TASK` on the same folder.",
        "",
    ]
    cores = m.get("cpu_count") or os.cpu_count() or 1
    load = max(x for s in report.get("shards") or [m] for x in s["loadavg"])
    if load > 2 * cores:
        lines += [f"**Load up to {load:.0f} on {cores} cores during this run: the speed-up "
                  "column is scheduler noise (torch's threads lose their cores for seconds); read "
                  "it only as 'exported and runs', never as a ratio.**", ""]
    requested = report.get("requested_rows", len(rows))
    if requested > len(rows):
        lines += [f"**This run was cut short: {len(rows)} of {requested} rows.** "
                  "Run the command above for the rest.", ""]
    for task in sorted({r["task"] for r in rows}):
        sub = [r for r in rows if r["task"] == task]
        ok = sum(1 for r in sub if r["advisor"].get("exported"))
        opt = sum(1 for r in sub if (r.get("optimum") or {}).get("exported"))
        lines += [f"## {task}: advisor {ok} / {len(sub)}, Optimum {opt} / {len(sub)}", "",
                  "| type | advisor | exporter | fp32 parity | fused | int8 | int8 vs torch b1 / b8 | Optimum |",
                  "|---|---|---|---:|---|---:|---:|---|"]
        for r in sub:
            cells = [r["type"], *_advisor(r["advisor"]), _optimum(r.get("optimum"))]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
    return "\n".join(lines) + "\n"
