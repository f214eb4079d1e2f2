"""Plan the fix artifacts from an ``Advice`` and write them to a directory."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass
from pathlib import Path

from advisor.advise.advice import Advice
from advisor.advise.fixes.dockerfile import render_dockerfile
from advisor.advise.fixes.requirements import render_requirements, split_requirements
from advisor.errors import BadInputError

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
    reqs = split_requirements(advice)
    runtime, dev = render_requirements(reqs)
    ignore = "# Written by advisor: keep the build context to what the app needs.\n" + "\n".join(_ignore_patterns(advice)) + "\n"
    return FixPlan({
        "Dockerfile": render_dockerfile(advice, reqs),
        ".dockerignore": ignore,
        "requirements.txt": runtime,
        "requirements-dev.txt": dev,
    })


def write_fixes(advice: Advice, directory: Path) -> list[Path]:
    """Write the artifacts into ``directory`` (created if missing); returns the paths written."""
    plan = plan_fixes(advice)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        written = []
        for name, content in sorted(plan.files.items()):
            path = directory / name
            path.write_text(content, encoding="utf-8")
            written.append(path)
    except OSError as e:
        raise BadInputError(f"cannot write fixes to {directory}: {e.strerror}", hint="choose a writable directory") from e
    return written
