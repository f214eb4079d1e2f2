"""Coverage table: every encoder type x task through advisor's export, beside Optimum's.

    .venv/bin/python benchmarks/export/coverage.py                 # all types, all three tasks
    .venv/bin/python benchmarks/export/coverage.py --tasks text-classification --types bert,mpnet
    .venv/bin/python benchmarks/export/coverage.py --shard 1/3 --out /tmp/c1   # one third ...
    .venv/bin/python benchmarks/export/coverage.py --merge /tmp/c1 /tmp/c2 /tmp/c3  # ... joined

Each row is a tiny random model built from transformers' own config class (tests/export/tiny.py,
cached under ADVISOR_CACHE): advisor's export (int8, the accuracy gate on a small labelled set,
the graph race), which exporter ran, fp32 parity vs torch, the fused operators, the int8 file
size and the int8 speed-up over torch eager (b1 and b8 at sequence 64, 2 threads, fastest of
interleaved runs; tiny models, so a check that int8 is not slower, not a speed claim). Beside
it, ``optimum-cli export onnx`` on the same folder in its own venv (``/work/venv-optimum`` or
``$OPTIMUM_PYTHON``: optimum-onnx pins transformers<5): exported, failed (why), or exported
with a validation warning (Optimum only warns when its atol check fails). The types advisor
refuses are run too, to show the refusal. Writes coverage.json and coverage.md next to this file.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from advisor.errors import AdvisorError  # noqa: E402
from advisor.export import ExportConfig, export_model  # noqa: E402
from advisor.export.specs import ARCHITECTURES, REFUSED, TASKS  # noqa: E402
from tests.export.tiny import SENTENCES, tiny_model_dir, write_csv  # noqa: E402

THREADS = 2
SHAPES = ((1, 64), (8, 64))
OPTIMUM_TASKS = {"text-classification": "text-classification",
                 "token-classification": "token-classification",
                 "feature-extraction": "feature-extraction"}


def advisor_row(model: Path, task: str, work: Path) -> dict[str, Any]:
    data = write_csv(work / "data.csv", SENTENCES) if task == "text-classification" else None
    started = time.monotonic()
    try:
        result = export_model(ExportConfig(model_dir=model, artifacts_dir=work / "out",
                                           max_length=64, data_csv=data, max_accuracy_drop=12.5))
    except AdvisorError as e:
        return {"exported": False, "error": str(e), "seconds": round(time.monotonic() - started, 1)}
    v = result.validation
    fp32 = [p for p in v["parity"] if p["enforced"]]
    return {
        "exported": True, "seconds": round(time.monotonic() - started, 1),
        "exporter": v["exporter"], "attempts": v["exporter_attempts"],
        "inputs": v["inputs"]["names"],
        "parity_max_abs_diff": max(s["max_abs_diff"] for p in fp32 for s in p["shapes"]),
        "fused_operators": v["fused_operators"], "fusion": v["fusion"],
        "shipped": v["graph"]["candidate"], "int8_size_bytes": result.size_bytes,
        "fp32_size_bytes": v["sizes_bytes"].get("onnx_raw"),
        "gate": v["gate"], "speedup_vs_torch": speedup(model, task, result.onnx_path),
    }


def speedup(model_dir: Path, task: str, onnx_path: Path) -> dict[str, float]:
    """torch eager time / int8 onnxruntime time, per shape (fastest of interleaved runs)."""
    import torch
    import transformers

    from advisor.export.validation import full_feeds, open_session

    torch.set_num_threads(THREADS)
    serving = json.loads((onnx_path.parent / "serving.json").read_text())
    auto = getattr(transformers, TASKS[task].auto_class)
    model = auto.from_pretrained(model_dir, attn_implementation="eager").eval()
    session = open_session(onnx_path, THREADS)
    out = {}
    for batch, seq in SHAPES:
        feeds = full_feeds(serving["inputs"], batch, seq, int(model.config.vocab_size))
        tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}
        best = {"torch": float("inf"), "onnx": float("inf")}
        with torch.inference_mode():
            for _ in range(3):
                model(**tensors)
                session.run(None, feeds)
            for _ in range(15):
                for name, fn in (("torch", lambda t=tensors: model(**t)),
                                 ("onnx", lambda f=feeds: session.run(None, f))):
                    t = time.perf_counter()
                    fn()
                    best[name] = min(best[name], time.perf_counter() - t)
        out[f"b{batch}_s{seq}"] = round(best["torch"] / best["onnx"], 2)
    return out


def optimum_row(model: Path, task: str, work: Path) -> dict[str, Any]:
    python = os.environ.get("OPTIMUM_PYTHON", "/work/venv-optimum/bin/python")
    if not Path(python).exists():
        return {"ran": False, "error": f"{python} not found"}
    cli = str(Path(python).parent / "optimum-cli")
    started = time.monotonic()
    proc = subprocess.run([cli, "export", "onnx", "--model", str(model), "--task",
                           OPTIMUM_TASKS[task], str(work / "optimum")], capture_output=True,
                          text=True, timeout=900, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    text = proc.stdout + proc.stderr
    warned = [line.strip() for line in text.splitlines()
              if re.search(r"max diff|not within|tolerance|atol", line, re.I)]
    return {"ran": True, "exported": proc.returncode == 0 and (work / "optimum" / "model.onnx").exists(),
            "seconds": round(time.monotonic() - started, 1),
            "validation_warnings": warned[:3],
            "error": None if proc.returncode == 0 else _last_error(text)}


def _last_error(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    errors = [line for line in lines if re.match(r"^\w*(Error|Exception)\b|^\w+Error:", line)]
    return (errors or lines or ["failed"])[-1][:300]


def run(types: list[str], tasks: list[str], skip_optimum: bool, out: Path) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for arch in types:
        for task in tasks:
            row: dict[str, Any] = {"type": arch, "task": task, "declared": arch in ARCHITECTURES}
            with tempfile.TemporaryDirectory(prefix="advisor-coverage-") as tmp:
                try:
                    model = tiny_model_dir(arch, task)
                except Exception as e:  # a type transformers cannot build a tiny model of
                    row["advisor"] = {"exported": False, "error": f"no tiny model: {e}"}
                    rows.append(row)
                    continue
                row["advisor"] = advisor_row(model, task, Path(tmp))
                if not skip_optimum:
                    row["optimum"] = optimum_row(model, task, Path(tmp))
            print(json.dumps({k: row[k] for k in ("type", "task")} |
                             {"advisor": row["advisor"].get("exported"),
                              "optimum": row.get("optimum", {}).get("exported")}), flush=True)
            rows.append(row)
            write(out, _report(rows, len(types) * len(tasks)))  # a long run may be cut short
    return _report(rows, len(types) * len(tasks))


def _report(rows: list[dict[str, Any]], requested: int) -> dict[str, Any]:
    return {"schema_version": 1, "rows": rows, "requested_rows": requested,
            "machine": _machine(), "advisor_types": len(ARCHITECTURES)}


def write(out: Path, report: dict[str, Any]) -> None:
    sys.path.insert(0, str(HERE))
    from coverage_report import render

    (out / "coverage.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / "coverage.md").write_text(render(report))


def _machine() -> dict[str, Any]:
    import onnxruntime
    import torch
    import transformers

    from advisor.export.race import cpu_fingerprint

    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cpu": cpu_fingerprint(),
            "loadavg": os.getloadavg(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "transformers": transformers.__version__, "onnxruntime": onnxruntime.__version__}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--types", help="comma-separated model types (default: every declared "
                        "type and the refused ones transformers can build)")
    parser.add_argument("--tasks", default=",".join(sorted(TASKS)))
    parser.add_argument("--skip-optimum", action="store_true")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--shard", help="I/N: only every N-th type from the I-th (run N at once)")
    parser.add_argument("--merge", type=Path, nargs="+", metavar="DIR",
                        help="join the coverage.json of these shard runs into --out; run nothing")
    args = parser.parse_args()
    if args.merge:
        write(args.out, merge([json.loads((d / "coverage.json").read_text()) for d in args.merge]))
        return
    refused = [t for t in ("longformer", "nystromformer", "layoutlm", "luke") if t in REFUSED]
    types = args.types.split(",") if args.types else sorted(ARCHITECTURES) + refused
    if args.shard:
        index, count = (int(x) for x in args.shard.split("/"))
        types = types[index - 1 :: count]
    args.out.mkdir(parents=True, exist_ok=True)
    write(args.out, run(types, args.tasks.split(","), args.skip_optimum, args.out))


def merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """One report of shard runs (an already merged report among them keeps its own shards):
    rows in type, task order, the machine of the last shard to finish, every shard's machine."""
    rows = sorted((r for rep in reports for r in rep["rows"]), key=lambda r: (r["type"], r["task"]))
    last = max(reports, key=lambda rep: rep["machine"]["date"])
    shards = [m for rep in reports for m in rep.get("shards") or [rep["machine"]]]
    return {**_report(rows, sum(rep["requested_rows"] for rep in reports)),
            "machine": last["machine"], "shards": shards}


if __name__ == "__main__":
    main()
