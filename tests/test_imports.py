"""The package's shape, checked from its source: imports point one way (cli -> report ->
pipelines -> shared pieces -> image I/O), no import cycle among modules or packages (imports
inside functions and ``TYPE_CHECKING`` blocks included), the server imports only itself, and
no module is over 500 lines."""

from __future__ import annotations

import ast
from collections.abc import Iterator, Mapping
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "advisor"

#: Every top-level part of advisor and its layer; a part may import its own layer or lower.
LAYER = {
    "cli": 5,
    "report": 4,
    "advise": 3, "export": 3, "slim": 3, "bench": 3, "fix": 3,
    "sandbox": 2, "serve": 2,
    "oci": 1,
    "errors": 0, "fsutil": 0, "units": 0, "": 0,  # "": advisor/__init__.py (the version)
}  # fmt: skip
MAX_LINES = 500


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    out = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _resolve(name: str, known: Mapping[str, Path]) -> str:
    while name and name not in known:
        name = name.rpartition(".")[0]
    return name


def imports(module: str, path: Path, known: Mapping[str, Path]) -> Iterator[str]:
    """Every advisor module ``module`` imports, wherever the statement is (module level,
    inside a function, under ``if TYPE_CHECKING``)."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            names = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]
        else:
            continue
        for name in names:
            if name == "advisor" or name.startswith("advisor."):
                target = _resolve(name, known)
                if target and target != module:
                    yield target


def graph() -> dict[str, set[str]]:
    known = modules()
    return {m: set(imports(m, p, known)) for m, p in known.items()}


def part(module: str) -> str:
    return module.split(".")[1] if "." in module else ""


def find_cycle(edges: Mapping[str, set[str]]) -> list[str]:
    """One cycle as a path (first node repeated at the end), or [] when there is none."""
    state: dict[str, int] = {}  # 1: on the stack, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt):], nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        stack.pop()
        state[node] = 2
        return []

    for start in sorted(edges):
        if start not in state and (found := visit(start)):
            return found
    return []


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) == []


def test_the_reader_sees_function_level_and_relative_imports(tmp_path: Path) -> None:
    pkg = tmp_path / "advisor"
    (pkg / "x").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "x" / "__init__.py").write_text("")
    (pkg / "x" / "a.py").write_text("def f():\n    from advisor.x import b\n")
    (pkg / "x" / "b.py").write_text("from . import a\n")
    known = modules(pkg)
    found = {m: set(imports(m, p, known)) for m, p in known.items()}
    assert find_cycle(found) == ["advisor.x.a", "advisor.x.b", "advisor.x.a"]


def test_every_part_has_a_layer() -> None:
    assert {part(m) for m in modules()} <= set(LAYER), "add the new part of advisor to LAYER"


def test_no_module_import_cycle() -> None:
    assert find_cycle(graph()) == []


def test_no_package_import_cycle() -> None:
    parts: dict[str, set[str]] = {}
    for source, targets in graph().items():
        parts.setdefault(part(source), set()).update(part(t) for t in targets if part(t) != part(source))
    assert find_cycle(parts) == []


def test_imports_point_down() -> None:
    wrong = sorted(
        f"{source} -> {target}"
        for source, targets in graph().items()
        for target in targets
        if LAYER[part(target)] > LAYER[part(source)]
    )
    assert wrong == []


def test_the_server_imports_only_itself() -> None:
    """advisor/serve ships inside the slim image alone: it may not import the rest of advisor."""
    outside = sorted(f"{s} -> {t}" for s, targets in graph().items() if part(s) == "serve"
                     for t in targets if part(t) != "serve")
    assert outside == []


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_module_over_500_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(PACKAGE)} has {lines} lines"


def test_every_advisor_import_names_a_module_that_exists() -> None:
    """mypy runs with ignore_missing_imports (for third-party stubs), so it would not see a
    moved or deleted advisor module; this does."""
    known = modules()
    missing = []
    for module, path in known.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = ([a.name for a in node.names] if isinstance(node, ast.Import)
                     else [node.module or ""] if isinstance(node, ast.ImportFrom) and not node.level else [])
            missing += [f"{module}: {n}" for n in names if n.startswith("advisor") and n not in known]
    assert missing == []
