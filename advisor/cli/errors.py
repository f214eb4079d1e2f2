"""Turn advisor's exceptions into `error:`/`hint:` lines and the exit codes of docs/DESIGN.md, "Exit codes"."""

from __future__ import annotations

import sys
import traceback
from collections.abc import Callable
from typing import NoReturn, TypeVar

from advisor.errors import AdvisorError, MissingDependencyError

T = TypeVar("T")

#: Exit code for a bug in advisor itself (EX_SOFTWARE); never used for bad input.
EXIT_INTERNAL = 70

_EXTRA_OF_MODULE = {
    "torch": "export",
    "transformers": "export",
    "onnx": "export",
    "onnxscript": "export",
    "onnxruntime": "export",
    "safetensors": "export",
    "tokenizers": "export",
    "numpy": "export",
}


def _fail(message: str, hint: str, code: int, debug: bool) -> NoReturn:
    if debug:
        traceback.print_exc(file=sys.stderr)
    print(f"error: {message}", file=sys.stderr)
    if hint:
        print(f"hint: {hint}", file=sys.stderr)
    raise SystemExit(code)


def run_guarded(fn: Callable[[], T], *, debug: bool) -> T:
    """Run a command body; map every failure to one clear line and a documented exit code."""
    try:
        return fn()
    except AdvisorError as e:
        _fail(e.message, e.hint, e.exit_code, debug)
    except ModuleNotFoundError as e:
        root = (e.name or "").split(".")[0]
        if root in _EXTRA_OF_MODULE:
            err = MissingDependencyError(root, _EXTRA_OF_MODULE[root])
            _fail(err.message, err.hint, err.exit_code, debug)
        _fail(f"internal error: {e}", "re-run with --debug and report it", EXIT_INTERNAL, debug)
    except KeyboardInterrupt:
        _fail("interrupted", "nothing was left half-written at the destination", 130, debug)
    except BrokenPipeError:
        raise SystemExit(0) from None
    except Exception as e:
        _fail(
            f"internal error: {type(e).__name__}: {e}",
            "re-run with --debug and report it",
            EXIT_INTERNAL,
            debug,
        )
