"""One exception root for everything advisor raises on purpose.

Each class carries its exit code (docs/DESIGN.md, "Exit codes"), a one-line message and a hint.
Library code raises these; only ``advisor.cli`` turns them into ``error:``/``hint:`` lines.
Third-party errors are wrapped with ``raise ... from e`` so ``--debug`` still shows the cause.
"""

from __future__ import annotations


class AdvisorError(Exception):
    """Root of advisor's errors: a message for the user, a hint, and an exit code."""

    exit_code: int = 1
    default_hint: str = ""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint if hint is not None else self.default_hint

    def __str__(self) -> str:
        return self.message


class GateFailed(AdvisorError):
    """The ``--fail-on`` gate tripped (exit 1)."""

    exit_code = 1


class UsageError(AdvisorError):
    """The command line itself is wrong (exit 2)."""

    exit_code = 2
    default_hint = "run the command with --help to see its options"


class BadInputError(AdvisorError):
    """An image, archive, model or data file that is missing, corrupt or unsupported (exit 3)."""

    exit_code = 3


class DigestMismatchError(BadInputError):
    """A blob's bytes do not hash to the digest that names them."""

    def __init__(self, what: str, expected: str, actual: str) -> None:
        super().__init__(
            f"digest mismatch for {what}: expected {expected}, got {actual}",
            hint="the image is corrupt or was tampered with; fetch or rebuild it",
        )
        self.expected = expected
        self.actual = actual


class RegistryError(AdvisorError):
    """A registry, auth or network failure (exit 4)."""

    exit_code = 4

    def __init__(self, message: str, hint: str | None = None, status: int | None = None) -> None:
        super().__init__(message, hint)
        self.status = status


class ExportError(AdvisorError):
    """The model could not be exported or failed validation (exit 5)."""

    exit_code = 5


class BuildError(AdvisorError):
    """The serving image (or any image advisor writes) could not be built (exit 6)."""

    exit_code = 6


class SandboxError(AdvisorError):
    """An image's code could not be unpacked or run in its sandbox (exit 6)."""

    exit_code = 6


class BenchError(AdvisorError):
    """A benchmark could not run or measure one of its sides (exit 6)."""

    exit_code = 6


class MissingDependencyError(AdvisorError):
    """An optional dependency is not installed (exit 7); the hint names the extra."""

    exit_code = 7

    def __init__(self, module: str, extra: str) -> None:
        super().__init__(
            f"this command needs the Python package '{module}', which is not installed",
            hint=f"pip install 'advisor[{extra}]'",
        )
        self.module = module
        self.extra = extra


class MissingToolError(MissingDependencyError):
    """A system tool (runc, skopeo, umoci, ...) is not installed (exit 7); the hint names its
    Debian package."""

    def __init__(self, tool: str, package: str, why: str = "") -> None:
        AdvisorError.__init__(
            self,
            f"this command needs {tool}{' ' + why if why else ''}, which is not installed",
            hint=f"apt-get install {package}",
        )
        self.module = tool
        self.extra = package
