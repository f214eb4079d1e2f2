"""The main job: the seed case study end to end, each step timed, every report in one folder.

    python scripts/casestudy.py [--out out/casestudy] [--quick]

1. the sample model (fine-tuned MiniLM sentiment classifier; cached)
2. the slim Debian base for the serving image (mmdebstrap; cached)
3. the fat image's base (mmdebstrap; cached); 1-3 run side by side
4. the fat case-study image (the article's Dockerfile, built daemonlessly; cached)
5. `advisor advise` of the fat image (text, json, markdown, html, and the fixes)
6. `advisor export` of the fat image to a slim onnxruntime image
7. `advisor bench` original vs slim
Steps 1-4 reuse ${ADVISOR_CACHE:-~/.cache/advisor}; steps 5-7 always run. ``--quick`` is the
whole story in minutes: the short fine-tune, the quick fat image (build.py --variant quick)
and a shorter bench (fewer latency cases and samples; accuracy still on all 1,000 sentences).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
ADVISOR = [PY, "-m", "advisor.cli"]
# --quick: three latency cases (no batch 32), 2 rounds of 15 samples; accuracy on all 1,000.
QUICK_BENCH = ["--cases", "b1_s32,b1_s128,b8_s128", "--rounds", "2", "--iterations", "15"]


ENV = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}


@dataclass
class Running:
    """One step's process, its stderr going to ``log`` and its stdout to ``log`` + ``.out``.

    A thread reaps it with wait4, not wait: the step's own CPU time (user + system, its
    children included) says what it would take on an idle machine when the shared one is
    loaded, and the time it ended is its own even when another step is waited for first.
    """

    name: str
    argv: list[str]
    log: Path
    proc: subprocess.Popen[bytes]
    started: float
    ended: float = 0.0
    code: int = 0
    cpu: float = 0.0
    reaper: threading.Thread | None = None

    def reap(self) -> None:
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.ended = time.monotonic()
        self.code = self.proc.returncode = os.waitstatus_to_exitcode(status)
        self.cpu = round(usage.ru_utime + usage.ru_stime, 1)


def last_json(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.strip().splitlines()):
        if line.startswith("{"):
            value = json.loads(line)
            if isinstance(value, dict):
                return value
    raise SystemExit(f"casestudy: expected a JSON summary line, got:\n{stdout[-2000:]}")


class Steps:
    def __init__(self, out: Path) -> None:
        self.out = out
        self.times: dict[str, float] = {}
        self.cpu: dict[str, float] = {}
        (out / "logs").mkdir(parents=True, exist_ok=True)

    def start(self, name: str, argv: list[str]) -> Running:
        """Start a step in the background (steps that need nothing from each other overlap)."""
        print(f"[{name}] started", file=sys.stderr, flush=True)
        log = self.out / "logs" / f"{name}.log"
        with log.open("wb") as err, log.with_suffix(".out").open("wb") as out:
            proc = subprocess.Popen(argv, cwd=ROOT, stdout=out, stderr=err, env=ENV)
        job = Running(name, argv, log, proc, time.monotonic())
        job.reaper = threading.Thread(target=job.reap, daemon=True)
        job.reaper.start()
        return job

    def finish(self, job: Running) -> str:
        """Wait for a step, record its time, return its stdout; stop the job on failure."""
        assert job.reaper is not None
        job.reaper.join()
        code = job.code
        self.cpu[job.name] = job.cpu
        if code != 0:
            print("\n".join(job.log.read_text(errors="replace").strip().splitlines()[-15:]), file=sys.stderr)
            print(f"casestudy: step failed (exit {code}): {' '.join(job.argv)}\n"
                  f"casestudy: full log in {job.log}", file=sys.stderr)
            raise SystemExit(code)
        self.times[job.name] = round(job.ended - job.started, 1)
        print(f"[{job.name}] done in {self.times[job.name]:.1f} s", file=sys.stderr, flush=True)
        return job.log.with_suffix(".out").read_text()

    def __call__(self, name: str, argv: list[str]) -> str:
        return self.finish(self.start(name, argv))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "casestudy")
    parser.add_argument("--quick", action="store_true",
                        help="the whole story in minutes: the short fine-tune, a smaller fat image "
                             "(benchmarks/casestudy/README.md, 'The quick case study'), a shorter bench")
    parser.add_argument("--model", choices=["full", "quick"],
                        help="the fine-tune recipe alone (default: quick with --quick, else full), "
                             "e.g. the full fat image with the quick model a cache already holds")
    parser.add_argument("--image", metavar="REF",
                        help="advise, export and bench this fat image (e.g. oci:DIR:TAG) instead of "
                             "building one")
    parser.add_argument("--base-variant", choices=["slim", "full"], default="slim",
                        help="offline base of the serving image: slim (no shell, apt, dpkg) or "
                             "full (a python:3.11-slim stand-in)")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    step = Steps(out)

    variant = ["--variant", "quick" if args.quick else "fat"]
    started = time.monotonic()
    # The fine-tune is CPU-bound, the mmdebstrap bases mostly download and unpack: on a fresh
    # machine they overlap. Each step's time in summary.json is its own, overlapping or not.
    recipe = args.model or ("quick" if args.quick else "full")
    jobs = [step.start("sample-model", [PY, "sample_models/build_sentiment.py",
                                        *(["--quick"] if recipe == "quick" else [])]),
            step.start("slim-base", [PY, "benchmarks/base/build_debian_base.py",
                                     "--variant", args.base_variant]),
            *([] if args.image else
              [step.start("fat-base", [PY, "benchmarks/casestudy/build.py", "--bases-only", *variant])])]
    try:
        model, base = [last_json(step.finish(job)) for job in jobs][:2]
    finally:  # one failed: do not leave the others running
        for job in jobs:
            if job.proc.poll() is None:
                job.proc.terminate()
    fat = {"reference": args.image} if args.image else last_json(step(
        "fat-image", [PY, "benchmarks/casestudy/build.py", "--quiet", *variant, "--model-dir", model["model_dir"]]))
    fat_ref, data = fat["reference"], model["data_csv"]

    step("advise", [*ADVISOR, "advise", fat_ref, "--format", "json", "-o", str(out / "advise.json"),
                    "--output-dir", str(out), "--write-fixes", str(out / "fixes")])
    slim_ref = f"oci:{out / 'slim'}:latest"
    step("export", [*ADVISOR, "export", fat_ref, "--artifacts", str(out / "artifacts"),
                    "--output", slim_ref, "--base", base["reference"], "--data", data,
                    "--format", "json"])
    step("bench", [*ADVISOR, "bench", "--original", fat_ref, "--slim", slim_ref, "--data", data,
                   "--report", str(out / "bench"), "--advice", str(out / "advise.json"),
                   *(QUICK_BENCH if args.quick else [])])

    summary = {"out": str(out), "original": fat_ref, "slim": slim_ref, "model": model,
               "base": base, "fat_image": fat, "seconds": step.times, "cpu_seconds": step.cpu,
               "loadavg_at_end": list(os.getloadavg()),
               "wall_seconds": round(time.monotonic() - started, 1), "quick": args.quick}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nReports in {out}:")
    for name in ("advise.txt", "advise.html", "fixes/Dockerfile", "artifacts/validation.json",
                 "bench/report.md", "bench/report.html", "summary.json"):
        print(f"  {out / name}")
    print("Time per step: " + ", ".join(f"{k} {v:.0f} s" for k, v in step.times.items())
          + f" (the first three overlap); {summary['wall_seconds']:.0f} s in all")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
