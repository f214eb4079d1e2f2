"""Fidelity of advise's estimates: each recommendation applied alone, and all of them, built.

    python benchmarks/casestudy/fidelity.py [--model-dir DIR] [--json results/fidelity.json]

1. builds (or reuses) the fat image and runs ``advisor advise`` on it, with ``--write-fixes``;
2. measures one variant of the article's Dockerfile per recommendation it can apply alone
   (``variants/``: .dockerignore built whole; the fixes of the 9.7 GB pip step derived from
   the fat image's own layer, see ``onestep.py``), and builds the Dockerfile advise wrote
   (all the fixes together, on the offline bases and the local CPU torch wheel through its ARGs);
3. compares the bytes advise estimated with the bytes each built variant really freed
   (the fat image's layer tars minus the variant's).
4. starts the original and the all-fixes image (advisor.sandbox, as bench does) and POSTs
   the 1,000 held-out sentences to both: the labels must be the same, the fixed one non-root.
Prints a markdown table; ``--json`` writes the numbers. Variants are removed after measuring
(disk): only the fat image and the all-fixes image are kept.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import build  # noqa: E402
import buildah  # noqa: E402
import onestep  # noqa: E402

# recommendation id -> files laid over the staged context (relative to this folder): the
# article's Dockerfile with that one fix and nothing else.
ALONE = {
    "dockerignore": {".dockerignore": "variants/dockerignore"},
    "remove-dev-tools": {"requirements.txt": "variants/requirements-nodev.txt"},
    "trim-python": {"Dockerfile": "variants/Dockerfile.trim"},
    "clean-caches": {"Dockerfile": "variants/Dockerfile.caches"},
    "drop-unused-packages": {"requirements.txt": "variants/requirements-used.txt"},
    "slim-base": {"Dockerfile": "variants/Dockerfile.slim"},
    "strip-binaries": {"Dockerfile": "variants/Dockerfile.strip"},
}
# Slim base alone: the article's install on the full base, its result (pip's cache included:
# cleaning it is another fix) copied onto the slim base, then the article's two COPY steps.
SLIM_BEFORE = "ARG SLIM=python:3.11-slim\nFROM ${SLIM}\nWORKDIR /app\nRUN apt-get update && apt-get install -y curl\n"
# The fat image's layers: base, apt, COPY requirements.txt, pip install, COPY . .
FAT_PIP_LAYER, FAT_REQUIREMENTS_LAYER, FAT_CONTEXT_LAYER = 3, 2, 4
NOT_ALONE = {  # and why no variant applies it alone
    "onnx-runtime": "measured by `advisor export` and `advisor bench` (the slim image)",
    "cpu-torch": "offline there is no CPU torch 2.14.1 (only 2.13.0+cpu), and torchvision/torchaudio "
    "pin the CUDA torch: applied in the all-fixes image only",
    "squash-layers": "the hidden bytes are base-image files that the article's apt-get step overwrites: "
    "only a different base removes them",
}


def advise(ref: str, fixes: Path) -> dict[str, Any]:
    proc = subprocess.run(
        [sys.executable, "-m", "advisor.cli", "advise", ref, "--format", "json",
         "--write-fixes", str(fixes), "--force"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if proc.returncode not in (0, 1):
        raise SystemExit(f"advise failed: {proc.stderr.strip()[-2000:]}")
    report: dict[str, Any] = json.loads(proc.stdout)
    return report


@dataclass(frozen=True)
class Plan:
    """What one run measures: the all-fixes image (and its serving check), which one-fix
    variants (``None``: all of ``ALONE``), whether to keep them, where the JSON goes (rows
    already there for other recommendations are kept, so variants can be measured one run
    at a time)."""

    model_dir: Path | None = None
    keep: bool = False
    all_fixes: bool = True
    serve: bool = True
    only: tuple[str, ...] | None = None
    out: Path | None = None


def measure(plan: Plan) -> dict[str, Any]:
    """Everything above; with ``out``, the JSON is rewritten after each step (a long run
    that is stopped keeps what it measured)."""
    store = buildah.Store()
    started = time.monotonic()
    fat = build.build("fat", plan.model_dir, quiet=True)
    fat_bytes = fat.built.size_bytes
    fixes = buildah.cache_root() / "fixes-written"
    report = advise(fat.reference, fixes)
    recs = {r["id"]: r for r in report["recommendations"]}
    data: dict[str, Any] = {"rows": [], "serving": {}}
    if plan.out and plan.out.exists():
        data |= json.loads(plan.out.read_text())
    data |= {"fat": build.summary(fat), "not_alone": {k: v for k, v in NOT_ALONE.items() if k in recs}}
    for row in data["rows"]:  # rows measured by an earlier run: advise's estimate as it is now
        if row["recommendation"] in recs:
            row |= _row(row["recommendation"], row["what"], int(recs[row["recommendation"]]["standalone_savings_bytes"]),
                        row["freed_bytes"])  # fmt: skip

    def save(row: dict[str, Any] | None = None) -> None:
        if row is not None:
            rows = [r for r in data["rows"] if r["recommendation"] != row["recommendation"]]
            data["rows"] = sorted([*rows, row], key=_row_order)
        data["seconds"] = round(time.monotonic() - started, 1)
        if plan.out:
            plan.out.write_text(json.dumps(data, indent=1) + "\n")

    if plan.all_fixes:
        together, row = _all_fixes(report, fixes, fat_bytes, plan.model_dir)
        data["all_fixes"] = build.summary(together)
        save(row)
        if plan.serve:
            data["serving"] = serve_check(fat.reference, together.reference)
            save()
    for rec_id in plan.only if plan.only is not None else ALONE:
        if rec_id not in recs:
            continue
        before = buildah.image_ids(store)
        with DiskWatch() as disk:
            size, how = _variant_size(rec_id, fat, plan.model_dir)
        row = _row(rec_id, recs[rec_id]["title"], int(recs[rec_id]["standalone_savings_bytes"]), fat_bytes - size)
        row |= {"variant": dict(ALONE[rec_id]), "measured": how, "peak_disk_bytes": disk.peak}
        save(row)
        if not plan.keep:  # disk: the variant and its cache entries go, the fat image's layers stay
            buildah.remove_images(store, buildah.image_ids(store) - before)
    return data


def _variant_size(rec_id: str, fat: build.Result, model_dir: Path | None) -> tuple[int, dict[str, Any]]:
    """The one-fix variant's size: built whole when only a small step changes, else with its
    big step derived from the fat image's layer (``onestep``: rebuilding it needs 20 GB)."""
    files = {k: HERE / v for k, v in ALONE[rec_id].items()}
    if rec_id == "dockerignore":
        variant = build.build(rec_id, model_dir, quiet=True, files=files, push=False)
        return variant.built.size_bytes, {"how": "built", "seconds": round(variant.built.seconds, 1)}
    layers: tuple[int, tuple[int, ...]] = (FAT_PIP_LAYER, (FAT_CONTEXT_LAYER,))
    before = onestep.before_step(files.get("Dockerfile", HERE / "Dockerfile").read_text())
    change = {
        "remove-dev-tools": onestep.Change(requirements=files.get("requirements.txt")),
        "drop-unused-packages": onestep.Change(requirements=files.get("requirements.txt")),
        "trim-python": onestep.Change(trim=True),
        "strip-binaries": onestep.Change(strip=True),
        "clean-caches": onestep.Change(no_pip_cache=True),
        "slim-base": onestep.Change(only=("usr/local", "root/.cache")),
    }[rec_id]
    if rec_id == "slim-base":
        before, layers = SLIM_BEFORE, (FAT_PIP_LAYER, (FAT_REQUIREMENTS_LAYER, FAT_CONTEXT_LAYER))
    got = onestep.measure_variant(rec_id, before, fat, layers, change, files, model_dir)
    return got.size_bytes, {"how": "steps before the big one built; the big step derived from the fat image's layer",
                            "step_bytes": got.step_bytes, "fat_step_bytes": fat.built.layers[FAT_PIP_LAYER].size_bytes,
                            "notes": change.notes, "seconds": round(got.seconds, 1)}  # fmt: skip


