"""What the served application imports: its entry script (from CMD/ENTRYPOINT), the local
modules it pulls in, and the third-party top-level modules they name.

Only sources captured during the walk are read (small ``.py`` files outside the Python
library directories); nothing is executed. Dynamic imports are invisible, which is why
findings built on this say "not imported by the entrypoint", not "unused".
"""

from __future__ import annotations

import ast
import posixpath
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass

from advisor.advise.facts.distributions import Distribution
from advisor.oci.filetree import FileTree

MAX_FILES = 300
_APP_SPEC = re.compile(r"^([A-Za-z_][\w.]*):[A-Za-z_]\w*(\(\))?$")  # gunicorn/uvicorn "pkg.mod:app"


@dataclass(frozen=True, slots=True)
class AppCode:
    entry: str  # the entry script's path in the image
    files: tuple[str, ...]  # local sources read
    modules: frozenset[str]  # third-party top-level modules imported


def _candidates(argv: Sequence[str], workdir: str) -> list[str]:
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg.endswith(".py"):
            out.append(arg)
        elif arg == "-m" and i + 1 < len(argv):
            mod = argv[i + 1].replace(".", "/")
            out += [f"{mod}.py", f"{mod}/__main__.py"]
        elif (m := _APP_SPEC.match(arg)) is not None:
            out.append(m.group(1).replace(".", "/") + ".py")
    return [posixpath.normpath(c if c.startswith("/") else posixpath.join(workdir or "/", c)).lstrip("/") for c in out]


def find_entry(tree: FileTree, argv: Sequence[str], workdir: str) -> str | None:
    """The first script named by the command line that the walk captured."""
    for path in _candidates(argv, workdir):
        real = tree.resolve(path)
        if tree.read(real) is not None:
            return real
    return None


def _imports(source: bytes) -> tuple[set[str], set[tuple[int, str]]]:
    """(absolute top-level names, relative imports as (level, module))."""
    try:
        module = ast.parse(source)
    except (SyntaxError, ValueError):
        return set(), set()
    absolute: set[str] = set()
    relative: set[tuple[int, str]] = set()
    for node in ast.walk(module):
        if isinstance(node, ast.Import):
            absolute.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                relative.add((node.level, node.module or ""))
            elif node.module:
                absolute.add(node.module.split(".")[0])
    return absolute, relative


def _local(tree: FileTree, base: str, dotted: str) -> str | None:
    stem = posixpath.join(base, *dotted.split(".")) if dotted else base
    for cand in (f"{stem}.py", f"{stem}/__init__.py"):
        if tree.read(cand) is not None:
            return cand
    return None


def scan_app(tree: FileTree, argv: Sequence[str], workdir: str) -> AppCode | None:
    entry = find_entry(tree, argv, workdir)
    if entry is None:
        return None
    root = posixpath.dirname(entry)
    seen: list[str] = []
    queue = [entry]
    external: set[str] = set()
    while queue and len(seen) < MAX_FILES:
        path = queue.pop()
        if path in seen:
            continue
        seen.append(path)
        absolute, relative = _imports(tree.read(path) or b"")
        for name in absolute:
            local = _local(tree, root, name)
            if local is not None:
                queue.append(local)
            elif name not in sys.stdlib_module_names:
                external.add(name)
        here = posixpath.dirname(path)
        for level, mod in relative:
            base = here
            for _ in range(level - 1):
                base = posixpath.dirname(base)
            local = _local(tree, base, mod)
            if local is not None:
                queue.append(local)
    return AppCode(entry, tuple(seen), frozenset(external))


def module_owners(dists: Sequence[Distribution]) -> dict[str, str]:
    """Top-level importable name -> canonical distribution name."""
    owners: dict[str, str] = {}
    for d in dists:
        prefix = d.environment + "/"
        for path in d.files:
            if not path.startswith(prefix):
                continue
            top = path[len(prefix):].split("/", 1)[0]
            if top.endswith((".dist-info", ".egg-info", ".pth", ".data")) or top in ("__pycache__", ".."):
                continue
            name = top.split(".", 1)[0] if top.endswith((".py", ".so", ".pyd")) else top
            owners.setdefault(name, d.key)
    return owners


def command_distributions(argv: Sequence[str], dists: Sequence[Distribution]) -> set[str]:
    """Distributions whose console script or ``-m`` module the command runs (gunicorn, uvicorn)."""
    words = {posixpath.basename(a) for a in argv}
    modules = {argv[i + 1].split(".")[0] for i, a in enumerate(argv[:-1]) if a == "-m"}
    owners = module_owners(dists)
    found = {owners[m] for m in modules if m in owners}
    for d in dists:
        if any("/bin/" in p and posixpath.basename(p) in words for p in d.files):
            found.add(d.key)
    return found


def app_distributions(app: AppCode, dists: Sequence[Distribution], argv: Sequence[str] = ()) -> set[str]:
    owners = module_owners(dists)
    return {owners[m] for m in app.modules if m in owners} | command_distributions(argv, dists)
