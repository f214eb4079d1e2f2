"""`advisor bench`: parse the options, measure original vs slim, write the reports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from advisor.cli.app import InsecureOpt, app, guarded
from advisor.cli.progress import progress_bar
from advisor.errors import UsageError


def _ints(text: str, option: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.split(",") if v.strip())
    except ValueError as e:
        raise UsageError(f"bad {option} '{text}'", hint="give whole numbers separated by commas") from e
    if not values or min(values) < 1:
        raise UsageError(f"bad {option} '{text}'", hint="give whole numbers of at least 1")
    return values


@app.command()
def bench(
    original: Annotated[str, typer.Option("--original", help="The original (fat) image.")],
    slim: Annotated[str, typer.Option("--slim", help="The slim serving image.")],
    data: Annotated[Path | None, typer.Option("--data", help="Labelled CSV (text,label); default: "
                                              "the sample model's held-out set.")] = None,
    report: Annotated[Path, typer.Option("--report", help="Folder for report.json, report.md, report.html.")] = Path("bench-report"),
    advice: Annotated[Path | None, typer.Option("--advice", help="`advisor advise --format json` output "
                                                "of the original, shown in the report.")] = None,
    original_model_path: Annotated[str | None, typer.Option("--original-model-path", help="Model folder "
                                                            "inside the original image.")] = None,
    samples: Annotated[int, typer.Option("--samples", help="Labelled rows scored on each side.")] = 1000,
    cases: Annotated[str, typer.Option("--cases", help="Latency cases, batch and sequence length.")] = "b1_s32,b1_s128,b8_s128,b32_s128",
    threads: Annotated[int, typer.Option("--threads", help="Inference threads on each side.")] = 2,
    rounds: Annotated[int, typer.Option("--rounds", help="Latency rounds alternating the two sides.")] = 5,
    iterations: Annotated[int, typer.Option("--iterations", help="Latency samples per case and side.")] = 40,
    concurrency: Annotated[str, typer.Option("--concurrency", help="Concurrent clients for the slim "
                                             "server's load test, comma-separated.")] = "1,4",
    insecure: InsecureOpt = False,
    unsandboxed_host_run: Annotated[bool, typer.Option(
        "--unsandboxed-host-run", help="Run the images' code on this host as root, in its network, "
        "with no sandbox (only for images you trust; the default runs them under runc).")] = False,
) -> None:
    """Measure original vs slim: accuracy, latency, throughput, cold start, memory, size."""

    def body() -> None:
        from advisor.bench.cases import BenchCase
        from advisor.bench.model import BenchConfig
        from advisor.bench.run import run_bench
        from advisor.report.bench import write_reports

        config = BenchConfig(original=original, slim=slim, data=data, advice=advice,
                             original_model_path=original_model_path, max_samples=samples,
                             cases=tuple(BenchCase.parse(c) for c in cases.split(",") if c.strip()),
                             threads=threads, rounds=rounds, iterations=iterations,
                             concurrency=_ints(concurrency, "--concurrency"), insecure=insecure,
                             unsandboxed_host_run=unsandboxed_host_run)
        with progress_bar(True, unit="steps") as progress:
            result = run_bench(config, progress=progress)
        paths = write_reports(result, report)
        for kind, path in sorted(paths.items()):
            print(f"wrote {kind}: {path}")

    guarded(body)
