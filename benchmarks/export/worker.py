"""Time one model variant in a process of its own (so torch and onnxruntime never share threads).

    python worker.py torch   MODEL_DIR  FEEDS.npz OUT.json [--threads 2]
    python worker.py onnx    MODEL.onnx FEEDS.npz OUT.json
    python worker.py optimum MODEL_DIR  FEEDS.npz OUT.json --workdir DIR --data CSV   (venv-optimum)
    python worker.py ortmodel ORT_DIR   FEEDS.npz OUT.json                            (venv-optimum)

FEEDS.npz holds, per case (``b1_s128`` ...), the int64 arrays ``CASE/input_ids`` etc. OUT.json
gets per case ``{p50, p90, min, runs}`` in milliseconds; the outputs of the first run are saved
next to it (OUT.npz) for the parity comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

WARMUP = 5


def runs_for(case: str) -> int:
    return 30 if case.startswith("b1_") else 10


def load_feeds(path: Path) -> dict[str, dict[str, np.ndarray]]:
    cases: dict[str, dict[str, np.ndarray]] = {}
    with np.load(path) as npz:
        for key in npz.files:
            case, name = key.split("/")
            cases.setdefault(case, {})[name] = npz[key]
    return cases


def time_fn(fn: Callable[[], Any], runs: int) -> dict[str, float]:
    for _ in range(WARMUP):
        fn()
    samples = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1000.0)
    samples.sort()
    return {
        "p50": statistics.median(samples),
        "p90": samples[int(0.9 * (len(samples) - 1))],
        "min": samples[0],
        "runs": runs,
    }


def bench_torch(
    model_dir: Path, cases: Mapping[str, Mapping[str, np.ndarray]], threads: int
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    import torch
    from transformers import AutoModelForSequenceClassification

    torch.set_num_threads(threads)
    model = AutoModelForSequenceClassification.from_pretrained(
        model_dir, attn_implementation="eager"
    ).eval()
    timings, outputs = {}, {}
    with torch.inference_mode():
        for case, feeds in cases.items():
            tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}
            outputs[case] = model(**tensors).logits.numpy()
            timings[case] = time_fn(lambda t=tensors: model(**t), runs_for(case))
    return timings, outputs


def session_options(threads: int) -> Any:
    """The same onnxruntime options for every ONNX variant, raw session or ORTModel alike."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return opts


def ort_session(path: Path, threads: int) -> Any:
    import onnxruntime as ort

    return ort.InferenceSession(str(path), session_options(threads), providers=["CPUExecutionProvider"])


