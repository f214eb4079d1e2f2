"""`advisor`: advise, export, bench. The console script's entry point: registers the
commands, runs the one asked for, maps what escapes to an exit code."""

from __future__ import annotations

import sys

import typer
from typer.exceptions import TyperException

from advisor.cli import advise, bench, export, fix
from advisor.cli.app import app, debug_enabled
from advisor.cli.errors import run_guarded

COMMANDS = (advise, export, bench, fix)  # each module registers its command on `app` when imported


def main() -> None:
    """Console-script entry point."""
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
        run_guarded(lambda: _reraise(err), debug=debug_enabled())


def _reraise(e: BaseException) -> None:
    raise e