def _all_fixes(report: dict[str, Any], fixes: Path, fat_bytes: int,
               model_dir: Path | None) -> tuple[build.Result, dict[str, Any]]:  # fmt: skip
    """Build the Dockerfile advise wrote (on the offline bases and the local CPU torch wheel)."""
    recs = {r["id"]: r for r in report["recommendations"]}
    args = {"TORCH_VERSION": build.CPU_TORCH[-1].name.split("-")[1].split("+")[0],
            "TORCH_INDEX": build.TORCH_INDEX}  # fmt: skip
    args |= {"BUILD_BASE": "localhost/casestudy-base-full", "BASE": "localhost/casestudy-base-slim"}
    together = build.build("fixes-written", model_dir, quiet=True,
                           files={f.name: f for f in sorted(fixes.iterdir()) if f.is_file()},
                           extra_args=args)  # fmt: skip
    applied = [r for r in report["recommendations"] if r["id"] not in ("onnx-runtime", "strip-binaries", "squash-layers")]
    estimate = sum(int(r["estimated_savings_bytes"]) for r in applied)
    if "onnx-runtime" in recs and "cpu-torch" in recs:  # cpu-torch counted 0 behind onnx-runtime
        estimate += int(recs["cpu-torch"]["standalone_savings_bytes"])
    return together, _row(ALL, ", ".join(r["id"] for r in applied), estimate, fat_bytes - together.built.size_bytes)


