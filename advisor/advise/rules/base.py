"""The shape every rule shares, and the finding it produces."""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from advisor.advise.facts.context import Context
from advisor.errors import UsageError
from advisor.oci.filetree import FileTree
from advisor.units import human_bytes

#: How the rules' messages write sizes (advisor.units: one formatter for every report).
human = human_bytes


class Severity(enum.IntEnum):
    INFO = 0
    LOW = 1
    MEDIUM = 2
    HIGH = 3
    CRITICAL = 4

    @classmethod
    def parse(cls, text: str) -> Severity:
        try:
            return cls[text.strip().upper()]
        except KeyError as e:
            names = ", ".join(s.name.lower() for s in cls)
            raise UsageError(f"unknown severity '{text}'", hint=f"use one of: {names}") from e

    def __str__(self) -> str:
        return self.name.lower()


@dataclass(frozen=True)
class Finding:
    """One thing found, with its own evidence and bytes.

    ``frees`` maps merged-tree paths to the bytes the fix frees there (a removed file: its
    size; a stripped .so: its symbol sections). ``hidden_bytes`` are bytes outside the merged
    tree (shipped by a layer, hidden by a later one); ``added_bytes`` is what the fix puts
    back (the CPU torch wheel that replaces a CUDA one). ``bytes`` is the finding's net size.
    """

    rule: str
    severity: Severity
    bytes: int
    paths: tuple[str, ...]
    message: str
    frees: Mapping[str, int] = field(default_factory=dict)
    hidden_bytes: int = 0
    added_bytes: int = 0
    category: str = ""
    data: Mapping[str, Any] = field(default_factory=dict)


class Rule:
    """Subclasses set the class attributes and implement ``evaluate``."""

    id: ClassVar[str]
    severity: ClassVar[Severity]
    title: ClassVar[str]
    category: ClassVar[str]  # gpu | ml | dev-tools | caches | models | os | app | layers
    recommendation: ClassVar[str]

    def evaluate(self, ctx: Context) -> list[Finding]:
        raise NotImplementedError

    def finding(self, bytes_: int, paths: list[str] | tuple[str, ...], message: str,
                frees: Mapping[str, int] | None = None, severity: Severity | None = None,
                hidden_bytes: int = 0, added_bytes: int = 0,
                data: Mapping[str, Any] | None = None) -> Finding:
        return Finding(
            self.id, severity if severity is not None else self.severity, bytes_,
            tuple(sorted(set(paths))), message, dict(frees or {}), hidden_bytes, added_bytes,
            self.category, dict(data or {}),
        )


MAX_EVIDENCE = 50


def sizes_in(tree: FileTree, paths: Iterable[str]) -> dict[str, int]:
    """Each path's bytes in the merged tree (0 once a later layer removed it): a finding's
    ``frees``."""
    out: dict[str, int] = {}
    for path in paths:
        info = tree.get(path)
        out[path] = info.size if info is not None else 0
    return out


def top_paths(frees: Mapping[str, int], limit: int = MAX_EVIDENCE) -> list[str]:
    """The largest paths first: evidence stays readable when a finding covers 10k files."""
    return [p for p, _ in sorted(frees.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


def plural(n: int, word: str, many: str = "") -> str:
    """``1 file``, ``2 files``: counts read as words, not as ``1 files`` or ``1 layer(s)``."""
    return f"{n} {word if n == 1 else (many or word + 's')}"


def shorten(text: str, limit: int) -> str:
    """``text`` cut at a word boundary to at most ``limit`` characters, marked with an ellipsis."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[: limit - 1]
    space = cut.rfind(" ")
    return (cut[:space] if space > limit // 2 else cut).rstrip() + "\u2026"