def bench_onnx(
    path: Path, cases: Mapping[str, Mapping[str, np.ndarray]], threads: int
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    session = ort_session(path, threads)
    names = [i.name for i in session.get_inputs()]
    timings, outputs = {}, {}
    for case, feeds in cases.items():
        f = {n: feeds[n] for n in names}
        outputs[case] = session.run(None, f)[0]
        timings[case] = time_fn(lambda f=f: session.run(None, f), runs_for(case))
    return timings, outputs


def bench_optimum(
    model_dir: Path,
    cases: Mapping[str, Mapping[str, np.ndarray]],
    threads: int,
    workdir: Path,
    data: Path | None,
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """Optimum's export + ORTQuantizer presets, each timed through ORTModel; best one reported."""
    import torch
    from optimum.onnxruntime import ORTModelForSequenceClassification, ORTOptimizer, ORTQuantizer
    from optimum.onnxruntime.configuration import AutoOptimizationConfig, AutoQuantizationConfig

    torch.set_num_threads(threads)
    base = workdir / "optimum-fp32"
    seconds: dict[str, float] = {}
    started = time.monotonic()
    ORTModelForSequenceClassification.from_pretrained(model_dir, export=True).save_pretrained(base)
    seconds["export"] = time.monotonic() - started
    started = time.monotonic()
    ORTOptimizer.from_pretrained(base).optimize(
        save_dir=workdir / "optimum-o2", optimization_config=AutoOptimizationConfig.O2()
    )
    seconds["optimize_o2"] = time.monotonic() - started
    presets = {
        "avx512_vnni": AutoQuantizationConfig.avx512_vnni(is_static=False, per_channel=False),
        "avx2": AutoQuantizationConfig.avx2(is_static=False, per_channel=False),
    }
    so = session_options(threads)
    results: dict[str, Any] = {}
    errors: dict[str, str] = {}
    outputs: dict[str, np.ndarray] = {}
    for src_name in ("optimum-fp32", "optimum-o2"):
        for preset, qconfig in presets.items():
            name = f"{src_name}+{preset}"
            out_dir = workdir / name
            files = [p.name for p in (workdir / src_name).glob("*.onnx")]
            started = time.monotonic()
            try:
                ORTQuantizer.from_pretrained(workdir / src_name, file_name=files[0]).quantize(
                    save_dir=out_dir, quantization_config=qconfig
                )
            except Exception as e:  # recorded: Optimum cannot quantise its own O2 graph here
                errors[name] = f"{type(e).__name__}: {str(e).splitlines()[0][:300]}"
                continue
            seconds[f"quantize {name}"] = time.monotonic() - started
            model = ORTModelForSequenceClassification.from_pretrained(out_dir, session_options=so)
            per_case, first = time_ortmodel(model, cases)
            for case, logits in first.items():
                outputs.setdefault(case, logits)
            onnx_files = sorted(out_dir.glob("*.onnx"))
            results[name] = {
                "latency_ms": per_case,
                "onnx": str(onnx_files[0]),
                "size_bytes": onnx_files[0].stat().st_size,
            }
    best = min(results, key=lambda n: sum(c["p50"] for c in results[n]["latency_ms"].values()))
    if data is not None:  # only the preset compared with advisor's int8 (1,000 rows each)
        best_model = ORTModelForSequenceClassification.from_pretrained(workdir / best, session_options=so)
        results[best]["accuracy"] = _optimum_accuracy(best_model, model_dir, data)
    fp32_onnx = sorted(base.glob("*.onnx"))[0]
    return {"best": best, "variants": results, "errors": errors, "seconds": seconds,
            "fp32_onnx": str(fp32_onnx), **results[best]["latency_ms"]}, outputs


def time_ortmodel(
    model: Any, cases: Mapping[str, Mapping[str, np.ndarray]]
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """An Optimum ORTModel timed the way its users call it: torch tensors in, logits out."""
    import torch

    timings, outputs = {}, {}
    for case, feeds in cases.items():
        tensors = {k: torch.from_numpy(v) for k, v in feeds.items()}
        outputs[case] = model(**tensors).logits.numpy()
        timings[case] = time_fn(lambda t=tensors, m=model: m(**t), runs_for(case))
    return timings, outputs


def bench_ortmodel(
    ort_dir: Path, cases: Mapping[str, Mapping[str, np.ndarray]], threads: int
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    import torch
    from optimum.onnxruntime import ORTModelForSequenceClassification

    torch.set_num_threads(threads)
    model = ORTModelForSequenceClassification.from_pretrained(
        ort_dir, session_options=session_options(threads)
    )
    return time_ortmodel(model, cases)


def _optimum_accuracy(model: Any, model_dir: Path, data: Path) -> float:
    import csv

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    with data.open(newline="", encoding="utf-8") as f:
        rows = [(r["text"], int(r["label"])) for r in csv.DictReader(f)]
    correct = 0
    for i in range(0, len(rows), 32):
        batch = rows[i : i + 32]
        enc = tok(
            [t for t, _ in batch],
            padding=True,
            truncation=True,
            max_length=128,
            return_tensors="pt",
        )
        pred = model(**enc).logits.argmax(-1).tolist()
        correct += sum(int(p == y) for p, (_, y) in zip(pred, batch, strict=True))
    return correct / len(rows)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=["torch", "onnx", "optimum", "ortmodel"])
    parser.add_argument("model", type=Path)
    parser.add_argument("feeds", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workdir", type=Path)
    parser.add_argument("--data", type=Path)
    args = parser.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cases = load_feeds(args.feeds)
    if args.mode == "torch":
        timings, outputs = bench_torch(args.model, cases, args.threads)
    elif args.mode == "onnx":
        timings, outputs = bench_onnx(args.model, cases, args.threads)
    elif args.mode == "ortmodel":
        timings, outputs = bench_ortmodel(args.model, cases, args.threads)
    else:
        timings, outputs = bench_optimum(args.model, cases, args.threads, args.workdir, args.data)
    args.out.write_text(json.dumps(timings, indent=2, sort_keys=True))
    np.savez(args.out.with_suffix(".npz"), **outputs)


if __name__ == "__main__":
    main()
