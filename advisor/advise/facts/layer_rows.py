"""Per-step rows like ``docker history`` (size, files, created_by), and the base image's share."""

from __future__ import annotations

from dataclasses import dataclass

from advisor.advise.facts.context import Context
from advisor.oci.model import EntryKind

LARGEST = 20  # as many as the LayerReport keeps (facts.layers.TOP_N)


def largest_files(ctx: Context) -> tuple[tuple[str, int], ...]:
    """(path, bytes) of the merged filesystem's largest files: what the image shows, largest first."""
    report = getattr(ctx.layer_report, "largest_files", None)
    if report is not None:
        return tuple((f.path, f.size_bytes) for f in report)
    files = ((f.path, f.size) for f in ctx.tree if f.kind is EntryKind.FILE)
    return tuple(sorted(files, key=lambda ps: (-ps[1], ps[0]))[:LARGEST])


@dataclass(frozen=True, slots=True)
class LayerRow:
    index: int
    digest: str
    diff_id: str
    size_bytes: int
    compressed_size_bytes: int
    files: int
    created_by: str
    empty_layer: bool
    largest_files: tuple[tuple[str, int], ...] = ()  # (path, bytes) the layer itself ships, largest first


def _layer_row(ctx: Context, index: int, created_by: str) -> LayerRow:
    tree = ctx.layer_tree(index)
    blob = ctx.facts.layer_blobs[index] if index < len(ctx.facts.layer_blobs) else {}
    size = tree.size if tree is not None else 0
    files = sum(1 for e in tree.entries.values() if e.kind is not EntryKind.DIR) if tree is not None else 0
    largest = sorted(((e.path, e.size) for e in tree.entries.values() if e.kind is EntryKind.FILE),
                     key=lambda ps: (-ps[1], ps[0]))[:LARGEST] if tree is not None else []
    return LayerRow(index, str(blob.get("digest", "")), str(blob.get("diff_id", "")), size,
                    int(blob.get("size", 0)), files, created_by, files == 0, tuple(largest))


def layer_rows(ctx: Context) -> list[LayerRow]:
    """One row per layer, from the LayerReport when there is one."""
    infos = getattr(ctx.layer_report, "layers", None)
    if infos is not None:
        return [LayerRow(i.index, i.digest, i.diff_id, i.size_bytes, i.compressed_size_bytes, i.files,
                         i.created_by, i.empty_layer, tuple((f.path, f.size_bytes) for f in i.largest_files))
                for i in infos]
    created = {s.layer: s.created_by for s in ctx.steps if s.layer is not None}
    return [_layer_row(ctx, t.index, created.get(t.index, "")) for t in ctx.trees]


def base_layer_count(ctx: Context) -> int:
    """Layers that came with the base image: those before the last CMD/ENTRYPOINT that
    later steps follow (a base image's history ends with its CMD)."""
    report = ctx.layer_report
    base = getattr(report, "base_layer_count", None)
    if isinstance(base, int):
        return base
    steps = ctx.steps
    last = -1
    for i, s in enumerate(steps[:-1]):
        if s.instruction in ("CMD", "ENTRYPOINT") and any(t.layer is not None for t in steps[i + 1:]):
            last = i
    if last < 0:
        return 0
    layers = [s.layer for s in steps[: last + 1] if s.layer is not None]
    return max(layers) + 1 if layers else 0
