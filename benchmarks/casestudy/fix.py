"""``advisor fix`` on the case study: the fat image slimmed in place, proved, measured.

    python benchmarks/casestudy/fix.py --torch keep                  # every other fix, proof on
    python benchmarks/casestudy/fix.py --torch cpu --wheels /opt/wheels --image oci:DIR:TAG
    python benchmarks/casestudy/fix.py --image oci:DIR:TAG --no-verify

Without ``--image`` the fat image comes from ``build.py`` (cached under $ADVISOR_CACHE, ~40
min and ~25 GB of disk the first time). The fixed image goes to a temporary layout beside
the cache and is removed after (``--keep`` keeps it). Writes ``results/fix-<torch>.json`` and
``.md``: the sizes, each recommendation's estimate vs the bytes removed (the issue's target:
within 10 %), the proof's checks, and the 1.5 GB target for the CPU torch swap.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from advisor.errors import AdvisorError  # noqa: E402
from advisor.fix import FixConfig, FixResult, run  # noqa: E402
from advisor.report.fix import render, to_dict  # noqa: E402

CPU_TARGET = 1_500_000_000  # the issue: <= 1.5 GB unpacked with the CPU wheel


def fat_image() -> str:
    sys.path.insert(0, str(HERE))
    import build

    return str(build.build("fat", None, quiet=True).reference)


def table(result: FixResult) -> list[str]:
    rows = ["| recommendation | estimated | removed | removed / estimated | proof / reason |",
            "|---|---:|---:|---:|---|"]
    for f in result.fixes:
        if f.applied:
            ratio = f"{f.removed_bytes / f.estimated_bytes:.3f}" if f.estimated_bytes else "-"
            rows.append(f"| {f.id} | {f.estimated_bytes:,} | {f.removed_bytes:,} | {ratio} | {f.proof} |")
        else:
            rows.append(f"| {f.id} | {f.estimated_bytes:,} | - | - | {f.reason} |")
    return rows


def summary(result: FixResult, seconds: float, torch: str) -> dict[str, Any]:
    doc = to_dict(result)
    applied = [f for f in result.fixes if f.applied and f.estimated_bytes]
    doc["seconds"] = round(seconds, 1)
    doc["within_10_percent"] = {f.id: abs(f.removed_bytes - f.estimated_bytes) <= 0.1 * f.estimated_bytes
                                for f in applied}
    if torch == "cpu":
        doc["cpu_target_met"] = result.size_after <= CPU_TARGET
    return doc


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--image", help="the fat image (default: build.py's cached one)")
    p.add_argument("--torch", choices=("keep", "cpu"), default="keep")
    p.add_argument("--wheels", type=Path, help="directory with the CPU torch wheel (for --torch cpu)")
    p.add_argument("--index-url", help="index serving the CPU torch wheel (for --torch cpu)")
    p.add_argument("--no-verify", action="store_true", help="skip the proof")
    p.add_argument("--keep", action="store_true", help="keep the fixed image (its path is printed)")
    p.add_argument("--results", type=Path, default=HERE / "results")
    a = p.parse_args(argv)
    started = time.monotonic()
    work = Path(tempfile.mkdtemp(prefix="casestudy-fix-"))
    dest = f"oci:{work / 'fixed'}:{a.torch}"
    try:
        image = a.image or fat_image()
        result = run(FixConfig(image, dest, torch=a.torch, wheels=a.wheels, index_url=a.index_url,
                               verify=not a.no_verify,
                               progress=lambda d, t, w: print(w, file=sys.stderr) if not t else None))
    except AdvisorError as e:
        print(f"error: {e}\nhint: {e.hint}", file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)
        return e.exit_code
    doc = summary(result, time.monotonic() - started, a.torch)
    a.results.mkdir(parents=True, exist_ok=True)
    (a.results / f"fix-{a.torch}.json").write_text(json.dumps(doc, indent=2) + "\n")
    md = [f"# advisor fix on the case study (--torch {a.torch})", "",
          f"`python benchmarks/casestudy/fix.py --torch {a.torch}`, {doc['seconds']} s", "",
          f"{result.size_before:,} -> {result.size_after:,} bytes unpacked; "
          f"{result.compressed_before:,} -> {result.compressed_after:,} compressed", "",
          *table(result), "", "```", render(result, "text").rstrip(), "```", ""]
    (a.results / f"fix-{a.torch}.md").write_text("\n".join(md))
    print(render(result, "text"))
    if a.keep:
        print(f"kept: {dest}")
    else:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
