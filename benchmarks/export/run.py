"""Export benchmark: torch eager vs advisor's ONNX (fp32, int8) vs Optimum, side by side.

    .venv/bin/python benchmarks/export/run.py            # full sentiment recipe + bert-base
    .venv/bin/python benchmarks/export/run.py --quick    # CI recipe, no bert-base

Every variant is timed in its own process (benchmarks/export/worker.py) with 2 threads on
the same token ids (real held-out sentences packed to exactly 128 tokens). Accuracy comes from
advisor's own validation (1,000 held-out Rotten Tomatoes sentences). Optimum runs from a
separate venv (``/work/venv-optimum`` or ``$OPTIMUM_PYTHON``: optimum-onnx pins
transformers<5), made with (about 2 minutes; torch first, so the CPU wheel is the one taken)::

    python3 -m venv /work/venv-optimum
    /work/venv-optimum/bin/pip install torch==2.13.0
    /work/venv-optimum/bin/pip install "optimum-onnx[onnxruntime]" "transformers<5" onnxruntime numpy

(2026-12-02: optimum-onnx with transformers 4.57.6.) Writes report.json and report.md next to
this file (or ``--out``).
"""

from __future__ import annotations

import argparse
import csv
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from advisor.export import ExportConfig, export_model  # noqa: E402
from advisor.export.exporter import export_onnx  # noqa: E402
from advisor.export.optimize import count_ops, fuse  # noqa: E402
from advisor.export.signature import derive_graph  # noqa: E402
from advisor.export.source import inspect_model, load_torch_model  # noqa: E402

CASES = {"b1_s128": (1, 128), "b8_s128": (8, 128)}
THREADS = 2


def build(script: str, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "sample_models" / script), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(proc.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def make_feeds(tokenizer_json: Path, data_csv: Path, dest: Path) -> Path:
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(tokenizer_json))
    tok.no_padding()
    tok.enable_truncation(max_length=128)
    with data_csv.open(newline="", encoding="utf-8") as f:
        texts = [r["text"] for r in csv.DictReader(f)]
    arrays: dict[str, np.ndarray] = {}
    for case, (batch, seq) in CASES.items():
        rows = []
        for b in range(batch):
            # pack consecutive sentences until the row holds ``seq`` real tokens (no padding)
            text, i = "", b * 20
            while len(tok.encode(text).ids) < seq:
                text += " " + texts[i]
                i += 1
            rows.append(tok.encode(text).ids[:seq])
        ids = np.array(rows, dtype=np.int64)
        arrays[f"{case}/input_ids"] = ids
        arrays[f"{case}/attention_mask"] = np.ones_like(ids)
        arrays[f"{case}/token_type_ids"] = np.zeros_like(ids)
    np.savez(dest, **arrays)
    return dest


