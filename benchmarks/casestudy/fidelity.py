"""Fidelity of advise's estimates: each recommendation applied alone, and all of them, built.

    python benchmarks/casestudy/fidelity.py [--model-dir DIR] [--json results/fidelity.json]

1. builds (or reuses) the fat image and runs ``advisor advise`` on it, with ``--write-fixes``;
2. builds one variant of the article's Dockerfile per recommendation it can apply alone
   (``variants/``: caches cleaned, .dockerignore, dev tools out of requirements.txt), and the
   Dockerfile advise wrote (all the fixes together, on the offline bases and the local CPU
   torch wheel through its ARGs);
3. compares the bytes advise estimated with the bytes each built variant really freed
   (the fat image's layer tars minus the variant's, from buildah's store).
4. starts the original and the all-fixes image (advisor.sandbox, as bench does) and POSTs
   the 1,000 held-out sentences to both: the labels must be the same, the fixed one non-root.
Prints a markdown table; ``--json`` writes the numbers. Variants are removed after measuring
(disk): only the fat image and the all-fixes image are kept.
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))
sys.path.insert(0, str(HERE))

import build  # noqa: E402
import buildah  # noqa: E402

# recommendation id -> files laid over the staged context (relative to this folder)
ALONE = {
    "dockerignore": {".dockerignore": "variants/dockerignore"},
    "clean-caches": {"Dockerfile": "variants/Dockerfile.caches"},
    "remove-dev-tools": {"requirements.txt": "variants/requirements-nodev.txt"},
}
NOT_ALONE = {  # and why no variant applies it alone
    "onnx-runtime": "measured by `advisor export` and `advisor bench` (the slim image)",
    "cpu-torch": "offline there is no CPU torch 2.14.1 (only 2.13.0+cpu), and torchvision/torchaudio "
    "pin the CUDA torch: applied in the all-fixes image only",
    "slim-base": "needs the multi-stage build: applied in the all-fixes image",
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


def measure(model_dir: Path | None, keep: bool, serve: bool = True,
            out: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Everything above; with ``out``, the JSON is rewritten after each step (a long run
    that is stopped keeps what it measured)."""
    store = buildah.Store()
    started = time.monotonic()
    fat = build.build("fat", model_dir, quiet=True)
    fat_bytes = fat.built.size_bytes
    fixes = buildah.cache_root() / "fixes-written"
    report = advise(fat.reference, fixes)
    recs = {r["id"]: r for r in report["recommendations"]}
    data: dict[str, Any] = {"fat": build.summary(fat), "rows": [], "serving": {},
                            "not_alone": {k: v for k, v in NOT_ALONE.items() if k in recs}}  # fmt: skip

    def save() -> None:
        data["seconds"] = round(time.monotonic() - started, 1)
        if out:
            out.write_text(json.dumps(data, indent=1) + "\n")

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
    data["all_fixes"] = build.summary(together)
    data["rows"].append(_row("all (advise --write-fixes)", ", ".join(r["id"] for r in applied), estimate,
                             fat_bytes - together.built.size_bytes))  # fmt: skip
    save()
    if serve:
        data["serving"] = serve_check(fat.reference, together.reference)
        save()
    for rec_id, files in ALONE.items():
        if rec_id not in recs:
            continue
        before = buildah.image_ids(store)
        variant = build.build(rec_id, model_dir, quiet=True,
                              files={k: HERE / v for k, v in files.items()}, push=False)  # fmt: skip
        freed = fat_bytes - variant.built.size_bytes
        data["rows"].insert(-1, _row(rec_id, recs[rec_id]["title"],
                                     int(recs[rec_id]["standalone_savings_bytes"]), freed))  # fmt: skip
        save()
        if not keep:  # disk: the variant and its cache entries go, the fat image's layers stay
            buildah.remove_images(store, buildah.image_ids(store) - before)
    return data


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
    lines = ["| recommendation | advise estimated | the built variant freed | estimate / freed |",
             "|---|---:|---:|---:|"]  # fmt: skip
    for r in data["rows"]:
        ratio = r["estimated_bytes"] / r["freed_bytes"] if r["freed_bytes"] else 0.0
        lines.append(f"| {r['recommendation']} | {mb(r['estimated_bytes'])} | {mb(r['freed_bytes'])} | "
                     f"{ratio:.3f} |")  # fmt: skip
    for rec, why in data["not_alone"].items():
        lines.append(f"| {rec} | | | not built alone: {why} |")
    return "\n".join(lines)


def mb(n: int) -> str:
    return f"{n / 1e6:,.1f} MB"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model-dir", type=Path)
    p.add_argument("--json", type=Path, help="also write the numbers as JSON here")
    p.add_argument("--keep", action="store_true", help="keep the one-fix variants in buildah's store")
    p.add_argument("--no-serve", action="store_true", help="skip starting the images")
    a = p.parse_args()
    data = measure(a.model_dir, a.keep, not a.no_serve, a.json)
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
