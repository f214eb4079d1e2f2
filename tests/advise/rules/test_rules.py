"""Every rule fires on its fixture, with its own bytes and evidence, and stays silent elsewhere."""

from __future__ import annotations

import pytest

from advisor.advise.facts.mlstack import cpu_torch_size
from advisor.advise.rules import ALL_RULES, Severity, rule_by_id
from tests.advise.rules import fixtures as fx

RULE_IDS = [r.id for r in ALL_RULES]


def _findings(rule_id: str, img: fx.Img) -> list:
    rule = rule_by_id(rule_id)
    assert rule is not None
    return rule.evaluate(img.context())


def test_rule_ids_are_unique_and_kebab_case() -> None:
    assert len(set(RULE_IDS)) == len(RULE_IDS)
    for rid in RULE_IDS:
        assert rid == rid.lower() and " " not in rid and "_" not in rid, rid


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_every_rule_has_a_trigger(rule_id: str) -> None:
    assert rule_id in fx.TRIGGERS, f"rule {rule_id} has no triggering fixture in tests/advise/rules/fixtures.py"


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_rule_triggers_on_its_fixture(rule_id: str) -> None:
    found = _findings(rule_id, fx.TRIGGERS[rule_id]())
    assert found, rule_id
    for f in found:
        assert f.rule == rule_id
        assert f.bytes > 0 and f.paths and f.message
        assert isinstance(f.severity, Severity)


@pytest.mark.parametrize("rule_id", RULE_IDS)
def test_rule_silent_on_a_clean_image(rule_id: str) -> None:
    assert _findings(rule_id, fx.clean()) == []


def test_cuda_torch_bytes_and_cpu_size() -> None:
    ctx = fx.cuda_torch().context()
    (f,) = rule_by_id("ml-cuda-torch").evaluate(ctx)  # type: ignore[union-attr]
    gpu = {"nvidia-cublas", "nvidia-cudnn-cu13", "triton"}
    assert set(f.data["gpu_distributions"]) == gpu
    expected = sum(ctx.dists[k].size_bytes for k in gpu | {"torch"})
    assert f.data["installed_bytes"] == expected
    cpu, exact = cpu_torch_size("2.14.1")
    assert not exact and cpu.version == "2.13.0"
    assert f.bytes == expected - cpu.installed_bytes
    assert f.severity is Severity.CRITICAL  # > 2 GiB saved
    # nvidia/__init__.py is shared by both nvidia wheels: counted once.
    owners = [d.key for d in ctx.scan.distributions if any(p.endswith("site-packages/nvidia/__init__.py") for p in d.files)]
    assert len(owners) == 1
    # sympy, filelock and mpmath stay: the CPU torch needs them too.
    assert not any("sympy" in p or "filelock" in p for p in f.frees)


def test_cuda_rule_silent_on_cpu_torch() -> None:
    assert _findings("ml-cuda-torch", fx.onnx_candidate()) == []


def test_onnx_export_needs_an_exportable_model_and_no_training() -> None:
    (f,) = _findings("ml-onnx-export", fx.onnx_candidate())
    assert set(f.data["removed_distributions"]) == {"torch", "transformers", "safetensors", "filelock", "sympy"}
    assert f.data["models"] == ["app/model"]
    assert _findings("ml-onnx-export", fx.cuda_torch()) == []  # no model in it
    img = fx.onnx_candidate()
    img.layers[1].update(fx.dist("accelerate", "1.0.0", {"accelerate/__init__.py": 100}, ["torch"]))
    assert _findings("ml-onnx-export", img) == []


@pytest.mark.parametrize("model_type", ["xlm-roberta", "deberta-v2", "modernbert", "mpnet"])
def test_onnx_export_offers_what_export_accepts(model_type: str) -> None:
    # advise and export share one verdict (advisor.export.specs.judge): no finding that
    # tells the user to run a command that then refuses the model.
    img = fx.onnx_candidate({"model_type": model_type,
                             "architectures": ["XForSequenceClassification"]})
    (f,) = _findings("ml-onnx-export", img)
    assert f"[{model_type}]" in f.message and "advisor export" in f.message
    assert _findings("ml-model-not-exportable", img) == []


