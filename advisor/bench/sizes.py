"""Image sizes as a user pays for them: bytes on disk, bytes to pull, per layer and per area."""

from __future__ import annotations

import posixpath
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from advisor.bench.model import ImageSizes, LayerSize
from advisor.oci.filetree import FileInfo, FileTree, LayerTree, merge_layers
from advisor.oci.model import Capture, Entry, EntryKind, Image
from advisor.units import WEIGHT_SUFFIXES

_TOP_AREAS = 12
_SITE_NAMES = ("site-packages", "dist-packages")


def _created_by(image: Image) -> list[str]:
    """``created_by`` of each non-empty layer, in order (empty history entries skipped)."""
    lines = [h.created_by for h in image.config.history if not h.empty_layer]
    return lines + [""] * (len(image.layers) - len(lines))


def _file_count(entries: Iterable[FileInfo]) -> int:
    return sum(1 for e in entries if e.kind is EntryKind.FILE)


def site_dirs(tree: FileTree) -> frozenset[str]:
    """Folders that hold installed distributions (a ``*.dist-info`` child): site-packages,
    dist-packages, or a ``pip install --target`` folder such as the slim image's /app/deps."""
    found = set()
    for info in tree:
        head, _, rest = info.path.partition(".dist-info/")
        if rest and "/" in head:
            found.add(head.rsplit("/", 1)[0])
    return frozenset(found)


def area_of(path: str, sites: frozenset[str] = frozenset()) -> str:
    """The area a file is billed to: a Python package, model weights, or its top directory."""
    parts = path.split("/")
    site = next(
        (
            i
            for i in range(len(parts) - 1, 0, -1)
            if parts[i - 1] in _SITE_NAMES or "/".join(parts[:i]) in sites
        ),
        None,
    )
    if path.endswith(WEIGHT_SUFFIXES) and site is None:
        return "model weights"
    if site is not None:
        top = parts[site] if site < len(parts) - 1 else "(top-level files)"
        return f"python: {top.split('-')[0]}"
    top = parts[0] if len(parts) > 1 else "(root files)"
    second = parts[1] if len(parts) > 2 and top in ("usr", "opt", "var") else ""
    return "/" + posixpath.join(top, second) if second else "/" + top


def categories(tree: FileTree) -> dict[str, int]:
    """Bytes per area, the largest first, the tail folded into ``other``."""
    sites = site_dirs(tree)
    totals: Counter[str] = Counter()
    for info in tree:
        if info.kind is EntryKind.FILE:
            totals[area_of(info.path, sites)] += info.size
    ranked = sorted(totals.items(), key=lambda kv: (-kv[1], kv[0]))
    head, tail = ranked[:_TOP_AREAS], ranked[_TOP_AREAS:]
    out = dict(head)
    if tail:
        out["other"] = out.get("other", 0) + sum(v for _, v in tail)
    return out


def image_sizes(image: Image, trees: Sequence[LayerTree]) -> ImageSizes:
    """Sizes of ``image`` from its layer trees (one streaming pass each, nothing extracted)."""
    merged = merge_layers(trees).tree
    created = _created_by(image)
    layers = tuple(
        LayerSize(
            index=layer.index,
            digest=layer.blob.digest,
            size_bytes=tree.size,
            compressed_size_bytes=layer.blob.size,
            files=sum(1 for e in tree.entries.values() if e.kind is EntryKind.FILE),
            created_by=created[i],
        )
        for i, (layer, tree) in enumerate(zip(image.layers, trees, strict=True))
    )
    return ImageSizes(
        reference=image.reference,
        digest=image.digest,
        size_bytes=merged.total_size,
        layers_size_bytes=sum(layer.size_bytes for layer in layers),
        compressed_size_bytes=image.compressed_size,
        file_count=_file_count(merged),
        layers=layers,
        categories=categories(merged),
    )


def _config_capture(entry: Entry) -> Capture | None:
    """Keep small ``config.json`` files (and HF cache blobs they link to) to find models."""
    from advisor.export.locate import CONFIG_CAPTURE

    small = entry.kind is EntryKind.FILE and entry.size <= CONFIG_CAPTURE
    if small and (posixpath.basename(entry.path) == "config.json" or "/blobs/" in entry.path):
        return Capture(head=CONFIG_CAPTURE)
    return None


@dataclass(frozen=True)
class Inspected:
    sizes: ImageSizes
    model_dirs: tuple[str, ...]  # text-classification model folders, largest weights first


def inspect_image(reference: str, *, insecure: bool = False) -> Inspected:
    """Size ``reference`` and find its classifier models, in one streaming pass per layer."""
    from advisor.export.locate import find_models_in_image
    from advisor.oci.layers import read_layers
    from advisor.oci.loader import open_image

    with open_image(reference, insecure=insecure) as image:
        trees = read_layers(image, _config_capture)
        models = find_models_in_image(image, merge_layers(trees).tree)
        sizes = image_sizes(image, trees)
    found = tuple("/" + m.path for m in models if m.task == "text-classification")
    return Inspected(sizes, found)


def measure_sizes(reference: str, *, insecure: bool = False) -> ImageSizes:
    """Open ``reference`` with advisor's own readers and size it."""
    from advisor.oci.layers import read_layers
    from advisor.oci.loader import open_image

    with open_image(reference, insecure=insecure) as image:
        return image_sizes(image, read_layers(image))