def worker(
    mode: str, model: Path, feeds: Path, out: Path, python: str = sys.executable, *extra: str
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    cmd = [
        python,
        str(HERE / "worker.py"),
        mode,
        str(model),
        str(feeds),
        str(out),
        "--threads",
        str(THREADS),
        *extra,
    ]
    # No busy-waiting on either side: ORT sessions set allow_spinning=0, torch's OpenMP pool
    # gets the same (on a shared machine, spinning threads that lose their core stall a run).
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
    if proc.returncode != 0:
        raise RuntimeError(f"{mode} worker failed (exit {proc.returncode}; -9: killed, e.g. out of memory): {proc.stderr[-3000:]}")
    with np.load(out.with_suffix(".npz")) as npz:
        outputs = {k: npz[k] for k in npz.files}
    return json.loads(out.read_text()), outputs


def size_of(path: Path) -> int:
    data = path.with_name(path.name + ".data")
    return path.stat().st_size + (data.stat().st_size if data.exists() else 0)


def exporter_variants(model_dir: Path, work: Path) -> dict[str, dict[str, Any]]:
    """Legacy and dynamo exports of one model, raw and fused: the exporter-choice evidence."""
    source = inspect_model(model_dir)
    model = load_torch_model(source)
    graph = derive_graph(model, model_dir, source.arch.model_type, source.task)
    variants: dict[str, dict[str, Any]] = {}
    for exporter in ("legacy", "dynamo"):
        d = work / exporter
        d.mkdir(parents=True)
        started = time.monotonic()
        raw = export_onnx(model, graph, d / "model.onnx", 17, source.vocab, exporter)  # type: ignore[arg-type]
        seconds = time.monotonic() - started
        fused_dir = d / "fused"
        fused_dir.mkdir()
        stats = fuse(raw, fused_dir / "model.onnx", source.config, "bert")
        files = sorted(p.name for p in d.iterdir() if p.is_file())
        variants[f"onnx-{exporter}-raw"] = {
            "path": raw,
            "export_s": round(seconds, 2),
            "files": files,
        }
        variants[f"onnx-{exporter}-fused"] = {
            "path": fused_dir / "model.onnx",
            "fused_operators": stats,
        }
    return variants


@dataclass(frozen=True)
class Exported:
    """What the benchmark reads of an ``ExportResult``, from an artifacts folder already written
    (``--reuse-exports``): the export of a base-sized model takes a quarter of an hour here."""

    onnx_path: Path
    validation: dict[str, Any]
    timings: dict[str, Any]
    exporter: str
    fused_operators: dict[str, int]


def exported(artifacts: Path) -> Exported:
    validation = json.loads((artifacts / "validation.json").read_text())
    return Exported(artifacts / "model.onnx", validation,
                    json.loads((artifacts / "timings.json").read_text()), validation["exporter"],
                    dict(validation.get("fused_operators") or {}))


def export_apart(config: ExportConfig) -> Any:
    """``export_model`` in a process of its own: an xlm-roberta-base-sized export (250k-token
    embeddings) reached 14 GB resident in one process, the fp32 export's high-water mark on top of
    the int8 one's, and the kernel killed the benchmark. A child returns its memory on exit."""
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(export_model, (config,))


def bench_model(
    name: str,
    model_dir: Path,
    data_csv: Path,
    work: Path,
    args: argparse.Namespace,
    with_accuracy: bool,
    with_exporters: bool,
) -> dict[str, Any]:
    work.mkdir(parents=True)
    reuse = args.reuse_exports / name if args.reuse_exports else None
    if reuse is not None and (reuse / "int8" / "validation.json").exists():
        int8, fp32 = exported(reuse / "int8"), exported(reuse / "fp32")
        export_seconds = sum(int8.timings["steps_s"].values())  # the recorded export's
    else:
        started = time.monotonic()
        # remeasure: a benchmark times the race itself instead of reusing a recorded ranking
        int8 = export_apart(ExportConfig(model_dir=model_dir, artifacts_dir=work / "int8",
                                         data_csv=data_csv if with_accuracy else None,
                                         race_cache=work / "race", remeasure=True))
        export_seconds = time.monotonic() - started
        fp32 = export_apart(
            ExportConfig(model_dir=model_dir, artifacts_dir=work / "fp32", quantize="none"))
    feeds = make_feeds(int8.onnx_path.parent / "tokenizer.json", data_csv, work / "feeds.npz")
    variants: dict[str, dict[str, Any]] = {
        "onnx-fp32": {"path": fp32.onnx_path, "graph": fp32.validation["graph"]["shipped"],
                      "graph_choice": graph_with_timings(fp32),
                      "fused_operators": dict(fp32.fused_operators)},
        "onnx-int8": {"path": int8.onnx_path, "operators": count_ops(int8.onnx_path)},
    }
    if with_exporters:
        variants.update(exporter_variants(model_dir, work / "exporters"))
    jobs: dict[str, Job] = {"torch-eager": Job("torch", model_dir)}
    jobs.update({vname: Job("onnx", Path(info["path"])) for vname, info in variants.items()})
    peers: dict[str, Any] = {"advisor": advisor_side(int8.onnx_path.parent, export_seconds)}
    built: dict[str, Any] = {}
    if not args.skip_optimum:
        built = optimum_build(model_dir, feeds, work, data_csv if with_accuracy else None)
        jobs.update(built.pop("jobs", {}))
        peers["optimum"] = built.pop("peer", None)
    timings, outputs = rounds(jobs, feeds, work / "timings", args.rounds)
    ref = outputs["torch-eager"]
    latency: dict[str, Any] = {
        "torch-eager": {
            "latency_ms": timings["torch-eager"],
            "size_bytes": sum(p.stat().st_size for p in model_dir.glob("*.safetensors")),
        }
    }
    for vname, job in jobs.items():
        if vname == "torch-eager":
            continue
        meta = {k: v for k, v in {**variants.get(vname, {}), **built.get(vname, {})}.items()
                if k != "path"}
        latency[vname] = {
            **meta,
            "latency_ms": timings[vname],
            "max_abs_logit_diff_vs_torch": max(
                float(np.abs(outputs[vname][c] - ref[c]).max()) for c in CASES),
            "size_bytes": size_of(job.path) if job.path.is_file() else meta.get("size_bytes"),
        }
    latency.update({k: v for k, v in built.items() if k not in latency})  # errors
    report = {
        "model": name,
        "model_dir": str(model_dir),
        "variants": latency,
        "accuracy": int8.validation.get("accuracy"),
        "export_validation": {
            "fused_operators": dict(int8.fused_operators),
            "parity": int8.validation["parity"],
            "timings_s": int8.timings["steps_s"],
            "graph": graph_with_timings(int8),
            "exporter": int8.exporter,
            "calibration": int8.validation.get("calibration"),
        },
        "peers": peers,
    }
    report["speedup_vs_torch"] = speedups(latency)
    report["speedup_vs_torch_min"] = speedups(latency, "min")
    return report


def graph_with_timings(result: Any) -> dict[str, Any]:
    """validation.json's graph choice with each candidate's race timings (timings.json) back in."""
    latency = result.timings.get("race", {}).get("latency_ms", {})
    graph = dict(result.validation["graph"])
    graph["candidates"] = [{**c, "latency_ms": latency.get(c["name"], {})} for c in graph["candidates"]]
    graph["race"] = result.timings.get("race", {}).get("source")
    return graph


@dataclass(frozen=True)
class Job:
    """One timed variant: a worker mode, its model, the interpreter that runs it."""

    mode: str
    path: Path
    python: str = sys.executable


def rounds(
    jobs: dict[str, Job], feeds: Path, work: Path, count: int
) -> tuple[dict[str, Any], dict[str, dict[str, np.ndarray]]]:
    """Every job once per round, the order rotated each round; per case the median of the
    rounds' p50s (and p90s) and the overall min. A burst of load then costs one round of one
    variant, not the comparison. Outputs come from the first round (parity)."""
    work.mkdir(parents=True, exist_ok=True)
    names = list(jobs)
    per_round: dict[str, list[dict[str, Any]]] = {n: [] for n in names}
    outputs: dict[str, dict[str, np.ndarray]] = {}
    for r in range(count):
        shift = r % len(names)
        for n in names[shift:] + names[:shift]:
            job = jobs[n]
            slug = "".join(ch if ch.isalnum() else "-" for ch in n)
            t, out = worker(job.mode, job.path, feeds, work / f"{slug}-{r}.json", job.python)
            per_round[n].append(t)
            outputs.setdefault(n, out)
    merged = {
        n: {
            c: {
                "p50": statistics.median(t[c]["p50"] for t in ts),
                "p90": statistics.median(t[c]["p90"] for t in ts),
                "min": min(t[c]["min"] for t in ts),
                "runs": sum(t[c]["runs"] for t in ts),
                "rounds": len(ts),
            }
            for c in CASES
        }
        for n, ts in per_round.items()
    }
    return merged, outputs


def optimum_build(model_dir: Path, feeds: Path, work: Path, data: Path | None) -> dict[str, Any]:
    """Optimum's export and quantisation presets (its own pick of the best), as timing jobs."""
    python = os.environ.get("OPTIMUM_PYTHON", "/work/venv-optimum/bin/python")
    if not Path(python).exists():
        return {"optimum": {"error": f"{python} not found: create the venv (see report.md)"}}
    extra = ["--workdir", str(work / "optimum")] + (["--data", str(data)] if data else [])
    (work / "optimum").mkdir()
    try:
        t, _ = worker("optimum", model_dir, feeds, work / "optimum.json", python, *extra)
    except RuntimeError as e:
        return {"optimum": {"error": str(e)[-1500:]}}
    best = t["best"]
    best_dir = work / "optimum" / best
    size = t["variants"][best]["size_bytes"]
    serve = envsize(python, "serve", "optimum", str(best_dir), str(model_dir))
    return {
        "jobs": {
            "optimum-fp32 (raw session)": Job("onnx", Path(t["fp32_onnx"])),
            "optimum-best-int8 (ORTModel)": Job("ortmodel", best_dir, python),
            # the same quantised file in a raw session, like advisor's int8 is timed
            "optimum-best-int8 (raw session)": Job("onnx", Path(t["variants"][best]["onnx"])),
        },
        "optimum-best-int8 (ORTModel)": {
            "preset": best,
            "accuracy": t["variants"][best].get("accuracy"),
            "size_bytes": size,
            "all_presets": {
                n: {"latency_ms": v["latency_ms"], "accuracy": v.get("accuracy")}
                for n, v in t["variants"].items()
            },
            "failed_presets": t.get("errors", {}),
        },
        "optimum-best-int8 (raw session)": {"preset": best},
        "peer": {
            "preset": best,
            "export_s": round(t["seconds"]["export"], 2),
            "export_and_quantize_s": round(
                t["seconds"]["export"] + t["seconds"][f"quantize {best}"], 2),
            "seconds": {k: round(v, 2) for k, v in t["seconds"].items()},
            "inference_env": envsize(python, "size", "optimum-onnx[onnxruntime]"),
            "serving_imports": serve["imported"],
        },
    }


def envsize(python: str, *args: str) -> dict[str, Any]:
    """benchmarks/export/envsize.py run by ``python`` (the environment it measures)."""
    proc = subprocess.run([python, str(HERE / "envsize.py"), *args], capture_output=True,
                          text=True, check=False, cwd=ROOT)
    if proc.returncode != 0:
        raise RuntimeError(f"envsize {args[0]} failed: {proc.stderr[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def advisor_side(artifacts: Path, export_seconds: float) -> dict[str, Any]:
    """advisor's export time and the environment its server needs (what the slim image holds)."""
    from advisor.slim.wheels import SERVING_PACKAGES

    serve = envsize(sys.executable, "serve", "advisor", str(artifacts))
    return {
        "export_s": round(export_seconds, 2),  # export + parity + fusion + both int8 + accuracy
        "inference_env": envsize(sys.executable, "size", *SERVING_PACKAGES, "--no-deps"),
        "serving_imports": serve["imported"],
    }


def speedups(latency: dict[str, Any], stat: str = "p50") -> dict[str, dict[str, float]]:
    ref = latency["torch-eager"]["latency_ms"]
    return {
        name: {c: round(ref[c][stat] / v["latency_ms"][c][stat], 2) for c in CASES}
        for name, v in latency.items()
        if "latency_ms" in v and name != "torch-eager"
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="the CI sentiment recipe")
    parser.add_argument("--skip-optimum", action="store_true")
    parser.add_argument("--rounds", type=int, default=3,
                        help="time every variant this many times, order rotated (median kept)")
    parser.add_argument("--models", default="sentiment-minilm,bert-base-random,"
                        "xlm-roberta-base-random,deberta-v3-base-random",
                        help="comma-separated; results merge into an existing report.json")
    parser.add_argument("--out", type=Path, default=HERE)
    parser.add_argument("--reuse-exports", type=Path, metavar="DIR",
                        help="time DIR/MODEL/{int8,fp32} (artifacts of an earlier run) instead of "
                        "exporting again")
    parser.add_argument("--sentiment-dir", type=Path,
                        help="use this already-built sentiment model folder instead of building")
    args = parser.parse_args()
    wanted = args.models.split(",")
    if args.sentiment_dir is not None:
        cache = Path(os.environ.get("ADVISOR_CACHE", "~/.cache/advisor")).expanduser()
        sentiment = {"model_dir": args.sentiment_dir,
                     "data_csv": cache / "data" / "rotten_tomatoes_heldout_1000.csv"}
    elif "sentiment-minilm" in wanted:
        sentiment = build("build_sentiment.py", *(["--quick"] if args.quick else []))
    else:  # the held-out CSV only (any sentiment build writes it), no model build
        cache = Path(os.environ.get("ADVISOR_CACHE", "~/.cache/advisor")).expanduser()
        sentiment = {"data_csv": cache / "data" / "rotten_tomatoes_heldout_1000.csv"}
    data = Path(sentiment["data_csv"])
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / "report.json"
    report: dict[str, Any] = json.loads(path.read_text()) if path.exists() else {}
    report.update(schema_version=1, threads=THREADS, cases=list(CASES), rounds=args.rounds)
    report.setdefault("models", {})
    with tempfile.TemporaryDirectory(prefix="advisor-bench-export-") as tmp:
        for name in wanted:
            started = machine()
            if name == "sentiment-minilm":
                result = bench_model(name, Path(sentiment["model_dir"]), data, Path(tmp) / name,
                                     args, with_accuracy=True, with_exporters=True)
            else:
                shape = name.removesuffix("-random")
                built = build("build_bert_base.py", "--shape", shape)
                result = bench_model(name, Path(built["model_dir"]), data, Path(tmp) / name, args,
                                     with_accuracy=False, with_exporters=False)
            result["machine"] = {**started, "loadavg_end": os.getloadavg()}
            report["models"][name] = result
            report["machine"] = result["machine"]
            save(report, args.out)  # after every model: a run cut short keeps what it measured
            shutil.rmtree(Path(tmp) / name, ignore_errors=True)  # a base-sized model's graphs: GBs


def save(report: dict[str, Any], out: Path) -> None:
    from report import render  # benchmarks/export/report.py

    (out / "report.json").write_text(json.dumps(report, indent=2, sort_keys=True, default=str) + "\n")
    (out / "report.md").write_text(render(report))


def machine() -> dict[str, Any]:
    import onnxruntime
    import torch
    import transformers

    return {
        "python": platform.python_version(),
        "cpu_count": os.cpu_count(),
        "loadavg_start": os.getloadavg(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
        "transformers": transformers.__version__,
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


if __name__ == "__main__":
    sys.path.insert(0, str(HERE))
    main()
