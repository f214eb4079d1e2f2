"""`advisor`: advise, export, bench. Parses options, calls the pipelines, prints results."""

from __future__ import annotations

import enum
import sys
from pathlib import Path
from typing import Annotated

import typer
from typer.exceptions import TyperException

from advisor import __version__
from advisor.cli.errors import run_guarded
from advisor.errors import UsageError
from advisor.fsutil import write_text_atomic

app = typer.Typer(
    name="advisor",
    help="Find the bloat in ML container images, export the model to ONNX, "
    "build a slim onnxruntime image, and benchmark both. No Docker daemon needed.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)

_state = {"debug": False}


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
    _state["debug"] = debug


def write_output(text: str, output: Path | None) -> None:
    """Write a report to a file atomically (a device or pipe in place), or to stdout (``-``)."""
    if output is None or str(output) == "-":
        sys.stdout.write(text if text.endswith("\n") else text + "\n")
        return
    write_text_atomic(output, text)


def main() -> None:
    """Console-script entry point."""
    from advisor.cli import commands, fix  # noqa: F401  (register the commands on `app`)

    try:
        app(standalone_mode=False)
    except typer.Exit as e:
        raise SystemExit(e.exit_code) from None
    except SystemExit:
        raise
    except typer.Abort:
        print("error: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except TyperException as e:  # usage errors: missing or bad options and arguments
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        print(f"error: {message}", file=sys.stderr)
        print("hint: run with --help to see the options", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as e:  # anything the commands did not map themselves
        err = e
        run_guarded(lambda: _reraise(err), debug=_state["debug"])


def _reraise(e: BaseException) -> None:
    raise e


def guarded(fn: object) -> None:
    """Run a command body under the error mapper (debug flag from the root callback)."""
    run_guarded(fn, debug=_state["debug"])  # type: ignore[arg-type]


__all__ = ["OutputFormat", "UsageError", "app", "guarded", "main", "write_output"]
