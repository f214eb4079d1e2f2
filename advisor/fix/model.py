"""What ``fix.run`` takes and what it returns: frozen dataclasses, sizes in bytes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from advisor.oci.model import Platform

ProgressFn = Callable[[int, int, str], None]


def no_progress(done: int, total: int, what: str) -> None:
    """The default progress callback: silent."""


@dataclass(frozen=True)
class FixConfig:
    """``advisor fix IMAGE --output DEST`` and its options."""

    image: str
    output: str
    only: frozenset[str] = frozenset()  # recommendation ids; empty: every one fix applies
    skip: frozenset[str] = frozenset()
    torch: Literal["cpu", "keep"] = "cpu"
    wheels: Path | None = None  # a directory holding the CPU torch wheel
    index_url: str | None = None  # or an index serving it (pip's --index-url)
    verify: bool = True  # run the proof (False: --no-verify)
    data: Path | None = None  # labelled CSV for the prediction check (default: bench's held-out set)
    limit: int = 100  # rows of it scored on both images
    platform: Platform | None = None
    insecure: bool = False
    use_cache: bool = True  # the layer cache ($ADVISOR_CACHE/layers) for the walk
    timeout_s: float = 120.0  # for the entrypoint to start answering
    progress: ProgressFn = no_progress


@dataclass(frozen=True)
class Check:
    """One step of the proof: ``imports``, ``entrypoint``, ``port``, ``predictions``."""

    name: str
    ok: bool
    detail: str


@dataclass(frozen=True)
class ProofReport:
    """The proof of one image: every check, and whether all passed."""

    reference: str
    checks: tuple[Check, ...] = ()

    @property
    def passed(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failure(self) -> str:
        return "; ".join(f"{c.name}: {c.detail}" for c in self.checks if not c.ok)


@dataclass(frozen=True)
class FixOutcome:
    """One recommendation: what advise estimated, what fix removed, what the proof said."""

    id: str
    title: str
    estimated_bytes: int
    removed_bytes: int = 0  # of the merged filesystem (what advise estimates)
    hidden_removed_bytes: int = 0  # lower-layer copies of the same paths, dropped too
    files: int = 0
    applied: bool = False
    reason: str = ""  # why it is not applied
    proof: str = "not run"  # passed | broke the proof: ... | not run | skipped (--no-verify)


@dataclass(frozen=True)
class LayerChange:
    index: int
    digest_before: str
    digest_after: str
    files_removed: int
    bytes_removed: int
    note: str  # what its history entry says it lost


@dataclass(frozen=True)
class FixResult:
    reference: str
    output: str
    manifest_digest: str
    size_before: int  # merged filesystem bytes
    size_after: int
    compressed_before: int
    compressed_after: int
    fixes: tuple[FixOutcome, ...]
    layers: tuple[LayerChange, ...]
    baseline: ProofReport | None = None  # the original image's proof
    proof: ProofReport | None = None  # the written image's proof
    verified: bool = True  # False: --no-verify
    notes: tuple[str, ...] = field(default_factory=tuple)
