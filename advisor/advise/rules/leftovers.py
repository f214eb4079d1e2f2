"""Caches and build leftovers: pip and apt caches, bytecode, .git, notebooks, tests, libs."""

from __future__ import annotations

import posixpath
import re
from collections import defaultdict

from advisor.advise.facts.capture import is_shared_object
from advisor.advise.facts.context import Context
from advisor.advise.facts.elf import Strip
from advisor.advise.rules.base import Finding, Rule, Severity, human, plural, top_paths
from advisor.oci.model import EntryKind

# Not "testing": torch.testing, numpy.testing are imported by the libraries themselves.
TEST_DIRS = frozenset({"tests", "test"})
_STDLIB = re.compile(r"(^|/)lib/python\d+\.\d+/(?!site-packages/|dist-packages/)")


def _home_dirs(ctx: Context) -> list[str]:
    homes = ["root", *(f"home/{n}" for n in ctx.tree.listdir("home"))]
    return [h for h in homes if ctx.tree.is_dir(h)]


class PipCache(Rule):
    id = "py-pip-cache"
    severity = Severity.MEDIUM
    title = "pip's download and wheel cache left in the image"
    category = "caches"
    recommendation = "clean-caches"

    def evaluate(self, ctx: Context) -> list[Finding]:
        candidates = [f"{h}/.cache/pip" for h in _home_dirs(ctx)] + ["tmp/pip-cache", "var/cache/pip"]
        out = []
        for path in candidates:
            frees = ctx.files_under(path)
            if frees:
                total = sum(frees.values())
                out.append(self.finding(total, [path], f"pip cache /{path}: {human(total)} in {plural(len(frees), 'file')}", frees))
        return out


class CondaPkgsCache(Rule):
    id = "conda-pkgs-cache"
    severity = Severity.MEDIUM
    title = "conda's package cache (pkgs/) left in the image"
    category = "caches"
    recommendation = "clean-caches"

    def evaluate(self, ctx: Context) -> list[Finding]:
        # A conda prefix is the directory holding conda-meta/ (base env and every named env).
        roots = {f.path.split("/conda-meta", 1)[0] for f in ctx.tree
                 if "/conda-meta/" in f.path or f.path.endswith("/conda-meta")}
        out = []
        for root in sorted(roots):
            frees = ctx.files_under(f"{root}/pkgs")
            if frees:
                total = sum(frees.values())
                out.append(self.finding(total, [f"{root}/pkgs"], f"conda package cache /{root}/pkgs: {human(total)} "
                                        "(conda clean --all --yes in the same RUN)", frees))
        return out


class AptLists(Rule):
    id = "os-apt-lists"
    severity = Severity.LOW
    title = "apt package lists left in the image"
    category = "caches"
    recommendation = "clean-caches"

    def evaluate(self, ctx: Context) -> list[Finding]:
        frees = ctx.files_under("var/lib/apt/lists")
        if not frees:
            return []
        total = sum(frees.values())
        return [self.finding(total, ["var/lib/apt/lists"], f"apt lists /var/lib/apt/lists: {human(total)} ({plural(len(frees), 'file')})", frees)]


class AptArchives(Rule):
    id = "os-apt-archives"
    severity = Severity.LOW
    title = "downloaded .deb archives and apt caches left in the image"
    category = "caches"
    recommendation = "clean-caches"

    def evaluate(self, ctx: Context) -> list[Finding]:
        frees = {p: s for p, s in ctx.files_under("var/cache/apt").items()
                 if p.endswith((".deb", ".bin"))}
        if not frees:
            return []
        total = sum(frees.values())
        debs = sum(1 for p in frees if p.endswith(".deb"))
        return [self.finding(total, top_paths(frees), f"apt cache /var/cache/apt: {plural(debs, '.deb archive')} and caches, {human(total)}", frees)]


def is_hash_based_pyc(head: bytes | None) -> bool:
    """PEP 552: flags bit 0 set. Neither the import system nor pip's default compile writes
    these; only a deliberate ``compileall --invalidation-mode`` (or SOURCE_DATE_EPOCH) does,
    as advisor's slim image does for the modules its server imports."""
    return head is not None and len(head) >= 8 and int.from_bytes(head[4:8], "little") & 1 == 1


class Bytecode(Rule):
    id = "py-bytecode"
    severity = Severity.INFO
    title = "__pycache__ / .pyc bytecode shipped in layers"
    category = "caches"
    recommendation = "trim-python"

    def evaluate(self, ctx: Context) -> list[Finding]:
        # Installed packages and app code only: the interpreter's own stdlib bytecode is part
        # of any Python base (slim ones included) and not worth a finding.
        by_root: dict[str, dict[str, int]] = defaultdict(dict)
        site_dirs = sorted((e.path for e in ctx.environments), key=len, reverse=True)
        for f in ctx.tree:
            if f.kind is not EntryKind.FILE or not f.path.endswith((".pyc", ".pyo")):
                continue
            if is_hash_based_pyc(ctx.tree.read(f.path)):
                continue  # compiled on purpose (reproducible, or never re-checked): not a leftover
            root = next((s for s in site_dirs if f.path.startswith(s + "/")), None)
            if root is None:
                if f.path.startswith(("usr/", "opt/conda/lib/")) or _STDLIB.search(f.path):
                    continue
                root = f.path.split("/", 1)[0]
            by_root[root][f.path] = f.size
        return [
            self.finding(sum(fr.values()), [root], f"{plural(len(fr), 'bytecode file')} under /{root}: {human(sum(fr.values()))} "
                         "(Python regenerates them; set PYTHONDONTWRITEBYTECODE=1 and install with --no-compile)", fr)
            for root, fr in sorted(by_root.items())
        ]


