"""How long a new user waits for ``advisor --help`` and for ``advisor advise`` of a small image
(issue 18's targets: ``--help`` <= 0.2 s, advise of dive's 1.2 MB test image <= 0.5 s wall).

The small image is dive's own ``test-docker-image.tar`` (tests/data/dive, from wagoodman/dive),
inflated into the work folder; without it, a 1.2 MB image of the same shape is built. Each
command runs in its own process through ``run.measure`` (wall, and user+sys CPU from
``getrusage``: the machine is shared, so wall is noisy and CPU is the steadier number), every
measurement ``--repeat`` times; the report keeps the minimum and the median.

    .venv/bin/python benchmarks/advise_speed/startup.py [--repeat 7]

Writes ``report-startup.json`` and ``report-startup.md`` next to this file (or ``--out``).
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.advise_speed.run import measure  # noqa: E402

DIVE_IMAGE = ROOT / "tests" / "data" / "dive" / "test-docker-image.tar.gz"
ADVISOR = [sys.executable, "-c", "from advisor.cli.main import main; main()"]
TARGETS = {"help": 0.2, "advise_small": 0.5, "advise_small_cached": 0.5}


def small_image(work: Path) -> tuple[str, str]:
    """(docker-archive reference, where it came from) of a ~1.2 MB image."""
    archive = work / "small.tar"
    if DIVE_IMAGE.is_file():
        with gzip.open(DIVE_IMAGE) as src, archive.open("wb") as dst:
            shutil.copyfileobj(src, dst)
        return f"docker-archive:{archive}", "dive's test-docker-image.tar"
    from tests.oci.helpers import make_image

    layers: list[dict[str, Any]] = [{"bin/busybox": os.urandom(1_150_000), "etc/os-release": b"ID=busybox\n"}]
    layers += [{f"root/file{i}.txt": os.urandom(6_400)} for i in range(10)]
    return make_image(work, layers, fmt="docker-archive"), "a synthetic 1.2 MB image (dive's was not found)"


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    walls, cpus = [r["wall_s"] for r in runs], [r["cpu_s"] for r in runs]
    return {"wall_s_min": round(min(walls), 3), "wall_s_median": round(statistics.median(walls), 3),
            "cpu_s_min": round(min(cpus), 3), "cpu_s_median": round(statistics.median(cpus), 3),
            "walls_s": [round(w, 3) for w in walls], "peak_rss_kib": min(r["peak_rss_kib"] for r in runs)}


def run(work: Path, repeat: int) -> dict[str, Any]:
    ref, source = small_image(work)
    env = {**os.environ, "ADVISOR_CACHE": str(work / "cache"), "PYTHONPATH": str(ROOT)}
    out = work / "advise.json"
    help_runs, cold, warm = [], [], []
    for _ in range(repeat):
        help_runs.append(measure([*ADVISOR, "--help"], env))
        shutil.rmtree(work / "cache", ignore_errors=True)
        cold.append(measure([*ADVISOR, "advise", ref, "--format", "json", "-o", str(out)], env))
        warm.append(measure([*ADVISOR, "advise", ref, "--format", "json", "-o", str(out)], env))
    for m in (*help_runs, *cold, *warm):
        if m["rc"] != 0:
            raise RuntimeError(f"advisor failed: {m['stderr']}")
    report = json.loads(out.read_text())
    return {"image": {"source": source, "bytes": Path(ref.split(":", 1)[1]).stat().st_size,
                      "size_bytes": report["image"]["size_bytes"], "layers": len(report["layers"])},
            "help": summary(help_runs), "advise_small": summary(cold), "advise_small_cached": summary(warm)}


def render(results: dict[str, Any]) -> str:
    img, m = results["image"], results["measured"]
    lines = ["# advise speed: startup and a small image", "",
             f"{img['source']}: {img['bytes']:,} bytes, {img['layers']} layers. Measured {m['date']}, "
             f"load average {m['loadavg_start'][0]:.2f} at the start, {m['loadavg_end'][0]:.2f} at the end "
             f"(2 cores, shared), {m['repeat']} runs each.", "",
             "| command | target (wall) | wall min | wall median | user+sys min | user+sys median | met (wall min) |",
             "|---|---|---|---|---|---|---|"]
    names = {"help": "`advisor --help`", "advise_small": "`advisor advise IMAGE -f json` (empty layer cache)",
             "advise_small_cached": "the same, layer cache filled"}
    for key, label in names.items():
        r = results[key]
        met = "yes" if r["wall_s_min"] <= TARGETS[key] else "no"
        lines.append(f"| {label} | {TARGETS[key]:.1f} s | {r['wall_s_min']:.3f} s | {r['wall_s_median']:.3f} s | "
                     f"{r['cpu_s_min']:.3f} s | {r['cpu_s_median']:.3f} s | {met} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="advise-startup-"))
    started = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "loadavg_start": os.getloadavg(),
               "repeat": args.repeat}
    try:
        results = run(work, args.repeat)
        results["measured"] = {**started, "loadavg_end": os.getloadavg()}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "report-startup.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (args.out / "report-startup.md").write_text(render(results))
    print(render(results))


if __name__ == "__main__":
    main()