@pytest.mark.parametrize(("config", "why"), [
    ({"model_type": "layoutlm", "architectures": ["LayoutLMForSequenceClassification"]}, "bounding box"),
    ({"model_type": "gpt2", "architectures": ["GPT2ForSequenceClassification"]}, "decoder-only"),
    ({"model_type": "my-encoder", "architectures": ["MyForSequenceClassification"]}, "not one of the encoders"),
    ({"model_type": "bert", "architectures": ["BertForMaskedLM"]}, "head (BertForMaskedLM)"),
    ({"model_type": "bert", "architectures": ["BertForSequenceClassification"], "auto_map": {"x": "y"}},
     "custom code"),
])
def test_a_model_export_refuses_gets_a_finding_that_says_why(config: dict[str, object], why: str) -> None:
    img = fx.onnx_candidate(config)
    assert _findings("ml-onnx-export", img) == []
    (f,) = _findings("ml-model-not-exportable", img)
    assert why in f.message and f.severity is Severity.INFO
    assert f.data["not_exportable"][0]["folder"] == "app/model"
    assert {"torch", "transformers"} <= set(f.data["kept_distributions"])


def test_dev_tools_split_shared_dependencies_once() -> None:
    found = {f.data["distribution"]: f for f in _findings("py-dev-tools", fx.dev_tools())}
    assert set(found) == {"black", "pytest"}
    assert set(found["pytest"].data["removed_distributions"]) == {"pytest", "pluggy", "iniconfig"}
    assert set(found["black"].data["removed_distributions"]) == {"black", "packaging", "pathspec"}
    all_paths = [p for f in found.values() for p in f.frees]
    assert len(all_paths) == len(set(all_paths))
    assert not any("click" in p for p in all_paths)  # flask needs click


def test_dev_tool_required_by_the_app_is_kept() -> None:
    img = fx.dev_tools()
    img.layers[1].update(fx.dist("myapp", "1.0", {"myapp/__init__.py": 10}, ["pytest"]))
    assert {f.data["distribution"] for f in _findings("py-dev-tools", img)} == {"black"}


def test_caches_are_separate_findings() -> None:
    ctx = fx.apt().context()
    lists = rule_by_id("os-apt-lists").evaluate(ctx)  # type: ignore[union-attr]
    archives = rule_by_id("os-apt-archives").evaluate(ctx)  # type: ignore[union-attr]
    assert [f.bytes for f in lists] == [9 * fx.MB]
    assert [f.bytes for f in archives] == [12 * fx.MB + 300_000]


def test_model_formats_keep_one() -> None:
    (f,) = _findings("model-duplicate-formats", fx.model_formats())
    assert f.data["keep"] == "safetensors"
    assert f.bytes == 91 * fx.MB + 92 * fx.MB


def test_model_copies_and_stale_cache() -> None:
    (f,) = _findings("model-duplicate-copies", fx.model_copies())
    assert f.bytes == 2 * fx.MB + 6 and len(f.paths) == 2
    (s,) = _findings("model-hf-cache-stale", fx.hf_cache())
    assert s.bytes == 88 * fx.MB and s.paths[0].endswith("blobs/bbb")


def test_full_base_and_compilers() -> None:
    (f,) = _findings("os-full-base", fx.full_base())
    assert set(f.data["packages"]) == {"gcc-12", "libc6-dev", "perl", "git"}
    assert f.bytes == 31 * fx.MB + 30_000 + 6 * fx.MB + 8 * fx.MB
    assert _findings("os-full-base", fx.compilers()) == []  # one compiler is not a full base
    (c,) = _findings("dockerfile-no-multistage", fx.compilers())
    assert c.data["packages"] == ["gcc-12"]


def test_hidden_bytes_per_layer() -> None:
    (f,) = _findings("layer-hidden-bytes", fx.hidden())
    assert f.bytes == 50 * fx.MB and f.paths == ("opt/big.tar",) and f.data["layer"] == 1


def test_dockerfile_rules_read_history() -> None:
    (p,) = _findings("dockerfile-pip-cache", fx.pip_cache())
    assert p.bytes == 7 * fx.MB
    img = fx.pip_cache()
    img.history[1] = "RUN /bin/sh -c pip install --no-cache-dir flask # buildkit"
    assert _findings("dockerfile-pip-cache", img) == []
    img = fx.apt()
    img.history[1] = "/bin/sh -c apt-get update && apt-get install -y curl && rm -rf /var/lib/apt/lists/*"
    assert _findings("dockerfile-apt-no-cleanup", img) == []
    (c,) = _findings("dockerfile-copy-context", fx.git_and_notebooks())
    assert "app/main.py" not in c.frees and c.bytes == 20 * fx.MB + 21 + 3 * fx.MB


