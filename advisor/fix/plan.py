"""Which paths each of advise's recommendations removes, layer by layer.

A recommendation's findings carry ``frees``: every merged-tree path the fix removes (or
``layerN:path`` for bytes a later layer hides). A merged path is removed from every layer
that holds it (dropping it from the top layer alone would bring a lower copy back into
view); a hidden copy only from its own layer. A path two fixes both remove belongs to the
first in advise's claiming order (``RECOMMENDATIONS``), as advise's savings count it. A path
some kept hard link still names stays, and the plan says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from advisor.advise.advice import Advice, Recommendation
from advisor.advise.rules.recommendations import RECOMMENDATIONS
from advisor.errors import UsageError
from advisor.oci.filetree import FileTree, LayerTree
from advisor.oci.model import EntryKind

# What ``fix`` applies by removing paths; cpu-torch also adds the CPU wheel (``torch.py``).
REMOVAL_FIXES = (
    "remove-dev-tools", "drop-unused-packages", "dedupe-models", "clean-caches",
    "dockerignore", "squash-layers", "trim-python",
)
TORCH_FIX = "cpu-torch"
NOT_BY_FIX = {
    "remove-secrets": "deleting a secret does not revoke it: rotate it and rebuild without it",
    "onnx-runtime": "a new serving stack, not a removal: run `advisor export`",
    "slim-base": "another base image: rebuild on it (--write-fixes writes the Dockerfile)",
    "strip-binaries": "changes the bytes of the files it keeps; fix only removes whole files",
}


@dataclass(frozen=True)
class PlannedFix:
    """One recommendation as ``fix`` would apply it."""

    id: str
    title: str
    estimated_bytes: int
    removals: Mapping[int, frozenset[str]] = field(default_factory=dict)  # layer -> paths
    visible: Mapping[str, int] = field(default_factory=dict)  # merged path -> its bytes
    kept_linked: tuple[str, ...] = ()  # paths a kept hard link still names
    skipped: str = ""  # why it is not applied ("" when it is)
    roots: frozenset[str] = frozenset()  # the findings' evidence paths (``.git``, a cache dir)

    @property
    def applies(self) -> bool:
        return not self.skipped

    def with_skip(self, reason: str) -> PlannedFix:
        return PlannedFix(self.id, self.title, self.estimated_bytes, self.removals, self.visible,
                          self.kept_linked, reason, self.roots)


def parse_ids(text: str | Sequence[str] | None, option: str) -> frozenset[str]:
    """``--only`` / ``--skip`` values: comma-separated recommendation ids, each one known."""
    if not text:
        return frozenset()
    parts = [text] if isinstance(text, str) else list(text)
    ids = {p.strip() for part in parts for p in part.split(",") if p.strip()}
    known = {r.id for r in RECOMMENDATIONS}
    unknown = sorted(ids - known)
    if unknown:
        raise UsageError(f"{option}: unknown recommendation id {', '.join(unknown)}",
                         hint=f"ids are: {', '.join(sorted(known))}")
    return frozenset(ids)


def _layers_holding(trees: Sequence[LayerTree]) -> dict[str, list[int]]:
    where: dict[str, list[int]] = {}
    for t in trees:
        for path in t.entries:
            where.setdefault(path, []).append(t.index)
    return where


def _claims(advice: Advice, rec: Recommendation) -> Iterable[str]:
    for i in rec.findings:
        yield from advice.findings[i].frees


def _link_names(trees: Sequence[LayerTree]) -> dict[str, set[str]]:
    """Hard link target -> every name that links to it (any layer)."""
    out: dict[str, set[str]] = {}
    for t in trees:
        for e in t.entries.values():
            if e.kind is EntryKind.HARDLINK:
                out.setdefault(e.link, set()).add(e.path)
    return out


def _removals_of(keys: Iterable[str], where: Mapping[str, list[int]],
                 advice_paths: Mapping[str, int]) -> tuple[dict[int, set[str]], dict[str, int]]:
    removals: dict[int, set[str]] = {}
    visible: dict[str, int] = {}
    for key in keys:
        if key.startswith("layer") and ":" in key and key[5:key.index(":")].isdigit():
            layer, path = int(key[5:key.index(":")]), key.split(":", 1)[1]
            removals.setdefault(layer, set()).add(path)
            visible[key] = advice_paths.get(key, 0)
            continue
        for layer in where.get(key, ()):
            removals.setdefault(layer, set()).add(key)
        if key in where:
            visible[key] = advice_paths.get(key, 0)
    return removals, visible


def plan_fixes(advice: Advice, trees: Sequence[LayerTree], only: frozenset[str] = frozenset(),
               skip: frozenset[str] = frozenset()) -> list[PlannedFix]:
    """Every recommendation of ``advice``, in claiming order, with what applying it removes."""
    where = _layers_holding(trees)
    by_id = {r.id: r for r in advice.recommendations}
    claimed: set[str] = set()
    out: list[PlannedFix] = []
    links = _link_names(trees)
    for rdef in RECOMMENDATIONS:
        rec = by_id.get(rdef.id)
        if rec is None:
            continue
        sizes: dict[str, int] = {}
        for i in rec.findings:
            sizes.update(advice.findings[i].frees)
        keys = [k for k in dict.fromkeys(_claims(advice, rec)) if k not in claimed]
        if rdef.id in REMOVAL_FIXES or rdef.id == TORCH_FIX:
            claimed.update(keys)
        removals, visible = _removals_of(keys, where, sizes)
        gone = {p for layer_paths in removals.values() for p in layer_paths}
        linked = sorted(p for p in gone if links.get(p, set()) - gone)
        for layer in removals:
            removals[layer] -= set(linked)
        for p in linked:
            visible.pop(p, None)
        # cpu-torch beside onnx-runtime is estimated at 0 (the export claims torch first):
        # applied on its own, its own estimate is what it saves.
        estimate = rec.standalone_savings_bytes if rec.alternative_to else rec.estimated_savings_bytes
        if rdef.id in REMOVAL_FIXES:
            # advise credits a path to the first recommendation claiming it, slim-base and
            # onnx-runtime included; fix applies neither, so its estimate is advise's bytes
            # for the paths left to this fix by the fixes fix applies before it (on the case
            # study trim-python's headers and .a files in the base: 198 MB became 533 MB).
            estimate = sum(sizes.get(k, 0) for k in keys)
        planned = PlannedFix(rec.id, rec.title, estimate,
                             {k: frozenset(v) for k, v in sorted(removals.items()) if v},
                             visible, tuple(dict.fromkeys(linked)),
                             roots=frozenset(p for i in rec.findings for p in advice.findings[i].paths))
        out.append(planned.with_skip(_skip_reason(rec, only, skip)))
    return out


def _skip_reason(rec: Recommendation, only: frozenset[str], skip: frozenset[str]) -> str:
    if rec.id in NOT_BY_FIX:
        return NOT_BY_FIX[rec.id]
    if rec.id not in REMOVAL_FIXES and rec.id != TORCH_FIX:
        return "fix does not apply this recommendation"
    if only and rec.id not in only:
        return "not in --only"
    if rec.id in skip:
        return "in --skip"
    if rec.alternative_to and rec.id != TORCH_FIX:
        return f"an alternative to {rec.alternative_to}"
    return ""


def drops_for(fixes: Iterable[PlannedFix], tree: FileTree | None = None,
              trees: Sequence[LayerTree] = ()) -> dict[int, dict[str, str]]:
    """Layer -> path -> the fix that drops it, for the fixes applied together; with the
    trees, also the directories the removals leave empty (``emptied_dirs``)."""
    out: dict[int, dict[str, str]] = {}
    fixes = list(fixes)
    for f in fixes:
        for layer, paths in f.removals.items():
            for p in paths:
                out.setdefault(layer, {}).setdefault(p, f.id)
    if tree is not None:
        roots = {r: f.id for f in fixes for r in f.roots}
        where = _layers_holding(trees)
        for d, owner in emptied_dirs(out, tree, roots).items():
            for layer in where.get(d, ()):
                out.setdefault(layer, {}).setdefault(d, owner)
    return out


# Directories kept even when a fix empties them: what the OS expects to exist.
KEEP_DIRS = frozenset({"var/lib/apt/lists", "var/cache/apt", "var/cache/apt/archives", "tmp", "var/tmp"})


def emptied_dirs(drops: Mapping[int, Mapping[str, str]], tree: FileTree,
                 roots: Mapping[str, str]) -> dict[str, str]:
    """Directories of the merged tree whose every entry below is dropped: a package's own
    folders, ``__pycache__``, a ``.git`` or cache folder a finding names. Shallow ones
    (``root``, ``root/.cache``) stay unless a finding names them: they are the system's."""
    gone: dict[str, str] = {}
    for paths in drops.values():
        for p, owner in paths.items():
            info = tree.get(p)
            if info is not None and info.layer in drops and p in drops[info.layer]:
                gone.setdefault(p, owner)
    candidates = sorted({parent for p in gone for parent in _ancestors(p)},
                        key=lambda d: -d.count("/"))
    out: dict[str, str] = {}
    for d in candidates:
        if d in KEEP_DIRS or (d.count("/") < 2 and d not in roots):
            continue
        info = tree.get(d)
        if info is None or info.kind is not EntryKind.DIR:
            continue
        below = [e.path for e in tree.iter_under(d) if e.path != d]
        if below and all(b in gone or b in out for b in below):
            out[d] = roots.get(d) or gone.get(below[0]) or out[below[0]]
    return out


def _ancestors(path: str) -> Iterable[str]:
    parts = path.split("/")
    for i in range(1, len(parts)):
        yield "/".join(parts[:i])
