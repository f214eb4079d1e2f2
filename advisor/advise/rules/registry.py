"""Every rule advisor knows, in evaluation order. Ids are stable: users gate on them."""

from __future__ import annotations

from advisor.advise.rules.base import Rule
from advisor.advise.rules.leftovers import (
    AptArchives,
    AptLists,
    Bytecode,
    CondaPkgsCache,
    GitDir,
    Headers,
    Notebooks,
    PipCache,
    SiteTests,
    StaticLibs,
    Unstripped,
)
from advisor.advise.rules.ml import (
    CudaTorch,
    DevTools,
    ModelNotExportable,
    OnnxExport,
    UnusedPackages,
)
from advisor.advise.rules.models import DuplicateCopies, DuplicateFormats, HfCacheCopy, StaleHfCache
from advisor.advise.rules.secrets import SecretsInLayers
from advisor.advise.rules.system import (
    AptNoCleanup,
    CopyContext,
    FullBase,
    HiddenBytes,
    NoMultiStage,
    PipNoCacheDir,
)

ALL_RULES: tuple[Rule, ...] = (
    SecretsInLayers(),
    OnnxExport(), ModelNotExportable(), CudaTorch(), DevTools(), UnusedPackages(),
    PipCache(), CondaPkgsCache(), AptLists(), AptArchives(), PipNoCacheDir(), AptNoCleanup(),
    DuplicateFormats(), DuplicateCopies(), StaleHfCache(), HfCacheCopy(),
    FullBase(), NoMultiStage(),
    GitDir(), Notebooks(), CopyContext(),
    HiddenBytes(),
    SiteTests(), StaticLibs(), Headers(), Bytecode(), Unstripped(),
)


def rule_by_id(rule_id: str) -> Rule | None:
    return next((r for r in ALL_RULES if r.id == rule_id), None)