def test_unstripped_saving_matches_strip() -> None:
    img = fx.unstripped_elf()
    (f,) = _findings("lib-unstripped", img)
    files = img.layers[1]
    so = next(v for k, v in files.items() if k.endswith("_ext.cpython-311-x86_64-linux-gnu.so"))
    assert isinstance(so, bytes)
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "x.so"
        p.write_bytes(so)
        subprocess.run(["strip", "--strip-unneeded", str(p)], check=True)
        freed = len(so) - p.stat().st_size
    assert shutil.which("strip")
    assert abs(f.bytes - freed) <= 0.10 * freed, (f.bytes, freed)
    assert all("libclean" not in p for p in f.paths)


def test_dev_tools_behind_a_dev_extra_are_still_reported() -> None:
    img = fx.dev_tools()
    img.layers[1].update(fx.dist("myapp", "1.0", {"myapp/__init__.py": 10},
                                 ["flask", 'pytest; extra == "dev"', 'black; extra == "dev"'], ["dev"]))
    assert {f.data["distribution"] for f in _findings("py-dev-tools", img)} == {"black", "pytest"}


def test_onnx_export_when_the_app_itself_requires_torch() -> None:
    img = fx.onnx_candidate()
    img.layers[1].update(fx.dist("serving-app", "1.0", {"serving_app/__init__.py": 10}, ["transformers[torch]", "torch", "numpy"]))
    (f,) = _findings("ml-onnx-export", img)
    assert f.data["rewrites"] == ["serving-app"]
    assert {"torch", "transformers"} <= set(f.data["removed_distributions"])
    assert "numpy" not in f.data["removed_distributions"]


def test_pip_without_no_cache_dir_but_no_cache_left_is_silent() -> None:
    img = fx.pip_cache()
    img.layers[1] = {"usr/local/lib/python3.11/site-packages/x.py": 10}
    assert _findings("dockerfile-pip-cache", img) == []


def test_formats_in_a_hub_snapshot_count_the_blobs() -> None:
    repo = "root/.cache/huggingface/hub/models--org--bert"
    img = fx.Img([fx.python_base(), {
        f"{repo}/blobs/st": 90 * fx.MB, f"{repo}/blobs/pt": 91 * fx.MB,
        f"{repo}/snapshots/r1/model.safetensors": fx.symlink(f"{repo}/snapshots/r1/model.safetensors", "../../blobs/st"),
        f"{repo}/snapshots/r1/pytorch_model.bin": fx.symlink(f"{repo}/snapshots/r1/pytorch_model.bin", "../../blobs/pt"),
    }])
    (f,) = _findings("model-duplicate-formats", img)
    assert f.bytes == 91 * fx.MB and list(f.frees) == [f"{repo}/blobs/pt"]
    assert _findings("model-hf-cache-stale", img) == []


def test_onnx_export_sees_a_model_in_the_hub_cache() -> None:
    img = fx.onnx_candidate()
    del img.layers[2]["app/model/config.json"]
    repo = "root/.cache/huggingface/hub/models--org--bert"
    snap = f"{repo}/snapshots/r1"
    cfg = '{"model_type": "distilbert", "architectures": ["DistilBertModel"]}'
    img.layers[2].update({
        f"{repo}/blobs/cfg": cfg, f"{repo}/blobs/w": 60 * fx.MB,
        f"{snap}/config.json": fx.symlink(f"{snap}/config.json", "../../blobs/cfg"),
        f"{snap}/model.safetensors": fx.symlink(f"{snap}/model.safetensors", "../../blobs/w"),
    })
    (f,) = _findings("ml-onnx-export", img)
    assert f.data["models"] == [snap] and f.data["model_bytes"] == 60 * fx.MB + len(cfg)


def test_gcc_added_on_a_slim_base_is_not_a_full_base() -> None:
    base = fx.dpkg({"libc6": {"usr/lib/x86_64-linux-gnu/libc.so.6": 2 * fx.MB}})
    user = fx.dpkg({"libc6": {"usr/lib/x86_64-linux-gnu/libc.so.6": 2 * fx.MB},
                    "gcc-12": {"usr/libexec/gcc/x86_64-linux-gnu/12/cc1": 30 * fx.MB},
                    "gcc-12-base": {"usr/share/doc/gcc-12-base/README": 100},
                    "libc6-dev": {"usr/include/stdio.h": 30_000}, "make": {"usr/bin/make": 250_000}})
    img = fx.Img([{**fx.python_base(), **base}, user],
                 ["/bin/sh -c #(nop) ADD file:abc in / ", '/bin/sh -c #(nop)  CMD ["python3"]',
                  "RUN /bin/sh -c apt-get install -y gcc-12 libc6-dev make"])
    img_ctx = img.context()
    assert img_ctx.steps[1].layer is None
    assert rule_by_id("os-full-base").evaluate(img_ctx) == []  # type: ignore[union-attr]
    (c,) = rule_by_id("dockerfile-no-multistage").evaluate(img_ctx)  # type: ignore[union-attr]
    assert c.data["packages"] == ["gcc-12"]


