"""Render benchmarks/export/report.json as Markdown (tables and target checks)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

TARGETS = """\
Targets (issue 13, sample model, b1_s128 and b8_s128, 2 threads): int8 >= 4x faster than torch
eager and >= 10 % faster than Optimum's best quantised ORTModel (its time / ours >= 1.1),
accuracy within 1 point of fp32 (issue 4: optimised fp32 >= 1.3x torch, max abs logit diff
<= 1e-4, same accuracy). The bert-base, xlm-roberta-base and deberta-v3-base shapes are random
weights: size and latency only."""


def _ms(v: dict[str, Any] | None, case: str) -> str:
    if not v or "latency_ms" not in v or case not in v["latency_ms"]:
        return "-"
    c = v["latency_ms"][case]
    return f"{c['p50']:.1f} ({c['min']:.1f})"


def _mb(n: int | None) -> str:
    return "-" if n is None else f"{n / 1e6:.1f} MB"


def _acc(model: dict[str, Any], name: str, v: dict[str, Any]) -> str:
    acc = (model.get("accuracy") or {}).get("accuracy") or {}
    key = {"torch-eager": "torch", "onnx-fp32": "fp32", "onnx-int8": "int8"}.get(name)
    value = acc.get(key) if key else v.get("accuracy")
    return "-" if value is None else f"{value:.1%}"


def _measured(model: dict[str, Any]) -> list[str]:
    """Models may come from different runs (report.json merges them): when and at what load."""
    m = model.get("machine")
    if not m:
        return []
    lines = [f"Measured {m['date']}, load average {m['loadavg_start'][0]:.1f} at start, "
             f"{m['loadavg_end'][0]:.1f} at end.", ""]
    load, cores = max(m["loadavg_start"][0], m["loadavg_end"][0]), m.get("cpu_count") or 1
    if load > 2 * cores:
        lines += [f"**Load {load:.0f} on {cores} cores: the p50s are scheduler noise (a variant's "
                  "threads lose their cores for whole runs); compare the (min) columns, and only "
                  "as a rough ratio.**", ""]
    return lines


def model_section(model: dict[str, Any]) -> list[str]:
    cases = ["b1_s128", "b8_s128"]
    lines = [f"## {model['model']}", "", *_measured(model)]
    lines += [
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


def _p50(model: dict[str, Any], name: str, case: str) -> float | None:
    v = model["variants"].get(name) or {}
    return v.get("latency_ms", {}).get(case, {}).get("p50")


def _verdict(ok: bool) -> str:
    return "**met**" if ok else "**missed**"


def targets(model: dict[str, Any]) -> list[str]:
    """The issue's targets, checked against this run's numbers (p50, both shapes)."""
    cases = ["b1_s128", "b8_s128"]
    speed = model.get("speedup_vs_torch", {})
    acc = ((model.get("accuracy") or {}).get("accuracy")) or {}
    fp32 = model["variants"]["onnx-fp32"]
    lines = ["### Targets", ""]
    fp32_speed = [speed["onnx-fp32"][c] for c in cases]
    diff = fp32["max_abs_logit_diff_vs_torch"]
    lines.append(f"- optimised fp32 ({fp32.get('graph', '?')} graph) >= 1.3x torch: {_verdict(min(fp32_speed) >= 1.3)} "
                 f"({' / '.join(f'{x}x' for x in fp32_speed)} at {' / '.join(cases)}); "
                 f"max abs logit diff {diff:.1e} {_verdict(diff <= 1e-4)}"
                 + (f"; accuracy {acc['fp32']:.1%} vs torch {acc['torch']:.1%} "
                    f"{_verdict(acc['fp32'] == acc['torch'])}" if acc else "") + ".")
    int8_speed = [speed["onnx-int8"][c] for c in cases]
    lines.append(f"- int8 >= 4x torch: {_verdict(min(int8_speed) >= 4.0)} "
                 f"({' / '.join(f'{x}x' for x in int8_speed)}).")
    if acc:
        drop = 100 * (acc["fp32"] - acc["int8"])
        lines.append(f"- int8 accuracy within 1 point of fp32: {_verdict(drop <= 1.0)} "
                     f"({acc['int8']:.1%} vs {acc['fp32']:.1%}).")
    theirs = "optimum-best-int8 (ORTModel)"
    if theirs in model["variants"] and "latency_ms" in model["variants"][theirs]:
        pairs = [(_p50(model, "onnx-int8", c), _p50(model, theirs, c)) for c in cases]
        ok = all(o is not None and t is not None and t >= 1.1 * o for o, t in pairs)
        raw = [_p50(model, "optimum-best-int8 (raw session)", c) for c in cases]
        lines.append(f"- int8 >= 10 % faster than Optimum's best quantised ORTModel: {_verdict(ok)} ("
                     + "; ".join(f"{c}: {o:.1f} vs {t:.1f} ms ({t / o:.2f}x), {r:.1f} ms in a raw session"
                                 for c, (o, t), r in zip(cases, pairs, raw, strict=True)
                                 if o is not None and t is not None and r is not None) + ").")
    return lines


def peers_section(model: dict[str, Any]) -> list[str]:
    """advisor's export beside Optimum's: time, parity, latency, inference environment."""
    peers = model.get("peers") or {}
    ours, theirs = peers.get("advisor"), peers.get("optimum")
    if not ours or not theirs:
        return []
    v = model["variants"]
    acc = ((model.get("accuracy") or {}).get("accuracy")) or {}
    best = v.get("optimum-best-int8 (ORTModel)", {})

    def env(side: dict[str, Any]) -> str:
        return f"{side['inference_env']['total_bytes'] / 1e6:,.0f} MB"

    def imports(side: dict[str, Any]) -> str:
        return ", ".join(side["serving_imports"]) or "none"

    rows = [
        ("export wall time", f"{ours['export_s']:.1f} s (export, parity at 3 shapes per graph, "
         "fusion, every int8 candidate (static calibration included) timed, 1,000-row accuracy)",
         f"{theirs['export_and_quantize_s']:.1f} s (export {theirs['export_s']:.1f} s + "
         f"quantise {best.get('preset', '?')}; no validation)"),
        ("fp32 max abs logit diff vs torch",
         f"{v['onnx-fp32']['max_abs_logit_diff_vs_torch']:.1e} ({v['onnx-fp32'].get('graph', '?')} graph)",
         f"{v.get('optimum-fp32 (raw session)', {}).get('max_abs_logit_diff_vs_torch', float('nan')):.1e}"),
        ("int8 b1_s128 / b8_s128 p50",
         " / ".join(f"{_p50(model, 'onnx-int8', c) or 0:.1f}" for c in ("b1_s128", "b8_s128")) + " ms",
         " / ".join(f"{_p50(model, 'optimum-best-int8 (ORTModel)', c) or 0:.1f}"
                    for c in ("b1_s128", "b8_s128")) + " ms (ORTModel)"),
        ("int8 accuracy", f"{acc['int8']:.1%}" if acc else "-",
         f"{best['accuracy']:.1%}" if best.get("accuracy") is not None else "-"),
        ("inference environment", env(ours) + " (onnxruntime, numpy, tokenizers)",
         env(theirs) + " (optimum-onnx[onnxruntime] and its closure)"),
        ("heavy modules a prediction imports", imports(ours), imports(theirs)),
    ]
    lines = ["### advisor export beside Optimum", "", "| | advisor | Optimum |", "|---|---|---|"]
    lines += [f"| {a} | {b} | {c} |" for a, b, c in rows]
    return ["", *lines]


def graph_choice(model: dict[str, Any]) -> list[str]:
    lines = []
    for precision, int8 in (("fp32", model["variants"]["onnx-fp32"].get("graph_choice")),
                            ("int8", model["export_validation"].get("graph"))):
        if int8:
            lines += _graph_choice(precision, int8)
    return lines


def _graph_choice(precision: str, int8: dict[str, Any]) -> list[str]:
    parts = []
    for c in int8["candidates"]:
        timing = ", ".join(f"{k} {v:.1f} ms" for k, v in c["latency_ms"].items())
        why = f"; rejected: {c['rejected']}" if c.get("rejected") else ""
        parts.append(f"{c.get('name', c['graph'])} ({c['size_bytes'] / 1e6:.1f} MB"
                     f"{', ' + timing if timing else ''}{why})")
    shipped = int8.get("candidate", int8["shipped"])
    return ["", f"{precision} graph shipped: **{shipped}** (selection {int8['selection']}; "
            f"timed in the export: {'; '.join(parts)})."]


def shapes_section(report: dict[str, Any]) -> list[str]:
    """The random base-sized models side by side: size and latency, torch vs advisor vs Optimum."""
    models = [m for name, m in sorted(report["models"].items()) if name.endswith("-random")]
    if not models:
        return []
    theirs = "optimum-best-int8 (ORTModel)"
    lines = ["## Base-sized shapes (random weights: size and latency, not accuracy)", "",
             "| model | torch weights | advisor int8 | torch b1 / b8 p50 ms | advisor int8 b1 / b8 "
             "p50 ms | speed-up b1 / b8 | Optimum int8 (ORTModel) b1 / b8 ms | load start / end |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for m in models:
        v, speed = m["variants"], m.get("speedup_vs_torch", {}).get("onnx-int8", {})
        mach = m.get("machine") or {}
        load = " / ".join(f"{mach[k][0]:.1f}" for k in ("loadavg_start", "loadavg_end") if k in mach)
        cells = [m["model"], _mb(v["torch-eager"].get("size_bytes")), _mb(v["onnx-int8"].get("size_bytes")),
                 *(" / ".join(f"{_p50(m, n, c) or 0:.1f}" for c in ("b1_s128", "b8_s128"))
                   for n in ("torch-eager", "onnx-int8")),
                 " / ".join(f"{speed.get(c, 0)}x" for c in ("b1_s128", "b8_s128")),
                 " / ".join(f"{_p50(m, theirs, c):.1f}" for c in ("b1_s128", "b8_s128")
                            if _p50(m, theirs, c) is not None) or "-", load or "-"]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# Export benchmark",
        "",
        f"{m['cpu_count']} cores, {report['threads']} threads per variant, torch {m['torch']}, "
        f"onnxruntime {m['onnxruntime']}, transformers {m['transformers']}. Each model's date "
        "and load average are under its heading (a shared machine: treat small differences as "
        "noise; ratios are within one run).",
        "Each variant runs in its own process; p50 of 30 (b1) or 10 (b8) runs after 5 warm-up "
        "runs, on real held-out sentences packed to exactly 128 tokens. Every variant is timed "
        f"in {report.get('rounds', 1)} rounds with the order rotated: the p50 shown is the median "
        "of the rounds' p50s, the (min) the fastest run of all.",
        "",
        TARGETS,
        "",
    ]
    lines += shapes_section(report)
    for model in report["models"].values():
        lines += [*model_section(model), *graph_choice(model), *peers_section(model), ""]
        if model.get("accuracy"):
            lines += [*targets(model), ""]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    path = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("report.json")
    sys.stdout.write(render(json.loads(path.read_text())))
