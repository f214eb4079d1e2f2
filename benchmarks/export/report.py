"""Render benchmarks/export/report.json as Markdown (tables and target checks)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TARGETS = """\
Targets (issue 4): int8 >= 3x faster than torch eager and at least as fast as Optimum's best
quantised ORTModel, accuracy within 1 point of fp32; optimised fp32 >= 1.3x faster than torch
eager, max abs logit diff <= 1e-4, same accuracy."""


def _ms(v: dict[str, Any] | None, case: str) -> str:
    if not v or "latency_ms" not in v or case not in v["latency_ms"]:
        return "-"
    c = v["latency_ms"][case]
    return f"{c['p50']:.1f} ({c['min']:.1f})"


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.1f} MB"


def _acc(model: dict[str, Any], name: str, v: dict[str, Any]) -> str:
    acc = (model.get("accuracy") or {}).get("accuracy") or {}
    key = {"torch-eager": "torch", "onnx-fp32-fused": "fp32", "onnx-int8": "int8"}.get(name)
    value = acc.get(key) if key else v.get("accuracy")
    return "-" if value is None else f"{value:.1%}"


def model_section(model: dict[str, Any]) -> list[str]:
    cases = ["b1_s128", "b8_s128"]
    lines = [
        f"## {model['model']}",
        "",
        "| variant | file | max abs logit diff vs torch | accuracy | "
        + " | ".join(f"{c} p50 (min) ms" for c in cases)
        + " | "
        + " | ".join(f"speed-up {c}" for c in cases)
        + " |",
        "|---|---|---|---|" + "---|" * (2 * len(cases)),
    ]
    speed = model.get("speedup_vs_torch", {})
    fast = model.get("speedup_vs_torch_min", {})
    for name, v in model["variants"].items():
        if "error" in v:
            lines.append(f"| {name} | error: {v['error'][:200]!r} |")
            continue
        diff = v.get("max_abs_logit_diff_vs_torch")
        lines.append(
            f"| {name} | {_mb(v.get('size_bytes'))} | {'-' if diff is None else f'{diff:.1e}'} | "
            f"{_acc(model, name, v)} | "
            + " | ".join(_ms(v, c) for c in cases)
            + " | "
            + " | ".join(
                f"{speed[name][c]}x ({fast.get(name, {}).get(c, '-')}x)" if name in speed else "-"
                for c in cases
            )
            + " |"
        )
    acc = model.get("accuracy")
    if acc:
        lines += [
            "",
            f"Agreement of argmax with torch on {acc['rows']} held-out sentences: "
            + ", ".join(f"{k} {v:.1%}" for k, v in acc["agreement_with_torch"].items())
            + ".",
        ]
    lines += [
        "",
        "Fused operators (advisor export): "
        + ", ".join(f"{k} {v}" for k, v in model["export_validation"]["fused_operators"].items())
        + ".",
    ]
    return lines


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Export benchmark",
        "",
        f"Measured {m['date']} on {m['cpu_count']} cores, {report['threads']} threads per "
        f"variant, torch {m['torch']}, onnxruntime {m['onnxruntime']}, transformers "
        f"{m['transformers']}. Load average at start {m['loadavg_start'][0]:.1f}, at end "
        f"{m['loadavg_end'][0]:.1f} (a shared machine: treat small differences as noise).",
        "Each variant runs in its own process; p50 of 30 (b1) or 10 (b8) runs after 5 warm-up "
        "runs, on real held-out sentences packed to exactly 128 tokens.",
        "",
        TARGETS,
        "",
    ]
    for model in report["models"].values():
        lines += [*model_section(model), ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("report.json")
    sys.stdout.write(render(json.loads(path.read_text())))
