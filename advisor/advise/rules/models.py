"""Model weights kept twice: several formats of one model, identical copies, stale caches."""

from __future__ import annotations

from advisor.advise.facts.context import Context
from advisor.advise.facts.models import (
    HF_CACHE_MARK,
    copy_groups,
    format_sets,
    hf_cache_copies,
    stale_hf_blobs,
)
from advisor.advise.rules.base import Finding, Rule, Severity, human, plural, sizes_in

FORMAT_PREFERENCE = ("safetensors", "onnx", "pytorch", "tensorflow", "flax")


class DuplicateFormats(Rule):
    id = "model-duplicate-formats"
    severity = Severity.MEDIUM
    title = "one model saved in several weight formats"
    category = "models"
    recommendation = "dedupe-models"

    def evaluate(self, ctx: Context) -> list[Finding]:
        serve_onnx = "onnxruntime" in ctx.dists and "torch" not in ctx.dists
        order = ("onnx", *[f for f in FORMAT_PREFERENCE if f != "onnx"]) if serve_onnx else FORMAT_PREFERENCE
        out = []
        for fs in format_sets(ctx.tree):
            keep = next(f for f in order if f in fs.formats)
            frees = {}
            for fmt, files in fs.formats.items():
                if fmt != keep:
                    # a hub snapshot links to its blob
                    frees.update(sizes_in(ctx.tree, (ctx.tree.resolve(p) for p in files)))
            drop = sorted(f for f in fs.formats if f != keep)
            total = sum(frees.values())
            if total == 0:
                continue
            out.append(self.finding(total, list(frees), f"/{fs.folder} holds the model as {', '.join(sorted(fs.formats))}: "
                                    f"keep {keep}, drop {', '.join(drop)} ({human(total)})", frees,
                                    data={"folder": fs.folder, "keep": keep, "drop": drop}))
        return out


class DuplicateCopies(Rule):
    id = "model-duplicate-copies"
    severity = Severity.MEDIUM
    title = "identical weight files at several paths"
    category = "models"
    recommendation = "dedupe-models"

    def evaluate(self, ctx: Context) -> list[Finding]:
        out = []
        for g in copy_groups(ctx.tree):
            extra = g.paths[1:]
            frees = dict.fromkeys(extra, g.size)
            cached = [p for p in extra if HF_CACHE_MARK in p]
            note = " (a Hugging Face hub cache next to a copied model)" if cached else ""
            out.append(self.finding(sum(frees.values()), list(g.paths),
                                    f"{len(g.paths)} identical copies of {human(g.size)}: keep /{g.paths[0]}{note}", frees))
        return out


class StaleHfCache(Rule):
    id = "model-hf-cache-stale"
    severity = Severity.LOW
    title = "Hugging Face hub cache blobs no snapshot uses"
    category = "models"
    recommendation = "dedupe-models"

    def evaluate(self, ctx: Context) -> list[Finding]:
        out = []
        for s in stale_hf_blobs(ctx.tree):
            frees = sizes_in(ctx.tree, s.paths)
            out.append(self.finding(s.size_bytes, list(s.paths), f"{plural(len(s.paths), 'stale blob')} in /{s.repo}: {human(s.size_bytes)}", frees))
        return out


class HfCacheCopy(Rule):
    id = "model-hf-cache-copy"
    severity = Severity.MEDIUM
    title = "a Hugging Face hub cache baked in next to a copy of the same model"
    category = "models"
    recommendation = "dedupe-models"

    def evaluate(self, ctx: Context) -> list[Finding]:
        out = []
        for c in hf_cache_copies(ctx.tree):
            frees = sizes_in(ctx.tree, c.blobs)
            out.append(self.finding(
                c.size_bytes, [c.repo, c.copy],
                f"/{c.repo} caches the model also copied to /{c.copy} (same config.json): {human(c.size_bytes)} "
                "of hub cache the server does not need (load from the copy; set HF_HUB_OFFLINE=1)", frees,
                data={"repo": c.repo, "copy": c.copy}))
        return out
