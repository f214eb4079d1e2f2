"""`advisor`: advise, export, bench. The console script's entry point: registers the
commands, runs the one asked for, maps what escapes to an exit code."""

from __future__ import annotations

import sys
from collections.abc import Sequence

import typer
from typer._click.exceptions import NoArgsIsHelpError
from typer.exceptions import TyperException

from advisor.cli import advise, bench, export, fix
from advisor.cli.app import app, debug_enabled, set_debug
from advisor.cli.errors import run_guarded

COMMANDS = (advise, export, bench, fix)  # each module registers its command on `app` when imported


def split_debug(argv: Sequence[str]) -> tuple[list[str], bool]:
    """``--debug`` is accepted anywhere before a ``--`` (``advisor advise IMAGE --debug``)."""
    end = argv.index("--") if "--" in argv else len(argv)
    rest = [a for a in argv[:end] if a != "--debug"] + list(argv[end:])
    return rest, len(rest) != len(argv)


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point."""
    args, debug = split_debug(sys.argv[1:] if argv is None else argv)
    if debug:
        set_debug(True)
    try:
        app(args=args, prog_name="advisor", standalone_mode=False)
    except typer.Exit as e:
        raise SystemExit(e.exit_code) from None
    except SystemExit:
        raise
    except typer.Abort:
        print("error: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except NoArgsIsHelpError as e:  # bare `advisor`: the help, once, and the usage exit code
        print(e.ctx.get_help())
        raise SystemExit(2) from None
    except TyperException as e:  # usage errors: missing or bad options and arguments
        message = e.format_message() if hasattr(e, "format_message") else str(e)
        ctx = getattr(e, "ctx", None)
        command = ctx.command_path if ctx is not None else "advisor"
        print(f"error: {message.replace('Value error, ', '')}", file=sys.stderr)
        print(f"hint: run `{command} --help` to see the options", file=sys.stderr)
        raise SystemExit(2) from None
    except Exception as e:  # anything the commands did not map themselves
        err = e
        run_guarded(lambda: _reraise(err), debug=debug_enabled())


def _reraise(e: BaseException) -> None:
    raise e

