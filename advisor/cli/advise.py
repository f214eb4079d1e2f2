"""`advisor advise IMAGE`: parse the options, run the advise pipeline, render, gate."""

from __future__ import annotations

import sys
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
from advisor.errors import UsageError

#: ``-o FILE`` without ``--format``: the format its extension names.
FORMAT_OF_SUFFIX = {".txt": OutputFormat.text, ".text": OutputFormat.text, ".json": OutputFormat.json,
                    ".md": OutputFormat.markdown, ".markdown": OutputFormat.markdown,
                    ".html": OutputFormat.html, ".htm": OutputFormat.html}
EXTENSION_OF_FORMAT = {OutputFormat.text: "txt", OutputFormat.json: "json", OutputFormat.markdown: "md",
                       OutputFormat.html: "html"}


def report_format(fmt: OutputFormat | None, output: Path | None) -> OutputFormat:
    """``--format`` when given, else the one ``-o``'s extension names, else text."""
    if fmt is not None:
        return fmt
    if output is not None and str(output) != "-":
        return FORMAT_OF_SUFFIX.get(output.suffix.lower(), OutputFormat.text)
    return OutputFormat.text


def report_path(output: Path | None, fmt: OutputFormat) -> Path | None:
    """Where the report goes: stdout (None), ``-o FILE``, or ``FOLDER/advise.EXT``."""
    if output is None or str(output) == "-":
        return None
    if output.is_dir():
        return output / f"advise.{EXTENSION_OF_FORMAT[fmt]}"
    if not output.parent.is_dir():
        raise UsageError(f"cannot write {output}: no folder {output.parent}",
                         hint="create the folder first, or give -o a path in an existing one")
    return output


@app.command()
def advise(
    image: Annotated[str, typer.Argument(metavar="IMAGE", help="Image reference: oci:DIR[:TAG], oci-archive:FILE, "
                                         "docker-archive:FILE, docker://HOST/REPO:TAG, docker-daemon:NAME:TAG, NAME:TAG.")],
    fmt: Annotated[OutputFormat | None, typer.Option("--format", "-f", help="Report format (default: "
                                                     "from the -o extension, else text).")] = None,
    output: Annotated[Path | None, typer.Option("--output", "-o", metavar="FILE", help="Write the report "
                                                "to FILE (- for stdout; an existing folder: FOLDER/advise.EXT).")] = None,
    output_dir: Annotated[Path | None, typer.Option("--output-dir", help="Also write every format "
                                                    "(advise.txt, .json, .md, .html) into DIR, from one pass.")] = None,
    fail_on: Annotated[str | None, typer.Option("--fail-on", help="Exit 1 if a finding is at or above "
                                                "this severity (info, low, medium, high, critical).")] = None,
    rules: Annotated[Path | None, typer.Option("--rules", help="Gate rules file (TOML), like dive's .dive-ci.")] = None,
    write_fixes: Annotated[Path | None, typer.Option("--write-fixes", help="Write a rewritten Dockerfile, "
                                                     ".dockerignore and split requirements into DIR.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Let --write-fixes replace files advisor "
                                        "did not write.")] = False,
    disable_rule: Annotated[list[str] | None, typer.Option("--disable-rule", help="Skip a rule by id "
                                                           "(repeatable).")] = None,
    platform: PlatformOpt = None,
    insecure: InsecureOpt = False,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="Read every layer, even those the "
                                           "layer cache ($ADVISOR_CACHE/layers) has seen.")] = False,
) -> None:
    """Show where every byte of IMAGE goes and what to fix, with the bytes each fix saves."""

    def body() -> None:
        from advisor import advise as pipeline
        from advisor.advise.fixes import write_fixes as write_fix_files
        from advisor.advise.rules.gate import load_gate, raise_if_failed
        from advisor.report.advise import render

        kind = report_format(fmt, output)
        destination = report_path(output, kind)  # checked before the image is read, as every option
        config = pipeline.AdviseConfig(
            image=image, platform=parse_platform(platform), insecure=insecure, use_cache=not no_cache,
            disabled_rules=frozenset(disable_rule or ()), gate=load_gate(fail_on, rules),
        )
        pipeline.check(config)
        if write_fixes is not None:  # refuse before reading the image, not after
            from advisor.advise.fixes.writer import check_targets

            check_targets(write_fixes, force=force)
        with progress_bar(kind is not OutputFormat.json) as progress:
            advice = pipeline.run(replace(config, progress=progress, steps=progress.steps))
        write_output(render(advice, kind.value), destination)
        if output_dir is not None:
            for ext, name in (("txt", "text"), ("json", "json"), ("md", "markdown"), ("html", "html")):
                write_output(render(advice, name), output_dir / f"advise.{ext}")
        if write_fixes is not None:
            written = write_fix_files(advice, write_fixes, force=force)
            for path in written:
                print(f"wrote {path}", file=sys.stderr)
            if not written:
                print(f"wrote nothing to {write_fixes}: the image has no Python application and "
                      "no OS packages to reinstall, nothing to rewrite", file=sys.stderr)
        if advice.gate is not None:
            if destination is not None or kind is not OutputFormat.text:  # a text report on stdout has it
                from advisor.report.advise.text import gate_lines

                print("\n".join(gate_lines(advice.gate)), file=sys.stderr)
            raise_if_failed(advice.gate)

    guarded(body)
