"""`advisor fix`: parse the options, run the fix pipeline, render its report."""

from __future__ import annotations

import enum
from dataclasses import replace
from pathlib import Path
from typing import Annotated

import typer

from advisor.cli.app import (
    InsecureOpt,
    OutputFormat,
    PlatformOpt,
    app,
    guarded,
    parse_platform,
    write_output,
)
from advisor.cli.progress import progress_bar


class TorchChoice(enum.StrEnum):
    cpu = "cpu"
    keep = "keep"


@app.command("fix")
def fix_cmd(
    image: Annotated[str, typer.Argument(help="The image to fix (any ImageRef advise reads).")],
    output: Annotated[str, typer.Option("--output", help="Where the fixed image goes: oci:DIR[:TAG], "
                                        "oci-archive:FILE, docker-archive:FILE[:REF], docker://HOST/REPO:TAG.")],
    only: Annotated[list[str] | None, typer.Option("--only", help="Apply only these recommendation ids "
                                                   "(comma-separated, repeatable).")] = None,
    skip: Annotated[list[str] | None, typer.Option("--skip", help="Leave these recommendation ids out.")] = None,
    torch: Annotated[TorchChoice, typer.Option("--torch", help="cpu: swap a CUDA torch for the CPU build "
                                               "of the same version (needs --wheels or --index-url); keep: leave torch.")] = TorchChoice.cpu,
    wheels: Annotated[Path | None, typer.Option("--wheels", help="A directory holding the CPU torch wheel.")] = None,
    index_url: Annotated[str | None, typer.Option("--index-url", help="A package index serving the CPU torch wheel.")] = None,
    no_verify: Annotated[bool, typer.Option("--no-verify", help="Skip the proof (the fixed image is not run).")] = False,
    data: Annotated[Path | None, typer.Option("--data", help="Labelled CSV (text,label) the model's predictions "
                                              "are compared on; default: the sample model's held-out set.")] = None,
    limit: Annotated[int, typer.Option("--limit", help="Rows of --data scored on both images.")] = 100,
    timeout: Annotated[float, typer.Option("--timeout", help="Seconds the entrypoint may take to answer.")] = 120.0,
    fmt: Annotated[OutputFormat, typer.Option("--format", "-f", help="Report format (text, json, html).")] = OutputFormat.text,
    report: Annotated[Path | None, typer.Option("--report", help="Write the report to FILE (default: stdout).")] = None,
    platform: PlatformOpt = None,
    insecure: InsecureOpt = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Read every layer, ignoring the layer cache.")] = False,
) -> None:
    """Apply advise's recommendations to IMAGE itself, prove it still works, write --output."""

    def body() -> None:
        from advisor.errors import UsageError
        from advisor.fix import FixConfig, run
        from advisor.fix.plan import parse_ids
        from advisor.report.fix import render

        if fmt is OutputFormat.markdown:
            raise UsageError("fix reports are text, json or html", hint="use --format text, json or html")
        config = FixConfig(
            image=image, output=output, only=parse_ids(only, "--only"), skip=parse_ids(skip, "--skip"),
            torch=torch.value, wheels=wheels, index_url=index_url,
            verify=not no_verify, data=data, limit=limit, platform=parse_platform(platform),
            insecure=insecure, use_cache=not no_cache, timeout_s=timeout,
        )
        with progress_bar(fmt is not OutputFormat.json) as progress:
            result = run(replace(config, progress=progress))
        write_output(render(result, fmt.value), report)

    guarded(body)
