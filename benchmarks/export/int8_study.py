"""Which int8 graph, and why: every int8 candidate of the sample model, timed and profiled.

    .venv/bin/python benchmarks/export/int8_study.py [--model-dir DIR] [--data CSV]

Builds, from one legacy export of the sample model, the int8 graphs the export races and the
ones it considered and left out, then for each: the accuracy on the held-out CSV (the gate's
1,000 rows), the fastest wall and CPU milliseconds of interleaved runs at b1_s128 and b8_s128
(2 threads, no spinning, like every variant in run.py), and onnxruntime's per-operator profile
(the share of kernel time per op type). CPU time is the less load-sensitive number on a shared
machine: a run's wall time also holds the waits for a lost core. Writes int8_study.json and
int8_study.md next to this file (or ``--out``).
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from advisor.export import optimize, validation  # noqa: E402
from advisor.export.exporter import export_onnx  # noqa: E402
from advisor.export.signature import derive_graph  # noqa: E402
from advisor.export.source import inspect_model, load_torch_model  # noqa: E402
from advisor.export.tokenizer import encode, load_serving_tokenizer  # noqa: E402

THREADS = 2
SHAPES = {"b1_s128": (1, 128), "b8_s128": (8, 128)}
RUNS = {"b1_s128": 40, "b8_s128": 12}
PROFILE_RUNS = 10
ROUNDS = 3  # the turns repeat this many times; a burst of load then hits every variant


def _dynamic(src: Path, dest: Path, unsigned: bool = False, **options: Any) -> None:
    """quantize_dynamic as advisor calls it, with one option changed."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    extra = {"DefaultTensorType": onnx.TensorProto.FLOAT, **options.pop("extra", {})}
    weights = QuantType.QUInt8 if unsigned else QuantType.QInt8
    quantize_dynamic(str(src), str(dest), weight_type=weights, extra_options=extra, **options)


def build(model_dir: Path, data: Path, work: Path) -> tuple[dict[str, Path], Any, Any, list[str]]:
    """The fp32 graphs (raw, partial, fused) and every int8 variant made from them."""
    source = inspect_model(model_dir)
    model = load_torch_model(source)
    graph = derive_graph(model, model_dir, source.arch.model_type, source.task)
    tok = load_serving_tokenizer(model_dir, 128)
    fp32 = {name: work / name / "model.onnx" for name in ("raw", "partial", "fused")}
    for path in fp32.values():
        path.parent.mkdir(parents=True)
    export_onnx(model, graph, fp32["raw"], 17, source.vocab, "legacy")
    optimize.fuse(fp32["raw"], fp32["fused"], source.config, "bert")
    optimize.fuse(fp32["raw"], fp32["partial"], source.config, "bert", attention=False)
    texts, _ = validation.calibration_texts(data, 256, 1000)
    calib = [encode(tok, texts[i : i + 8], graph.inputs, pad_to=128) for i in range(0, len(texts), 8)]
    recipes: dict[str, Callable[[Path], None]] = {
        "unfused (shipped today)": lambda d: optimize.quantize_int8(fp32["raw"], d),
        "partial": lambda d: optimize.quantize_int8(fp32["partial"], d),
        "fused (QAttention)": lambda d: optimize.quantize_int8(fp32["fused"], d),
        "unfused-static (QDQ, 256 rows)": lambda d: optimize.quantize_int8_static(fp32["raw"], d, calib),
        "unfused, per-channel weights": lambda d: _dynamic(fp32["raw"], d, per_channel=True),
        "unfused, attention MatMuls int8 too": lambda d: _dynamic(
            fp32["raw"], d, extra={"MatMulConstBOnly": False}),
        "unfused, u8 weights (u8u8)": lambda d: _dynamic(fp32["raw"], d, unsigned=True),
    }
    graphs = {}
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        for i, (name, recipe) in enumerate(recipes.items()):
            dest = work / f"int8-{i}" / "model.onnx"
            dest.parent.mkdir()
            recipe(dest)
            graphs[name] = dest
    finally:
        logging.disable(previous)
    return graphs, graph, tok, list(source.labels)


def session(path: Path, spinning: bool = False) -> Any:
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.inter_op_num_threads = 1
    opts.add_session_config_entry("session.intra_op.allow_spinning", "1" if spinning else "0")
    opts.log_severity_level = 3
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def feeds_for(inputs: list[str], batch: int, seq: int) -> dict[str, np.ndarray]:
    return validation.full_feeds(inputs, batch, seq, 30000)


def timing(sessions: dict[str, Any]) -> dict[str, dict[str, dict[str, float]]]:
    """Per variant and shape: fastest wall ms and fastest CPU ms, runs in turns (A B C A B C)."""
    out: dict[str, dict[str, dict[str, float]]] = {n: {} for n in sessions}
    for case, (batch, seq) in SHAPES.items():
        feeds = {n: feeds_for([i.name for i in s.get_inputs()], batch, seq) for n, s in sessions.items()}
        for n, s in sessions.items():
            for _ in range(3):
                s.run(None, feeds[n])
        wall: dict[str, list[float]] = collections.defaultdict(list)
        cpu: dict[str, list[float]] = collections.defaultdict(list)
        for _ in range(ROUNDS * RUNS[case]):
            for n, s in sessions.items():
                c, t = time.process_time(), time.perf_counter()
                s.run(None, feeds[n])
                wall[n].append((time.perf_counter() - t) * 1000)
                cpu[n].append((time.process_time() - c) * 1000)
        for n in sessions:
            out[n][case] = {"wall_min": round(min(wall[n]), 2),
                            "wall_p50": round(float(np.median(wall[n])), 2),
                            "cpu_p50": round(float(np.median(cpu[n])), 2),
                            "cpu_min": round(min(cpu[n]), 2)}
    return out