ALL = "all (advise --write-fixes)"


def _row_order(row: dict[str, Any]) -> tuple[int, int]:
    name = row["recommendation"]
    return (1, 0) if name == ALL else (0, list(ALONE).index(name) if name in ALONE else len(ALONE))


class DiskWatch:
    """The most disk a build took beyond what was used when it started (sampled every 2 s):
    the brief caps a variant's extra use, and a commit can briefly hold a layer twice."""

    def __init__(self, path: str = "/") -> None:
        self.path = path
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        start = shutil.disk_usage(self.path).used
        while not self._stop.wait(2.0):
            self.peak = max(self.peak, shutil.disk_usage(self.path).used - start)

    def __enter__(self) -> DiskWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def predict_labels(ref: str, texts: list[str]) -> tuple[list[str], dict[str, Any]]:
    """Start the image as bench does (advisor.sandbox), POST the texts in batches of 64;
    return the labels and how it ran (seconds to ready, the server's uid)."""
    from advisor.sandbox import runner

    running = runner.run_image(ref, timeout=600)
    try:
        pid = running.server_pid()
        uid = -1
        if pid is not None:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("Uid:"):
                    uid = int(line.split()[1])
        labels: list[str] = []
        for i in range(0, len(texts), 64):
            conn = running.connection(timeout=300)
            conn.request("POST", "/predict", json.dumps({"texts": texts[i : i + 64]}),
                         {"Content-Type": "application/json"})  # fmt: skip
            response = conn.getresponse()
            body = json.loads(response.read())
            conn.close()
            if response.status != 200:
                raise SystemExit(f"{ref}: POST /predict answered {response.status}: {body}")
            labels += [p["label"] for p in body["predictions"]]
        return labels, {"ready_s": round(running.ready_s, 2), "uid": uid}
    finally:
        running.stop(timeout=5)


def heldout_texts() -> list[str]:
    path = buildah.cache_root().parent / "data" / "rotten_tomatoes_heldout_1000.csv"
    with path.open(newline="") as f:
        return [row["text"] for row in csv.DictReader(f)]


def serve_check(fat_ref: str, fixed_ref: str) -> dict[str, Any]:
    texts = heldout_texts()
    fat_labels, fat_run = predict_labels(fat_ref, texts)
    fixed_labels, fixed_run = predict_labels(fixed_ref, texts)
    same = sum(a == b for a, b in zip(fat_labels, fixed_labels, strict=True))
    return {"sentences": len(texts), "same_labels": same, "original": fat_run, "fixed": fixed_run}


def _row(name: str, what: str, estimated: int, freed: int) -> dict[str, Any]:
    error = (estimated - freed) / freed if freed else 0.0
    return {"recommendation": name, "what": what, "estimated_bytes": estimated,
            "freed_bytes": freed, "error": round(error, 4)}  # fmt: skip


def markdown(data: dict[str, Any]) -> str:
    lines = ["| recommendation | advise estimated | the one-fix variant freed | estimate / freed | within 10 % |",
             "|---|---:|---:|---:|:---:|"]  # fmt: skip
    for r in data["rows"]:
        ratio = r["estimated_bytes"] / r["freed_bytes"] if r["freed_bytes"] else 0.0
        lines.append(f"| {r['recommendation']} | {mb(r['estimated_bytes'])} | {mb(r['freed_bytes'])} | "
                     f"{ratio:.3f} | {'yes' if abs(r['error']) <= 0.10 else 'no'} |")  # fmt: skip
    for rec, why in data["not_alone"].items():
        lines.append(f"| {rec} | | | not built alone: {why} | |")
    return "\n".join(lines)


def mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", type=Path)
    p.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the one-fix variants in buildah's store")
    p.add_argument("--no-serve", action="store_true", help="skip starting the images")
    p.add_argument("--no-all", action="store_true", help="skip the all-fixes image (keep its row from --json)")
    p.add_argument("--only", help="comma-separated recommendation ids: build only these one-fix variants")
    a = p.parse_args()
    only = tuple(x for x in a.only.split(",") if x) if a.only is not None else None
    if only and (bad := sorted(set(only) - set(ALONE))):
        p.error(f"no one-fix variant for {', '.join(bad)} (there are: {', '.join(ALONE)})")
    data = measure(Plan(a.model_dir, a.keep, not a.no_all, not a.no_serve, only, a.json))
    print(markdown(data))
    if data["serving"]:
        s = data["serving"]
        print(f"\nall-fixes image: {s['same_labels']}/{s['sentences']} held-out labels as the original's; "
              f"runs as uid {s['fixed']['uid']} (original: {s['original']['uid']})")
    if a.json:
        a.json.write_text(json.dumps(data, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