def test_stdlib_bytecode_is_not_a_finding() -> None:
    img = fx.Img([{**fx.python_base(), "usr/local/lib/python3.11/__pycache__/os.cpython-311.pyc": 40_000,
                   "usr/lib/python3.11/__pycache__/re.cpython-311.pyc": 40_000}])
    assert _findings("py-bytecode", img) == []


def test_unused_packages_follow_the_entrypoint() -> None:
    ctx = fx.unused_packages().context()
    assert ctx.app is not None and ctx.app.entry == "app/app.py"
    assert set(ctx.app.files) == {"app/app.py", "app/helpers.py"}
    assert ctx.app_dists == {"flask", "requests", "gunicorn"}
    (f,) = rule_by_id("py-unused-packages").evaluate(ctx)  # type: ignore[union-attr]
    assert f.data["distribution"] == "pandas"
    assert set(f.data["removed_distributions"]) == {"pandas", "numpy", "python-dateutil"}


def test_unused_packages_silent_without_an_entrypoint() -> None:
    img = fx.unused_packages()
    img.cmd = ()
    assert _findings("py-unused-packages", img) == []


def test_hf_cache_copy_needs_the_same_config() -> None:
    (f,) = _findings("model-hf-cache-copy", fx.hf_cache_copy())
    assert f.bytes == 90 * fx.MB + len('{"model_type": "bert", "hidden_size": 384}')
    assert f.data["copy"] == "app/model"
    img = fx.hf_cache_copy()
    img.layers[1]["app/model/config.json"] = '{"model_type": "bert", "hidden_size": 768}'
    assert _findings("model-hf-cache-copy", img) == []


def test_full_base_counts_the_docs_a_slim_base_leaves_out() -> None:
    base = fx.full_base().layers[0]
    docs = {"usr/share/doc/git/changelog.gz": 700_000, "usr/share/doc/git/copyright": 5_000,
            "usr/share/man/man1/git.1.gz": 90_000, "usr/share/locale/de/LC_MESSAGES/git.mo": 600_000}
    user = {"usr/share/doc/myapp/README": 10_000, "app/main.py": "print()\n"}
    img = fx.Img([{**base, **docs}, user],
                 history=["/bin/sh -c #(nop) ADD file:base in / ", "/bin/sh -c #(nop) CMD [\"python3\"]",
                          "/bin/sh -c #(nop) COPY dir:app in / "])
    (f,) = _findings("os-full-base", img)
    # the base's docs, man pages and translations, not its licence texts nor the user's docs
    assert f.bytes == 31 * fx.MB + 30_000 + 6 * fx.MB + 8 * fx.MB + 700_000 + 90_000 + 600_000


def test_full_base_counts_packages_a_slim_python_base_would_not_hold() -> None:
    """Runtime libraries of the -dev packages, pip, wget: gone with a slim base; python3 and
    what it depends on, and the required packages, stay."""
    pkgs = fx.dpkg(
        {"gcc-12": {"usr/libexec/gcc/x86_64-linux-gnu/12/cc1": 30 * fx.MB},
         "libc6-dev": {"usr/include/stdio.h": 30_000}, "git": {"usr/bin/git": 4 * fx.MB},
         "libglib2.0-0": {"usr/lib/x86_64-linux-gnu/libglib-2.0.so.0": 3 * fx.MB},
         "wget": {"usr/bin/wget": 1 * fx.MB},
         "python3": {"usr/bin/python3.11": 6 * fx.MB}, "libssl3": {"usr/lib/x86_64-linux-gnu/libssl.so.3": 2 * fx.MB},
         "libc6": {"usr/lib/x86_64-linux-gnu/libc.so.6": 2 * fx.MB}},
        depends={"python3": "libssl3 (>= 3), libc6", "libssl3": "libc6"})
    img = fx.Img([{**fx.python_base(), **pkgs}, {"app/main.py": "print()\n"}],
                 history=["/bin/sh -c #(nop) ADD file:base in / ", "/bin/sh -c #(nop) CMD [\"python3\"]",
                          "/bin/sh -c #(nop) COPY dir:app in / "])
    (f,) = _findings("os-full-base", img)
    assert f.bytes == 30 * fx.MB + 30_000 + 4 * fx.MB + 3 * fx.MB + 1 * fx.MB
