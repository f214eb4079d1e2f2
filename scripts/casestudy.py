"""The main job: the seed case study end to end, each step timed, every report in one folder.

    python scripts/casestudy.py [--out out/casestudy] [--quick]

1. the sample model (fine-tuned MiniLM sentiment classifier; cached)
2. the slim Debian base for the serving image (mmdebstrap; cached)
3. the fat case-study image (the article's Dockerfile, built daemonlessly; cached)
4. `advisor advise` of the fat image (text, json, markdown, html, and the fixes)
5. `advisor export` of the fat image to a slim onnxruntime image
6. `advisor bench` original vs slim
Steps 1-3 reuse ${ADVISOR_CACHE:-~/.cache/advisor}; steps 4-6 always run.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
PY = sys.executable
ADVISOR = [PY, "-m", "advisor.cli"]


def run(argv: list[str], log: Path) -> str:
    """Run one step, tee its stderr to a log file, return its stdout; stop the job on failure."""
    with log.open("w") as err:
        proc = subprocess.run(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=err, text=True,
                              env={**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    if proc.returncode != 0:
        tail = log.read_text().strip().splitlines()[-15:]
        print("\n".join(tail), file=sys.stderr)
        print(f"casestudy: step failed (exit {proc.returncode}): {' '.join(argv)}\n"
              f"casestudy: full log in {log}", file=sys.stderr)
        raise SystemExit(proc.returncode)
    return proc.stdout


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
        (out / "logs").mkdir(parents=True, exist_ok=True)

    def __call__(self, name: str, argv: list[str]) -> str:
        print(f"[{len(self.times) + 1}] {name} ...", file=sys.stderr, flush=True)
        started = time.monotonic()
        stdout = run(argv, self.out / "logs" / f"{name}.log")
        self.times[name] = round(time.monotonic() - started, 1)
        print(f"    done in {self.times[name]:.1f} s", file=sys.stderr, flush=True)
        return stdout


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "out" / "casestudy")
    parser.add_argument("--quick", action="store_true", help="the short fine-tune recipe (CI-sized)")
    parser.add_argument("--base-variant", choices=["slim", "full"], default="slim",
                        help="offline base of the serving image: slim (no shell, apt, dpkg) or "
                             "full (a python:3.11-slim stand-in)")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    step = Steps(out)

    model = last_json(step("sample-model", [PY, "sample_models/build_sentiment.py",
                                            *(["--quick"] if args.quick else [])]))
    base = last_json(step("slim-base", [PY, "benchmarks/base/build_debian_base.py",
                                        "--variant", args.base_variant]))
    fat = last_json(step("fat-image", [PY, "benchmarks/casestudy/build.py", "--quiet",
                                       "--model-dir", model["model_dir"]]))
    fat_ref, data = fat["reference"], model["data_csv"]

    step("advise", [*ADVISOR, "advise", fat_ref, "--format", "json", "-o", str(out / "advise.json"),
                    "--output-dir", str(out), "--write-fixes", str(out / "fixes")])
    slim_ref = f"oci:{out / 'slim'}:latest"
    step("export", [*ADVISOR, "export", fat_ref, "--artifacts", str(out / "artifacts"),
                    "--output", slim_ref, "--base", base["reference"], "--data", data,
                    "--format", "json"])
    step("bench", [*ADVISOR, "bench", "--original", fat_ref, "--slim", slim_ref, "--data", data,
                   "--report", str(out / "bench"), "--advice", str(out / "advise.json")])

    summary = {"out": str(out), "original": fat_ref, "slim": slim_ref, "model": model,
               "base": base, "fat_image": fat, "seconds": step.times}
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(f"\nReports in {out}:")
    for name in ("advise.txt", "advise.html", "fixes/Dockerfile", "artifacts/validation.json",
                 "bench/report.md", "bench/report.html", "summary.json"):
        print(f"  {out / name}")
    print("Time per step: " + ", ".join(f"{k} {v:.0f} s" for k, v in step.times.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
