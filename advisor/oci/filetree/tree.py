"""Per-layer change sets and the merged filesystem they stack into.

A ``LayerTree`` is what one streaming pass over a layer tar yields: the entries it adds or
replaces, the paths it deletes (``.wh.NAME``), the directories it makes opaque
(``.wh..wh..opq``) and the content an analysis asked to keep. ``merge.merge_layers``
applies them in order with the OCI image-spec's rules, so the result is what a container sees.
"""

from __future__ import annotations

import bisect
import posixpath
from array import array
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from itertools import accumulate

from advisor.oci.model import Entry, EntryKind

FileInfo = Entry  # a path of the merged filesystem: the entry of the layer it comes from


@dataclass(slots=True)
class LayerTree:
    """What one layer changes. Built by ``advisor.oci.walk``; read by the analyses."""

    index: int
    entries: dict[str, Entry] = field(default_factory=dict)
    whiteouts: set[str] = field(default_factory=set)
    opaque_dirs: set[str] = field(default_factory=set)
    heads: dict[str, bytes] = field(default_factory=dict)
    tails: dict[str, bytes] = field(default_factory=dict)

    @property
    def size(self) -> int:
        """Bytes of regular-file content this layer ships (what ``docker history`` shows)."""
        return sum(e.size for e in self.entries.values())


def _under(path: str, prefix: str) -> bool:
    return prefix == "" or path == prefix or path.startswith(prefix + "/")


class FileTree:
    """The merged, read-only view of an image's filesystem after whiteouts.

    Lookups by path are O(1); ``du`` and ``iter_under`` use a sorted path index with prefix
    sums, so sizing thousands of directories stays cheap on images with 100k+ files.
    """

    def __init__(
        self,
        files: Mapping[str, FileInfo],
        heads: Mapping[str, bytes] | None = None,
        tails: Mapping[str, bytes] | None = None,
    ) -> None:
        self._setup(dict(files), dict(heads or {}), dict(tails or {}))

    @classmethod
    def adopt(
        cls, files: dict[str, FileInfo], heads: dict[str, bytes], tails: dict[str, bytes]
    ) -> FileTree:
        """A tree over these very dicts, not copies (the merge hands over what it built)."""
        tree = cls.__new__(cls)
        tree._setup(files, heads, tails)
        return tree

    def _setup(
        self, files: dict[str, FileInfo], heads: dict[str, bytes], tails: dict[str, bytes]
    ) -> None:
        self._files = files
        self._heads = heads
        self._tails = tails
        self._paths = sorted(files)
        # prefix sums of the sizes in path order: 8 bytes a file, not an int object each
        self._sums = array("q", accumulate((files[p].size for p in self._paths), initial=0))

    # -- lookups ---------------------------------------------------------------------------
    def __contains__(self, path: object) -> bool:
        return path in self._files

    def __len__(self) -> int:
        return len(self._files)

    def __iter__(self) -> Iterator[FileInfo]:
        return (self._files[p] for p in self._paths)

    def get(self, path: str) -> FileInfo | None:
        return self._files.get(path.strip("/"))

    def read(self, path: str) -> bytes | None:
        """The captured head of a file (the whole file when it was small enough), or None."""
        return self._heads.get(path.strip("/"))

    def read_tail(self, path: str) -> bytes | None:
        return self._tails.get(path.strip("/"))

    @property
    def total_size(self) -> int:
        return self._sums[-1]

    def _range(self, prefix: str) -> tuple[int, int]:
        """Index range of the sorted paths that may lie at or below ``prefix``.

        Siblings such as ``prefix-x`` sort inside the range too; callers filter with ``_under``.
        """
        if not prefix:
            return 0, len(self._paths)
        lo = bisect.bisect_left(self._paths, prefix)
        hi = bisect.bisect_left(self._paths, prefix + "0")  # "0" is the character after "/"
        return lo, hi

    def iter_under(self, prefix: str) -> Iterator[FileInfo]:
        """Every path at or below ``prefix`` (a directory or a file), in sorted order."""
        prefix = prefix.strip("/")
        lo, hi = self._range(prefix)
        for p in self._paths[lo:hi]:
            if _under(p, prefix):
                yield self._files[p]

    def du(self, prefix: str) -> int:
        """Bytes of regular-file content at or below ``prefix`` in the merged tree."""
        prefix = prefix.strip("/")
        if not prefix:
            return self.total_size
        total = 0
        f = self._files.get(prefix)
        if f is not None:
            total += f.size
        lo = bisect.bisect_left(self._paths, prefix + "/")
        hi = bisect.bisect_left(self._paths, prefix + "0")  # "0" is the char after "/"
        return total + self._sums[hi] - self._sums[lo]

    def listdir(self, path: str) -> list[str]:
        """Names of the direct children of a directory (implicit parents included)."""
        path = path.strip("/")
        names: set[str] = set()
        start = path + "/" if path else ""
        lo = bisect.bisect_left(self._paths, start)
        hi = bisect.bisect_left(self._paths, path + "0") if path else len(self._paths)
        for p in self._paths[lo:hi]:
            names.add(p[len(start):].split("/", 1)[0])
        return sorted(names)

    def is_dir(self, path: str) -> bool:
        path = path.strip("/")
        f = self._files.get(path)
        if f is not None:
            return f.kind is EntryKind.DIR
        return bool(self.listdir(path))

    def resolve(self, path: str, max_hops: int = 40) -> str:
        """Follow symlinks in every component (like ``realpath`` inside the image root)."""
        parts = [p for p in path.strip("/").split("/") if p not in ("", ".")]
        resolved: list[str] = []
        hops = 0
        while parts:
            part = parts.pop(0)
            if part == "..":
                if resolved:
                    resolved.pop()
                continue
            candidate = "/".join([*resolved, part])
            info = self._files.get(candidate)
            if info is not None and info.kind is EntryKind.SYMLINK:
                hops += 1
                if hops > max_hops:
                    return candidate
                target = info.link
                if target.startswith("/"):
                    resolved = []
                parts = [p for p in target.split("/") if p not in ("", ".")] + parts
                continue
            resolved.append(part)
        return "/".join(resolved)

    def glob_names(self, names: Iterable[str]) -> Iterator[FileInfo]:
        """Every file whose basename is one of ``names``."""
        wanted = set(names)
        for p in self._paths:
            if posixpath.basename(p) in wanted:
                yield self._files[p]
