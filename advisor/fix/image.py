"""The fixed image: each layer rewritten without its dropped paths, the config's history
saying what each one lost, written by advisor's deterministic, atomic writer."""

from __future__ import annotations

import copy
import hashlib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from advisor.advise.rules.base import human
from advisor.fix.rewrite import Rewritten, keep_layer, rewrite_layer
from advisor.oci.model import Image
from advisor.oci.refs import Transport, as_ref
from advisor.oci.tarball import BuiltLayer, Compression
from advisor.oci.writer import WrittenImage, write_image

Drops = Mapping[int, Mapping[str, str]]  # layer -> path -> the fix that drops it


class LayerStore:
    """Rewritten layers in a work directory, by layer and drop set: the bisection's
    candidates share every layer they rewrite the same way."""

    def __init__(self, image: Image, work: Path, uncompressed: bool) -> None:
        self.image = image
        self.work = work
        self.uncompressed = uncompressed
        self._done: dict[tuple[int, str], Rewritten] = {}

    def layer(self, index: int, drop: Mapping[str, str]) -> Rewritten:
        key = (index, hashlib.sha256("\0".join(sorted(drop)).encode()).hexdigest())
        if key not in self._done:
            layer = self.image.layers[index]
            if drop:
                comp: Compression = "none" if self.uncompressed else "gzip"
                self._done[key] = rewrite_layer(self.image, layer, drop, self.work, comp)
            else:
                self._done[key] = keep_layer(self.image, layer, self.work, self.uncompressed)
        return self._done[key]

    def all_layers(self, drops: Drops) -> list[Rewritten]:
        return [self.layer(layer.index, drops.get(layer.index, {})) for layer in self.image.layers]


def layer_note(drop: Mapping[str, str], rewritten: Rewritten) -> str:
    """What a rewritten layer lost, per fix: ``advisor fix removed 12 files (3.1 MB): ...``."""
    per_fix: dict[str, list[int]] = {}
    for path, size in rewritten.dropped.items():
        counts = per_fix.setdefault(drop.get(path, "?"), [0, 0])
        counts[0] += 1
        counts[1] += size
    if not per_fix:
        return ""
    parts = ", ".join(f"{fix} {n} files {human(b)}" for fix, (n, b) in sorted(per_fix.items()))
    return (f"advisor fix removed {len(rewritten.dropped)} files "
            f"({human(rewritten.dropped_bytes)}): {parts}")


def fixed_config(image: Image, drops: Drops, layers: Sequence[Rewritten],
                 added: Sequence[Mapping[str, str]] = ()) -> dict[str, Any]:
    """The original config with each rewritten layer's history entry saying what it lost,
    and one entry per ``added`` layer (the CPU torch)."""
    raw: dict[str, Any] = copy.deepcopy(dict(image.config.raw))
    history = [dict(h) for h in raw.get("history") or []]
    non_empty = [h for h in history if not h.get("empty_layer")]
    if len(non_empty) != len(layers):  # a config without (matching) history: one per layer
        history = [{"created_by": f"layer {i}"} for i in range(len(layers))]
        non_empty = history
    for entry, layer, rewritten in zip(non_empty, image.layers, layers, strict=True):
        note = layer_note(drops.get(layer.index, {}), rewritten)
        if note:
            entry["comment"] = f"{entry['comment']}; {note}" if entry.get("comment") else note
    raw["history"] = [*history, *(dict(h) for h in added)]
    raw.pop("rootfs", None)
    return raw


def write_fixed(dest: str, image: Image, store: LayerStore, drops: Drops,
                insecure: bool = False,
                added: Sequence[tuple[BuiltLayer, Mapping[str, str]]] = ()) -> tuple[WrittenImage, list[Rewritten]]:
    """Write the image with ``drops`` applied (and ``added`` layers, each with its history
    entry, on top) to ``dest``, atomically and deterministically."""
    layers = store.all_layers(drops)
    config = fixed_config(image, drops, layers, [h for _, h in added])
    built: list[BuiltLayer] = [r.layer for r in layers] + [b for b, _ in added]
    written = write_image(dest, built, config, insecure=insecure)
    return written, layers


def uncompressed_destination(dest: str) -> bool:
    return as_ref(dest).transport is Transport.DOCKER_ARCHIVE
