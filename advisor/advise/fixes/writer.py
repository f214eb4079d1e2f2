"""Plan the fix artifacts from an ``Advice`` and write them to a directory.

A file already in the directory is replaced only when advisor wrote it (its first line says
so) or with ``force``: pointed at a project folder, ``--write-fixes`` must never overwrite
the user's own Dockerfile or requirements. Every target is checked before anything is
written, and each file is written atomically (``advisor.fsutil``).
"""

from __future__ import annotations

import posixpath
import re
from dataclasses import dataclass
from pathlib import Path

from advisor.advise.advice import Advice
from advisor.advise.fixes.dockerfile import render_dockerfile
from advisor.advise.fixes.requirements import render_requirements, split_requirements
from advisor.errors import BadInputError, UsageError
from advisor.fsutil import write_text_atomic

FILE_NAMES = ("Dockerfile", ".dockerignore", "requirements.txt", "requirements-dev.txt")
MARK = re.compile(rb"^# [^\n]*\b(?:re)?written by advisor\b", re.IGNORECASE)

DOCKERIGNORE_BASE = (
    ".git", ".gitignore", "**/__pycache__", "**/*.pyc", "**/.ipynb_checkpoints", "**/*.ipynb",
    ".venv", "venv", ".pytest_cache", ".mypy_cache", ".ruff_cache", ".tox", "tests", "docs",
    "*.egg-info", "build", "dist", ".env", ".DS_Store", "Dockerfile*", ".dockerignore",
)
EVIDENCE_RULES = ("vcs-git-dir", "app-notebooks", "dockerfile-copy-context")


@dataclass(frozen=True, slots=True)
class FixPlan:
    files: dict[str, str]  # file name -> content


def _ignore_patterns(advice: Advice) -> list[str]:
    workdir = (advice.facts.working_dir or "/app").strip("/")
    extra: set[str] = set()
    for f in advice.findings:
        if f.rule not in EVIDENCE_RULES:
            continue
        for p in f.paths:
            if workdir and p.startswith(workdir + "/"):
                rel = p[len(workdir) + 1:]
                top = rel.split("/", 1)[0]
                extra.add(top if "/" in rel else rel)
            elif not workdir:
                extra.add(p.split("/", 1)[0])
    base = set(DOCKERIGNORE_BASE)
    return [*DOCKERIGNORE_BASE, *sorted(e for e in extra if e not in base and posixpath.normpath(e) != ".")]


def plan_fixes(advice: Advice) -> FixPlan:
    """What to write: nothing when the image gives nothing to rewrite (no Python app, no
    OS packages installed without cleanup)."""
    reqs = split_requirements(advice)
    dockerfile = render_dockerfile(advice, reqs)
    if dockerfile is None:
        return FixPlan({})
    files = {"Dockerfile": dockerfile,
             ".dockerignore": "# Written by advisor: keep the build context to what the app needs.\n"
                              + "\n".join(_ignore_patterns(advice)) + "\n"}  # fmt: skip
    if "requirements.txt" in dockerfile:
        files["requirements.txt"], files["requirements-dev.txt"] = render_requirements(reqs)
    return FixPlan(files)


def written_by_advisor(path: Path) -> bool:
    """True when ``path`` is a regular file whose first line says advisor wrote it."""
    try:
        with path.open("rb") as f:
            return path.is_file() and MARK.match(f.read(200)) is not None
    except OSError:
        return False


def check_targets(directory: Path, names: tuple[str, ...] = FILE_NAMES, force: bool = False) -> None:
    """Refuse (exit 2) when one of ``names`` in ``directory`` exists and advisor did not write it."""
    if force:
        return
    for name in names:
        path = directory / name
        if (path.exists() or path.is_symlink()) and not written_by_advisor(path):
            raise UsageError(f"{path} exists and advisor did not write it; not replacing it",
                             hint="pass --force to replace it, or give --write-fixes an empty directory")


def write_fixes(advice: Advice, directory: Path, force: bool = False) -> list[Path]:
    """Write the artifacts into ``directory`` (created if missing); returns the paths written."""
    plan = plan_fixes(advice)
    check_targets(directory, tuple(plan.files), force)
    try:
        written = []
        for name, content in sorted(plan.files.items()):
            path = directory / name
            write_text_atomic(path, content)
            written.append(path)
    except OSError as e:
        raise BadInputError(f"cannot write fixes to {directory}: {e.strerror}", hint="choose a writable directory") from e
    return written