def profile(path: Path) -> dict[str, dict[str, float]]:
    """Share of kernel time per operator type at each shape (onnxruntime's profiler)."""
    import onnxruntime as ort

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = THREADS
    opts.add_session_config_entry("session.intra_op.allow_spinning", "0")
    opts.enable_profiling = True
    opts.profile_file_prefix = str(path.parent / "profile")
    s = ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])
    for batch, seq in SHAPES.values():
        feeds = feeds_for([i.name for i in s.get_inputs()], batch, seq)
        for _ in range(PROFILE_RUNS):
            s.run(None, feeds)
    events = json.loads(Path(s.end_profiling()).read_text())
    runs = [(e["ts"], e["ts"] + e["dur"]) for e in events if e.get("name") == "model_run"]
    shares: dict[str, dict[str, float]] = {}
    for k, case in enumerate(SHAPES):
        window = runs[k * PROFILE_RUNS : (k + 1) * PROFILE_RUNS]
        per_op: collections.Counter[str] = collections.Counter()
        for e in events:
            if e.get("cat") == "Node" and e["name"].endswith("_kernel_time") and any(
                    a <= e["ts"] <= z for a, z in window):
                per_op[e["args"]["op_name"]] += e["dur"]
        total = sum(per_op.values()) or 1
        shares[case] = {op: round(100.0 * d / total, 1) for op, d in per_op.most_common(8)}
    return shares


def accuracy(path: Path, batches: list[dict[str, Any]], golds: list[int]) -> float:
    preds = validation.predict_onnx(session(path), batches)
    return sum(int(p == g) for p, g in zip(preds, golds, strict=True)) / len(golds)


def main() -> None:
    cache = Path(os.environ.get("ADVISOR_CACHE", "~/.cache/advisor")).expanduser()
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0] if __doc__ else None)
    parser.add_argument("--model-dir", type=Path,
                        default=next(iter(sorted((cache / "models").glob("sentiment-minilm-*"))), None))
    parser.add_argument("--data", type=Path, default=cache / "data" / "rotten_tomatoes_heldout_1000.csv")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    load_start = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="advisor-int8-study-") as tmp:
        graphs, graph, tok, labels = build(args.model_dir, args.data, Path(tmp))
        texts, golds = validation.read_labelled_csv(args.data, labels, 1000)
        batches = [encode(tok, texts[i : i + 32], graph.inputs) for i in range(0, len(texts), 32)]
        fp32 = accuracy(Path(tmp) / "raw" / "model.onnx", batches, golds)
        rows: dict[str, Any] = {}
        for name, path in graphs.items():
            rows[name] = {"size_bytes": path.stat().st_size, "accuracy": accuracy(path, batches, golds),
                          "profile": profile(path)}
        sessions = {n: session(p) for n, p in graphs.items()}
        shipped = graphs["unfused (shipped today)"]
        sessions["unfused, session spinning on"] = session(shipped, spinning=True)
        times = timing(sessions)
    report = {"model_dir": str(args.model_dir), "fp32_accuracy": fp32, "variants": rows,
              "timing": times, "loadavg_start": load_start, "loadavg_end": os.getloadavg(),
              "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "int8_study.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (args.out / "int8_study.md").write_text(render(report))


def render(report: dict[str, Any]) -> str:
    base = report["timing"]["unfused (shipped today)"]
    lines = [
        "# int8 candidates of the sample model", "",
        f"Measured {report['date']}, 2 threads, no spinning unless said; load average "
        f"{report['loadavg_start'][0]:.1f} at start, {report['loadavg_end'][0]:.1f} at end. "
        "Reproduce: `.venv/bin/python benchmarks/export/int8_study.py`. Wall and CPU ms are the "
        "fastest of interleaved runs; 'vs shipped' is the shipped graph's CPU ms / this one's "
        f"(> 1 is faster). fp32 accuracy {report['fp32_accuracy']:.1%} on the same 1,000 rows.", "",
        "| variant | file | accuracy | b1 wall / CPU ms | b8 wall / CPU ms | vs shipped b1 / b8 "
        "| top ops b1 (% of kernel time) | top ops b8 |",
        "|---|---:|---:|---:|---:|---:|---|---|",
    ]
    for name, t in report["timing"].items():
        v = report["variants"].get(name, {})
        acc = f"{v['accuracy']:.1%}" if "accuracy" in v else "(same graph)"
        size = f"{v['size_bytes'] / 1e6:.1f} MB" if "size_bytes" in v else "-"
        rel = " / ".join(f"{base[c]['cpu_min'] / t[c]['cpu_min']:.2f}x" for c in SHAPES)
        ops = [", ".join(f"{op} {p:.0f}" for op, p in list(v.get("profile", {}).get(c, {}).items())[:5])
               for c in SHAPES]
        cells = [name, size, acc, *(f"{t[c]['wall_min']:.1f} / {t[c]['cpu_min']:.1f}" for c in SHAPES),
                 rel, *(o or "-" for o in ops)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
