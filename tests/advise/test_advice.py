"""Recommendations: grouped findings, savings that never count a byte twice and that match
the bytes actually freed when each fix is applied to the image's files."""

from __future__ import annotations

import json

from advisor.advise.advice import build_advice
from advisor.advise.facts.mlstack import cpu_torch_size
from advisor.advise.rules.registry import ALL_RULES
from tests.advise.rules import fixtures as fx


def _combined(with_model: bool) -> fx.Img:
    """One image with most problems at once (later dicts win on shared paths)."""
    parts = [fx.cuda_torch(), fx.dev_tools(), fx.apt(), fx.model_formats(), fx.git_and_notebooks(), fx.site_leftovers()]
    if with_model:
        parts.append(fx.onnx_candidate())
    layer1: fx.Files = {}
    for p in parts:
        for files in p.layers[1:]:
            layer1.update(files)
    if with_model:  # keep the CUDA torch, not the onnx fixture's CPU one
        layer1.update(fx.torch_files("2.14.1+cu130", cuda=True))
    layer1["root/.cache/pip/http-v2/a"] = 5 * fx.MB
    layer1["opt/big.tar"] = 50 * fx.MB
    return fx.Img([{**fx.python_base(), **fx.full_base().layers[0]}, layer1, {"opt/x": 1}],
                  ["ADD file:abc in /", "RUN /bin/sh -c pip install -r r.txt && apt-get install -y curl",
                   "RUN /bin/sh -c rm /opt/big.tar"], whiteouts={2: ("opt/big.tar",)})


def _apply(sizes: dict[str, int], frees: dict[str, int]) -> int:
    """Remove (or shrink, for a strip) what a finding's fix changes; return the bytes freed."""
    freed = 0
    for path, saved in frees.items():
        if path in sizes:
            cut = min(saved, sizes[path])
            sizes[path] -= cut
            freed += cut
    return freed


def test_recommendations_match_bytes_freed_when_applied() -> None:
    img = _combined(with_model=False)
    ctx = img.context()
    advice = build_advice(ctx)
    rec_ids = [r.id for r in advice.recommendations]
    assert {"cpu-torch", "remove-dev-tools", "clean-caches", "dedupe-models", "slim-base", "dockerignore",
            "squash-layers", "trim-python"} <= set(rec_ids)
    # The image as files, plus the hidden bytes of each layer under their own keys.
    sizes = {f.path: f.size for f in ctx.tree}
    sizes.update({f"layer{h.layer}:{h.path}": h.size_bytes for h in ctx.hidden})
    priority = [r.id for r in __import__("advisor.advise.rules.recommendations", fromlist=["x"]).RECOMMENDATIONS]
    for rec in sorted(advice.recommendations, key=lambda r: priority.index(r.id)):
        freed = 0
        added = 0
        for i in rec.findings:
            f = advice.findings[i]
            got = _apply(sizes, dict(f.frees))
            freed += got
            if got and f.added_bytes:
                added += f.added_bytes  # the CPU wheel goes back in
        actual = freed - added
        assert abs(rec.estimated_savings_bytes - actual) <= 0.10 * max(actual, 1), (rec.id, rec.estimated_savings_bytes, actual)
    assert advice.total_estimated_savings_bytes == sum(r.estimated_savings_bytes for r in advice.recommendations)
    assert advice.total_estimated_savings_bytes < sum(f.size for f in ctx.tree) + 50 * fx.MB


def test_cuda_swap_is_an_alternative_when_onnx_applies() -> None:
    advice = build_advice(_combined(with_model=True).context())
    recs = {r.id: r for r in advice.recommendations}
    assert recs["onnx-runtime"].estimated_savings_bytes > 0
    cpu = recs["cpu-torch"]
    assert cpu.alternative_to == "onnx-runtime" and cpu.estimated_savings_bytes == 0
    expected_alone = advice.findings[cpu.findings[0]].bytes
    assert cpu.standalone_savings_bytes == expected_alone
    assert expected_alone == advice.findings[cpu.findings[0]].data["installed_bytes"] - cpu_torch_size("2.14.1")[0].installed_bytes


def test_lists_sorted_by_bytes_and_deterministic() -> None:
    a = build_advice(_combined(with_model=False).context())
    b = build_advice(_combined(with_model=False).context())
    from advisor.report.advise import render

    assert render(a, "json") == render(b, "json")
    data = json.loads(render(a, "json"))
    order = ["critical", "high", "medium", "low", "info"]  # findings: the worst first, then bytes
    keys = [(order.index(x["severity"]), -x["bytes"]) for x in data["findings"]]
    assert keys == sorted(keys)
    savings = [x["estimated_savings_bytes"] for x in data["recommendations"]]
    assert savings == sorted(savings, reverse=True)
    dists = [d["size_bytes"] for d in data["python"]["distributions"]]
    assert dists == sorted(dists, reverse=True)


def test_categories_cover_the_image_once() -> None:
    ctx = _combined(with_model=False).context()
    advice = build_advice(ctx)
    assert sum(advice.categories.values()) == ctx.tree.total_size
    assert advice.categories["gpu"] >= 700 * fx.MB + 900 * fx.MB + 800 * fx.MB
    assert advice.categories["dev-tools"] > 0 and advice.categories["caches"] >= 5 * fx.MB


def test_disabled_rules_are_not_run() -> None:
    from advisor.advise.advice import AdviseOptions

    advice = build_advice(fx.apt().context(), AdviseOptions(disabled_rules=frozenset({"os-apt-lists"})))
    assert "os-apt-lists" not in {f.rule for f in advice.findings}
    assert len(ALL_RULES) >= 20


def test_cpu_torch_fix_names_the_version() -> None:
    advice = build_advice(fx.cuda_torch().context())
    (rec,) = [r for r in advice.recommendations if r.id == "cpu-torch"]
    assert "--index-url https://download.pytorch.org/whl/cpu torch==2.14.1" in rec.fix
    assert rec.alternative_to == "" and rec.estimated_savings_bytes == rec.standalone_savings_bytes > 0


def test_standalone_savings_count_shared_files_once() -> None:
    advice = build_advice(fx.apt().context())
    (rec,) = [r for r in advice.recommendations if r.id == "clean-caches"]
    rules = {advice.findings[i].rule for i in rec.findings}
    assert {"os-apt-lists", "dockerfile-apt-no-cleanup"} <= rules  # both name var/lib/apt/lists
    assert rec.standalone_savings_bytes == rec.estimated_savings_bytes == 9 * fx.MB + 12 * fx.MB + 300_000
