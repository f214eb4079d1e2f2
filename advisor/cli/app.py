"""The typer app every command registers on, its root options, and what commands share:
the output formats, ``--platform``/``--insecure``, writing a report, the error mapper."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.core import TyperArgument, TyperOption

from advisor import __version__
from advisor.cli.errors import run_guarded
from advisor.errors import UsageError
from advisor.fsutil import write_text_atomic
from advisor.oci.model import Platform

app = typer.Typer(
    name="advisor",
    help="Find the bloat in ML container images, export the model to ONNX, "
    "build a slim onnxruntime image, and benchmark both. No Docker daemon needed.",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},  # subcommands inherit it
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state = {"debug": False}


# typer 0.29 writes a required argument as {IMAGE} in the usage line and adds its type
# (IMAGE <str>) in the help; advisor's help names arguments as docker and dive do (IMAGE).
# tests/cli/test_options.py fails if a typer upgrade brings the placeholders back.
def _argument_name(self: TyperArgument) -> str:
    return self.metavar or (self.name or "value").upper()


def _usage_name(self: TyperArgument) -> str:
    name = _argument_name(self)
    return (name if self.required else f"[{name}]") + ("..." if self.nargs != 1 else "")


def _no_type(self: TyperArgument, ctx: object) -> str | None:
    return None


_option_display = TyperOption.display_type_rich


def _option_metavar(self: TyperOption, ctx: typer.Context) -> str | None:
    """An option's value named by what it is (``--output-dir OUTPUT_DIR``), not ``<path>``;
    choices keep their list (``<text|json|markdown|html>``)."""
    if self.metavar is not None or self.is_flag or self.type_descriptor.is_choice:
        return _option_display(self, ctx)
    return (self.name or "value").upper() + ("..." if self.multiple else "")


TyperArgument._rich_display_name = _argument_name  # type: ignore[method-assign]
TyperArgument._usage_display_name = _usage_name  # type: ignore[method-assign]
TyperArgument.display_type_rich = _no_type  # type: ignore[method-assign,assignment]
TyperOption.display_type_rich = _option_metavar  # type: ignore[method-assign,assignment]


class OutputFormat(enum.StrEnum):
    text = "text"
    json = "json"
    markdown = "markdown"
    html = "html"


def _version(value: bool) -> None:
    if value:
        print(f"advisor {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks on errors.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version.")
    ] = False,
) -> None:
    _state["debug"] = _state["debug"] or debug  # main() takes a --debug after the command out


def set_debug(value: bool) -> None:
    _state["debug"] = value


def debug_enabled() -> bool:
    """Whether ``--debug`` was given (tracebacks on errors)."""
    return _state["debug"]


def parse_platform(value: str | None) -> Platform | None:
    """``--platform`` as Docker and skopeo spell it, or None for this machine's."""
    from advisor.oci.refs import parse_platform as parse

    return parse(value) if value else None


PlatformOpt = Annotated[
    str | None, typer.Option("--platform", metavar="OS/ARCH[/VARIANT]",
                             help="Platform of a multi-platform image (default: this machine's).")
]
InsecureOpt = Annotated[
    bool, typer.Option("--insecure", help="Allow plain HTTP to a registry that is not on localhost.")
]


def write_output(text: str, output: Path | None) -> None:
    """Write a report to a file atomically (a device or pipe in place), or to stdout (``-``)."""
    if output is None or str(output) == "-":
        text = text if text.endswith("\n") else text + "\n"
        # non-UTF-8 file names arrive as surrogate escapes: shown escaped, never a crash
        buffer = getattr(sys.stdout, "buffer", None)
        if buffer is None:  # a text-only stream (a test's StringIO)
            sys.stdout.write(text.encode("utf-8", "backslashreplace").decode("utf-8"))
            return
        sys.stdout.flush()
        buffer.write(text.encode(sys.stdout.encoding or "utf-8", "backslashreplace"))
        buffer.flush()
        return
    write_text_atomic(output, text)


def guarded(fn: object) -> None:
    """Run a command body under the error mapper (debug flag from the root callback)."""
    run_guarded(fn, debug=debug_enabled())  # type: ignore[arg-type]


__all__ = [
    "InsecureOpt",
    "OutputFormat",
    "PlatformOpt",
    "UsageError",
    "app",
    "debug_enabled",
    "guarded",
    "parse_platform",
    "set_debug",
    "write_output",
]