class GitDir(Rule):
    id = "vcs-git-dir"
    severity = Severity.MEDIUM
    title = ".git directories in the image"
    category = "app"
    recommendation = "dockerignore"

    def evaluate(self, ctx: Context) -> list[Finding]:
        gits = sorted({f.path.split("/.git/")[0] + "/.git" if "/.git/" in f.path else ".git"
                       for f in ctx.tree if "/.git/" in f.path or f.path.startswith(".git/")})
        out = []
        for g in gits:
            if "-packages/" in g:
                continue
            frees = ctx.files_under(g)
            if frees:
                total = sum(frees.values())
                out.append(self.finding(total, [g], f"git repository /{g}: {human(total)}", frees))
        return out


class Notebooks(Rule):
    id = "app-notebooks"
    severity = Severity.LOW
    title = "Jupyter notebooks shipped in the image"
    category = "app"
    recommendation = "dockerignore"

    def evaluate(self, ctx: Context) -> list[Finding]:
        by_dir: dict[str, dict[str, int]] = defaultdict(dict)
        for f in ctx.tree:
            if f.kind is EntryKind.FILE and f.path.endswith(".ipynb") and "-packages/" not in f.path:
                by_dir[posixpath.dirname(f.path)][f.path] = f.size
        return [self.finding(sum(fr.values()), list(fr), f"{plural(len(fr), 'notebook')} in /{d}: {human(sum(fr.values()))}", fr)
                for d, fr in sorted(by_dir.items())]


class SiteTests(Rule):
    id = "py-tests-in-site-packages"
    severity = Severity.LOW
    title = "test suites installed inside site-packages"
    category = "app"
    recommendation = "trim-python"

    def evaluate(self, ctx: Context) -> list[Finding]:
        # top-level package -> its test directories -> files
        by_pkg: dict[str, dict[str, dict[str, int]]] = defaultdict(lambda: defaultdict(dict))
        roots = sorted({e.path for e in ctx.environments})
        for root in roots:
            prefix = root + "/"
            # a file belongs to the innermost environment only (PYTHONPATH=/app/deps:/app)
            inner = tuple(r + "/" for r in roots if r.startswith(prefix))
            for f in ctx.tree.iter_under(root):
                if inner and f.path.startswith(inner):
                    continue
                parts = f.path[len(prefix):].split("/")
                if f.kind is not EntryKind.FILE or len(parts) < 3 or parts[0].endswith((".dist-info", ".egg-info")):
                    continue
                i = next((i for i, p in enumerate(parts[:-1]) if i > 0 and p in TEST_DIRS), None)
                if i is not None:
                    by_pkg[prefix + parts[0]][prefix + "/".join(parts[: i + 1])][f.path] = f.size
        out = []
        for pkg, dirs in sorted(by_pkg.items()):
            frees = {p: s for files in dirs.values() for p, s in files.items()}
            total = sum(frees.values())
            if total > 0:
                out.append(self.finding(total, sorted(dirs), f"tests inside /{pkg}: {human(total)} in {plural(len(dirs), 'directory', 'directories')}", frees))
        return out


def _group_by_owner(ctx: Context, paths: dict[str, int]) -> dict[str, dict[str, int]]:
    owner: dict[str, str] = {}
    for d in ctx.scan.distributions:
        for p in d.files:
            if p in paths:
                owner[p] = d.name
    out: dict[str, dict[str, int]] = defaultdict(dict)
    for p, s in paths.items():
        # Outside Python distributions, one finding per top directory (usr/include, usr/lib).
        key = owner.get(p) or "/".join(p.split("/")[:2])
        out[key][p] = s
    return out


class _SuffixRule(Rule):
    suffixes: tuple[str, ...] = ()
    what = ""

    def evaluate(self, ctx: Context) -> list[Finding]:
        files = {f.path: f.size for f in ctx.tree if f.kind is EntryKind.FILE and f.size > 0 and f.path.endswith(self.suffixes)}
        return [self.finding(sum(fr.values()), top_paths(fr), f"{len(fr)} {self.what} from {owner}: {human(sum(fr.values()))}", fr)
                for owner, fr in sorted(_group_by_owner(ctx, files).items())]


class StaticLibs(_SuffixRule):
    id = "lib-static"
    severity = Severity.LOW
    title = "static libraries (.a) in a runtime image"
    category = "os"
    recommendation = "trim-python"
    suffixes = (".a",)
    what = "static libraries"


class Headers(_SuffixRule):
    id = "lib-headers"
    severity = Severity.LOW
    title = "C/C++ headers in a runtime image"
    category = "os"
    recommendation = "trim-python"
    suffixes = (".h", ".hpp", ".hh", ".cuh")
    what = "headers"


class Unstripped(Rule):
    id = "lib-unstripped"
    severity = Severity.LOW
    title = "shared objects with symbol tables or debug info"
    category = "os"
    recommendation = "strip-binaries"

    def evaluate(self, ctx: Context) -> list[Finding]:
        strippable: dict[str, int] = {}
        for f in ctx.tree:
            if f.kind is not EntryKind.FILE or not is_shared_object(posixpath.basename(f.path)):
                continue
            strip = Strip.unpack(ctx.tree.read_tail(f.path))
            if strip is not None and strip.unstripped and strip.strippable_bytes > 0:
                strippable[f.path] = strip.strippable_bytes
        return [self.finding(sum(fr.values()), top_paths(fr), f"{len(fr)} unstripped shared objects from {owner}: "
                             f"{human(sum(fr.values()))} of symbols/debug info (strip --strip-unneeded)", fr)
                for owner, fr in sorted(_group_by_owner(ctx, strippable).items()) if sum(fr.values()) >= 4096]
