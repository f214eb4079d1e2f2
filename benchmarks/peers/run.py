"""advisor beside its peers, in one table: dive, Hugging Face Optimum, torch eager.

    .venv/bin/python benchmarks/peers/run.py           # run both benchmarks, then the table
    .venv/bin/python benchmarks/peers/run.py --reuse   # only rebuild the table from their reports

Runs, one after the other on this machine:

* ``benchmarks/advise_speed/run.py --size big``: advisor and ``dive`` on the same 1.7 GB
  docker-archive (a Debian root, the Python stack of this venv, a pip cache deleted in a later
  layer), each in its own process: wall and CPU time, peak RSS, efficiency, wasted bytes;
* ``benchmarks/export/run.py``: advisor's export and Optimum's (``ORTModel...export=True`` and
  its ORTQuantizer presets, from ``/work/venv-optimum``) of the sample model and of the
  bert-base-shaped model: export time, parity, latency through rotated rounds, accuracy, the
  size of the inference environment, and whether a prediction imports torch; torch eager
  against advisor's ONNX fp32 and int8 in the same rounds.

Their own reports are refreshed in place; this script then writes ``report.json`` and
``report.md`` next to it: every figure with the ratio advisor / peer taken within one run,
stamped with the date and the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCH = HERE.parent
PY = sys.executable
ADVISE_REPORT = BENCH / "advise_speed" / "report-big.json"
EXPORT_REPORT = BENCH / "export" / "report.json"
MODEL_TITLES = {
    "sentiment-minilm": "sample sentiment model (MiniLM-L6, 22.7 M parameters)",
    "bert-base-random": "bert-base-uncased-shaped model (110 M parameters, random weights)",
}

Row = dict[str, Any]


def machine() -> dict[str, Any]:
    cpu = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    mem_kib = int(Path("/proc/meminfo").read_text().split()[1])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "memory_gib": round(mem_kib / 2**20, 1),
        "kernel": platform.release(),
        "python": platform.python_version(),
    }


def run_step(name: str, cmd: list[str], log: Path) -> float:
    print(f"[peers] {name}: {' '.join(cmd[1:])} (log: {log})", flush=True)
    started = time.monotonic()
    with log.open("w") as out:
        proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False, cwd=BENCH.parent)
    seconds = time.monotonic() - started
    if proc.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        raise SystemExit(f"[peers] {name} failed after {seconds:.0f} s:\n{tail}")
    print(f"[peers] {name}: done in {seconds:.0f} s", flush=True)
    return seconds


def ratio(ours: float | None, theirs: float | None) -> str:
    if not ours or not theirs:
        return ""
    return f"{ours / theirs:.2f}x"


def row(group: str, measure: str, ours: str, theirs: str, peer: str, r: str = "") -> Row:
    return {"group": group, "measure": measure, "advisor": ours, "peer": peer, "peer_value": theirs,
            "ratio": r}


def advise_rows(rep: dict[str, Any]) -> list[Row]:
    ours, dive = rep["advisor_docker_archive_w2"], rep["dive_docker_archive"]
    gz = rep.get("advisor_oci_gzip_w2")
    img = rep["image"]
    group = (f"advise vs dive: one {img['docker_archive_bytes'] / 1e9:.2f} GB docker-archive, "
             f"{img['layers']} layers, {ours.get('files', 0):,} files")
    same_eff = abs(ours["efficiency"] - dive["efficiency"]) < 1e-9
    same_waste = ours["wasted_bytes"] == dive["wasted_bytes"]
    rows = [
        row(group, "wall time", f"{ours['wall_s']:.1f} s", f"{dive['wall_s']:.1f} s", "dive",
            ratio(ours["wall_s"], dive["wall_s"])),
        row(group, "CPU time", f"{ours['cpu_s']:.1f} s", f"{dive['cpu_s']:.1f} s", "dive",
            ratio(ours["cpu_s"], dive["cpu_s"])),
        row(group, "peak RSS", f"{ours['peak_rss_kib'] / 1024:.0f} MB",
            f"{dive['peak_rss_kib'] / 1024:.0f} MB", "dive",
            ratio(ours["peak_rss_kib"], dive["peak_rss_kib"])),
        row(group, "efficiency", f"{ours['efficiency']:.6f}", f"{dive['efficiency']:.6f}", "dive",
            "equal" if same_eff else "DIFFERENT"),
        row(group, "wasted bytes", f"{ours['wasted_bytes']:,}", f"{dive['wasted_bytes']:,}", "dive",
            "equal" if same_waste else "DIFFERENT"),
    ]
    if "hidden_bytes" in ours:
        rows.append(row(group, "bytes a later layer deleted or overwrote (still shipped)",
                        f"{ours['hidden_bytes']:,}", "not reported (its wasted bytes count a "
                        "deleted directory as 0 B)", "dive"))
    if gz:
        rows.append(row(group, "wall time from OCI gzip layers (dive cannot read them)",
                        f"{gz['wall_s']:.1f} s", "-", "dive"))
    return rows


def _p50(model: dict[str, Any], variant: str, case: str) -> float | None:
    v = model["variants"].get(variant) or {}
    return (v.get("latency_ms") or {}).get(case, {}).get("p50")


def _mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e6:,.0f} MB"


def export_rows(name: str, model: dict[str, Any]) -> list[Row]:
    title = MODEL_TITLES.get(name, name)
    peers = model.get("peers") or {}
    ours, theirs = peers.get("advisor"), peers.get("optimum")
    acc = ((model.get("accuracy") or {}).get("accuracy")) or {}
    v = model["variants"]
    rows: list[Row] = []
    if ours and theirs:
        group = f"export vs Optimum: {title}"
        ortmodel = v.get("optimum-best-int8 (ORTModel)", {})
        rows += [
            row(group, "export wall time", f"{ours['export_s']:.1f} s (with validation)",
                f"{theirs['export_and_quantize_s']:.1f} s (export + quantise, no validation)",
                "Optimum", ratio(ours["export_s"], theirs["export_and_quantize_s"])),
            row(group, "fp32 max abs logit diff vs torch",
                f"{v['onnx-fp32']['max_abs_logit_diff_vs_torch']:.1e}",
                f"{v.get('optimum-fp32 (raw session)', {}).get('max_abs_logit_diff_vs_torch', float('nan')):.1e}",
                "Optimum"),
        ]
        for case in ("b1_s128", "b8_s128"):
            a, b = _p50(model, "onnx-int8", case), _p50(model, "optimum-best-int8 (ORTModel)", case)
            rows.append(row(group, f"int8 p50 latency {case}", f"{a:.1f} ms" if a else "-",
                            f"{b:.1f} ms (ORTModel, {ortmodel.get('preset', '?')})" if b else "-",
                            "Optimum", ratio(a, b)))
        if acc and ortmodel.get("accuracy") is not None:
            rows.append(row(group, "int8 accuracy (1,000 held-out sentences)", f"{acc['int8']:.1%}",
                            f"{ortmodel['accuracy']:.1%}", "Optimum"))
        env_a, env_b = ours["inference_env"]["total_bytes"], theirs["inference_env"]["total_bytes"]
        rows += [
            row(group, "inference environment (installed)", f"{_mb(env_a)} (onnxruntime, numpy, tokenizers)",
                f"{_mb(env_b)} (optimum-onnx[onnxruntime])", "Optimum", ratio(env_a, env_b)),
            row(group, "heavy modules one prediction imports",
                ", ".join(ours["serving_imports"]) or "none",
                ", ".join(theirs["serving_imports"]) or "none", "Optimum"),
        ]
    group = f"ONNX vs torch eager: {title}"
    fp32_graph = v["onnx-fp32"].get("graph", "fused")
    int8_graph = ((model.get("export_validation") or {}).get("graph") or {}).get("shipped", "?")
    for variant, label in (("onnx-fp32", f"fp32 ({fp32_graph} graph)"),
                           ("onnx-int8", f"int8 ({int8_graph} graph)")):
        for case in ("b1_s128", "b8_s128"):
            a, b = _p50(model, variant, case), _p50(model, "torch-eager", case)
            faster = f" ({b / a:.2f}x faster)" if a and b else ""
            rows.append(row(group, f"{label} p50 latency {case}", f"{a:.1f} ms{faster}" if a else "-",
                            f"{b:.1f} ms" if b else "-", "torch eager", ratio(a, b)))
    rows.append(row(group, "model file", f"{_mb(v['onnx-int8'].get('size_bytes'))} int8, "
                    f"{_mb(v['onnx-fp32'].get('size_bytes'))} fp32",
                    _mb(v["torch-eager"].get("size_bytes")), "torch eager",
                    ratio(v["onnx-int8"].get("size_bytes"), v["torch-eager"].get("size_bytes"))))
    if acc:
        rows.append(row(group, "accuracy (1,000 held-out sentences)",
                        f"{acc['fp32']:.1%} fp32, {acc['int8']:.1%} int8", f"{acc['torch']:.1%}",
                        "torch eager"))
    return rows


def render(report: dict[str, Any]) -> str:
    m = report["machine"]
    lines = [
        "# advisor beside its peers",
        "",
        f"Measured {report['date']} on {m['cpu']} ({m['cores']} cores, {m['memory_gib']} GiB, "
        f"Linux {m['kernel']}, Python {m['python']}); load average {report['loadavg_start'][0]:.1f} "
        f"at start, {report['loadavg_end'][0]:.1f} at end. Regenerate with "
        "`.venv/bin/python benchmarks/peers/run.py`.",
        "",
        f"advise vs dive measured {(report['sources']['advise'].get('measured') or {}).get('date', '?')}, "
        f"the export comparisons {(report['sources']['export'].get('machine') or {}).get('date', '?')}.",
        "",
        "Every ratio is advisor / peer (below 1: advisor is faster or smaller), taken within one",
        "run on one machine (a shared, noisy VM: read ratios, not absolute times). Latencies: 2 threads, p50 over rotated rounds, real",
        "held-out sentences packed to 128 tokens (`benchmarks/export/report.md` has every variant).",
        "",
        "| | measure | advisor | peer | value of peer | advisor / peer |",
        "|---|---|---|---|---|---|",
    ]
    last = None
    for r in report["rows"]:
        group = f"**{r['group']}**" if r["group"] != last else ""
        last = r["group"]
        lines.append(f"| {group} | {r['measure']} | {r['advisor']} | {r['peer']} | "
                     f"{r['peer_value']} | {r['ratio']} |")
    steps = report.get("step_seconds") or {}
    if steps:
        lines += ["", "Run time: " + ", ".join(f"{k} {v / 60:.1f} min" for k, v in steps.items()) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--reuse", action="store_true",
                        help="do not run the benchmarks; rebuild the table from their reports")
    parser.add_argument("--skip-bert-base", action="store_true",
                        help="export side: the sample model only (saves ~10 minutes)")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    load_start = os.getloadavg()
    date = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    steps: dict[str, float] = {}
    if not args.reuse:
        logs = Path(tempfile.mkdtemp(prefix="advisor-peers-"))
        models = "sentiment-minilm" + ("" if args.skip_bert_base else ",bert-base-random")
        steps["advise vs dive"] = run_step(
            "advise vs dive", [PY, str(BENCH / "advise_speed" / "run.py"), "--size", "big"],
            logs / "advise_speed.log")
        steps["export vs Optimum and torch"] = run_step(
            "export vs Optimum and torch",
            [PY, str(BENCH / "export" / "run.py"), "--models", models, "--rounds", "3"],
            logs / "export.log")
    advise = json.loads(ADVISE_REPORT.read_text())
    export = json.loads(EXPORT_REPORT.read_text())
    rows = advise_rows(advise)
    order = [*MODEL_TITLES, *sorted(set(export["models"]) - set(MODEL_TITLES))]
    for name in order:
        if name in export["models"]:
            rows += export_rows(name, export["models"][name])
    report = {
        "schema_version": 1,
        "date": date if not args.reuse else (advise.get("measured") or {}).get("date", date),
        "machine": machine(),
        "loadavg_start": load_start,
        "loadavg_end": os.getloadavg(),
        "step_seconds": {k: round(v, 1) for k, v in steps.items()},
        "sources": {
            "advise": {"report": str(ADVISE_REPORT.relative_to(BENCH.parent)),
                       "measured": advise.get("measured")},
            "export": {"report": str(EXPORT_REPORT.relative_to(BENCH.parent)),
                       "machine": export.get("machine")},
        },
        "rows": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "report.md").write_text(render(report))
    print(render(report))


if __name__ == "__main__":
    main()
