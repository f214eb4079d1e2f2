"""Find exportable models inside an image, and copy one out as a plain model folder.

A model is a ``config.json`` that names ``architectures`` next to weights
(``model.safetensors``, ``pytorch_model.bin`` or a sharded index), in a plain folder or in a
Hugging Face cache snapshot (``models--org--name/snapshots/<rev>/``, whose files are symlinks
into ``../../blobs/``). Only small files are captured while the layers stream past; weights
are read when a model is materialised, and then only that model's files.
"""

from __future__ import annotations

import json
import posixpath
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from advisor.errors import BadInputError
from advisor.export.source import WEIGHT_FILES
from advisor.export.specs import judge
from advisor.oci.filetree import FileTree, merge_layers
from advisor.oci.model import Capture, Entry, EntryKind, Image

CONFIG_CAPTURE = 256 * 1024
_HF_SNAPSHOT = re.compile(r"(?:^|/)models--(?P<name>[^/]+)/snapshots/(?P<rev>[^/]+)$")


@dataclass(frozen=True)
class ModelLocation:
    path: str  # folder inside the image, no leading "/"
    model_type: str
    architectures: tuple[str, ...]
    task: str | None  # None when the head is not one advisor exports
    supported: bool  # model_type and task both exportable
    weight_files: tuple[str, ...]  # names inside ``path``
    weights_bytes: int
    hf_name: str = ""  # "org/name" for a Hugging Face cache snapshot
    revision: str = ""
    reason: str = ""  # why not, when not supported (``specs.judge``)


def _capture(entry: Entry) -> Capture | None:
    small = entry.kind is EntryKind.FILE and entry.size <= CONFIG_CAPTURE
    if small and (posixpath.basename(entry.path) == "config.json" or "/blobs/" in entry.path):
        return Capture(head=CONFIG_CAPTURE)
    return None


def merged_tree(image: Image) -> FileTree:
    from advisor.oci.layers import read_layers

    return merge_layers(read_layers(image, _capture)).tree


def find_models_in_image(image: Image, tree: FileTree | None = None) -> list[ModelLocation]:
    """Every model folder in the image, largest weights first (ties by path)."""
    tree = tree if tree is not None else merged_tree(image)
    found = []
    for info in tree.glob_names(["config.json"]):
        location = _location(tree, posixpath.dirname(info.path))
        if location is not None:
            found.append(location)
    return sorted(found, key=lambda m: (-m.weights_bytes, m.path))


def _location(tree: FileTree, folder: str) -> ModelLocation | None:
    config = _read_json(tree, posixpath.join(folder, "config.json"))
    archs = config.get("architectures") if config else None
    if not config or not isinstance(archs, list) or not archs:
        return None
    weights = tuple(n for n in WEIGHT_FILES if _file_size(tree, posixpath.join(folder, n)) is not None)
    shards = tuple(n for n in tree.listdir(folder) if re.fullmatch(r".+-\d+-of-\d+\.(safetensors|bin)", n))
    if not weights:
        return None
    names = tuple(sorted({*weights, *shards}))
    size = sum(_file_size(tree, posixpath.join(folder, n)) or 0 for n in names)
    verdict = judge(config)
    hf = _HF_SNAPSHOT.search(folder)
    return ModelLocation(
        path=folder, model_type=verdict.model_type, architectures=tuple(str(a) for a in archs),
        task=verdict.task, supported=verdict.ok, reason=verdict.reason, weight_files=names,
        weights_bytes=size, hf_name=hf["name"].replace("--", "/", 1) if hf else "",
        revision=hf["rev"] if hf else "")


def _file_size(tree: FileTree, path: str) -> int | None:
    info = tree.get(tree.resolve(path))
    return info.size if info is not None and info.kind is EntryKind.FILE else None


def _read_json(tree: FileTree, path: str) -> dict[str, object] | None:
    data = tree.read(tree.resolve(path))
    if data is None:
        return None
    try:
        value = json.loads(data)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def materialize_model_from_image(image: Image, path: str, dest: Path,
                                 tree: FileTree | None = None) -> Path:
    """Copy the model folder ``path`` out of ``image`` into ``dest`` as plain files.

    Symlinks (a Hugging Face cache snapshot's) are followed inside the image, so ``dest``
    holds real files under their snapshot names. Sub-folders are not copied: a model folder
    is flat.
    """
    from advisor.oci.extract import extract_paths

    tree = tree if tree is not None else merged_tree(image)
    folder = tree.resolve(path.strip("/"))
    files = {name: tree.resolve(posixpath.join(folder, name)) for name in tree.listdir(folder)}
    files = {n: real for n, real in files.items() if (info := tree.get(real)) and info.kind is EntryKind.FILE}
    if "config.json" not in files:
        raise BadInputError(f"no config.json in {path} inside {image.reference}",
                            hint="name a model folder inside the image (see `advisor advise`)")
    dest.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="advisor-model-", dir=dest.parent) as tmp:
        extract_paths(image, sorted(set(files.values())), Path(tmp))
        for name, real in sorted(files.items()):
            target = dest / name
            shutil.copyfile(Path(tmp) / real, target)
            target.chmod(0o644)
    return dest
