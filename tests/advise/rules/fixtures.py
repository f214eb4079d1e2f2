"""Small images as dicts of layers, one per rule it must trigger, and the helpers to build them.

``dist()`` writes a distribution the way pip installs one (METADATA, RECORD, INSTALLER) so
the analyses read it exactly as in a real image; sizes given as ints stand for that many
bytes of content.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from advisor.advise.facts.context import Context, ImageFacts
from advisor.oci.filetree import merge_layers
from advisor.oci.model import Entry, EntryKind, HistoryEntry
from tests.advise.localdir import FileSpec, layer_from_files

SITE = "usr/local/lib/python3.11/site-packages"
MB = 1_000_000

Files = dict[str, FileSpec]


def dist(name: str, version: str, files: Mapping[str, FileSpec], requires: Sequence[str] = (),
         extras: Sequence[str] = (), site: str = SITE) -> Files:
    """A pip-installed distribution: its files plus a dist-info that lists them all."""
    info = f"{name.replace('-', '_')}-{version}.dist-info"
    meta = ["Metadata-Version: 2.1", f"Name: {name}", f"Version: {version}"]
    meta += [f"Provides-Extra: {e}" for e in extras] + [f"Requires-Dist: {r}" for r in requires]
    out: Files = {posixpath.normpath(f"{site}/{p}"): spec for p, spec in files.items()}
    out[f"{site}/{info}/METADATA"] = "\n".join(meta) + "\n"
    out[f"{site}/{info}/INSTALLER"] = "pip\n"
    record = [f"{p},," for p in files] + [f"{info}/METADATA,,", f"{info}/INSTALLER,,", f"{info}/RECORD,,"]
    out[f"{site}/{info}/RECORD"] = "\n".join(record) + "\n"
    return out


def symlink(path: str, target: str) -> Entry:
    return Entry(path, EntryKind.SYMLINK, link=target)


def _empty(created_by: str) -> bool:
    """The classic builder's metadata steps (CMD, ENV, ...) make no layer; ADD/COPY do."""
    return "#(nop)" in created_by and not any(k in created_by for k in (" ADD ", " COPY "))


@dataclass
class Img:
    layers: list[Files]
    history: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)
    whiteouts: dict[int, tuple[str, ...]] = field(default_factory=dict)
    cmd: tuple[str, ...] = ()
    working_dir: str = ""

    def context(self) -> Context:
        trees = []
        for i, files in enumerate(self.layers):
            fixed = {p: (Entry(p.strip("/"), s.kind, s.size, link=s.link) if isinstance(s, Entry) else s)
                     for p, s in files.items()}
            trees.append(layer_from_files(fixed, i, whiteouts=self.whiteouts.get(i, ())))
        facts = ImageFacts(reference="test:fixture", env=tuple(self.env), cmd=self.cmd, working_dir=self.working_dir,
                           history=tuple(HistoryEntry(created_by=h, empty_layer=_empty(h)) for h in self.history))
        return Context(facts, tuple(trees), merge_layers(trees).tree)


def python_base() -> Files:
    return {"usr/local/bin/python3.11": 16_000, "usr/local/lib/python3.11/os.py": 40_000,
            "etc/os-release": 'ID=debian\nVERSION_ID="12"\nPRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\n'}


def clean() -> Img:
    """A tidy slim image: nothing any rule should flag."""
    app: Files = {"app/main.py": "import requests\n", "app/requirements.txt": "requests==2.32.3\n"}
    pkgs = {**dist("requests", "2.32.3", {"requests/__init__.py": 5_000, "requests/api.py": 7_000},
                   ["urllib3<3,>=1.21.1", "idna<4,>=2.5", 'PySocks!=1.5.7,>=1.5.6; extra == "socks"'], ["socks"]),
            **dist("urllib3", "2.2.3", {"urllib3/__init__.py": 30_000}),
            **dist("idna", "3.10", {"idna/__init__.py": 20_000})}
    return Img([python_base(), pkgs, app],
               ["/bin/sh -c #(nop) ADD file:abc in / ", "RUN /bin/sh -c pip install --no-cache-dir -r requirements.txt # buildkit",
                "COPY app /app # buildkit"])


def torch_files(version: str, cuda: bool, size: int = 300 * MB) -> Files:
    files: Files = {"torch/__init__.py": 40_000, "torch/lib/libtorch_cpu.so": size}
    if cuda:
        files["torch/lib/libtorch_cuda.so"] = 800 * MB
    requires = ["filelock", "sympy>=1.13"]
    if cuda:
        requires += ['nvidia-cublas==13.0.0; platform_system == "Linux" and platform_machine == "x86_64"',
                     'nvidia-cudnn-cu13==9.13; platform_system == "Linux" and platform_machine == "x86_64"',
                     'triton==3.5.0; platform_system == "Linux" and platform_machine == "x86_64"',
                     'nvidia-cuda-runtime; platform_machine == "aarch64"']
    return dist("torch", version, files, requires)


def nvidia(name: str, sub: str, size: int, requires: Sequence[str] = ()) -> Files:
    return dist(name, "13.0.0", {"nvidia/__init__.py": 0, f"nvidia/{sub}/__init__.py": 100,
                                 f"nvidia/{sub}/lib/lib{sub}.so.13": size}, requires)


def cuda_torch() -> Img:
    pkgs = {**torch_files("2.14.1+cu130", cuda=True),
            **nvidia("nvidia-cublas", "cublas", 700 * MB),
            **nvidia("nvidia-cudnn-cu13", "cudnn", 900 * MB, ["nvidia-cublas"]),
            **dist("triton", "3.5.0", {"triton/__init__.py": 1000, "triton/_C/libtriton.so": 400 * MB}),
            **dist("filelock", "3.16.1", {"filelock/__init__.py": 2000}),
            **dist("sympy", "1.13.3", {"sympy/__init__.py": 30 * MB}, ["mpmath<1.4,>=1.1.0"]),
            **dist("mpmath", "1.3.0", {"mpmath/__init__.py": 3 * MB}),
            **dist("serving-app", "1.0", {"serving_app/__init__.py": 100}, ["torch>=2"])}
    return Img([python_base(), pkgs])


def onnx_candidate(config: dict[str, object] | None = None) -> Img:
    pkgs = {**torch_files("2.13.0+cpu", cuda=False, size=700 * MB),
            **dist("filelock", "3.16.1", {"filelock/__init__.py": 2000}),
            **dist("sympy", "1.13.3", {"sympy/__init__.py": 30 * MB}),
            **dist("transformers", "5.24.0", {"transformers/__init__.py": 100 * MB},
                   ["numpy>=1.17", "tokenizers<0.24,>=0.22", "safetensors>=0.4.3", 'torch>=2.2; extra == "torch"'],
                   ["torch"]),
            **dist("numpy", "2.4.6", {"numpy/__init__.py": 60 * MB}),
            **dist("tokenizers", "0.23.3", {"tokenizers/__init__.py": 8 * MB}),
            **dist("safetensors", "0.6.2", {"safetensors/__init__.py": 1 * MB})}
    config = config or {"model_type": "bert", "architectures": ["BertForSequenceClassification"]}
    model: Files = {"app/model/config.json": json.dumps(config),
             "app/model/model.safetensors": 90 * MB, "app/model/tokenizer.json": 700_000, "app/serve.py": "from transformers import pipeline\n"}
    return Img([python_base(), pkgs, model])


def not_exportable() -> Img:
    """A layout model: transformers' own classes serve it, advisor's export refuses it."""
    return onnx_candidate({"model_type": "layoutlm", "architectures": ["LayoutLMForSequenceClassification"]})


def dev_tools() -> Img:
    pkgs = {**dist("pytest", "8.3.3", {"pytest/__init__.py": 600_000}, ["pluggy<2,>=1.5", "iniconfig", "packaging"]),
            **dist("pluggy", "1.5.0", {"pluggy/__init__.py": 100_000}),
            **dist("iniconfig", "2.0.0", {"iniconfig/__init__.py": 20_000}),
            **dist("packaging", "24.2", {"packaging/__init__.py": 200_000}),
            **dist("black", "24.10.0", {"black/__init__.py": 2 * MB}, ["click>=8.0.0", "packaging>=22.0", "pathspec>=0.9.0"]),
            **dist("click", "8.1.7", {"click/__init__.py": 300_000}),
            **dist("pathspec", "0.12.1", {"pathspec/__init__.py": 90_000}),
            **dist("flask", "3.0.3", {"flask/__init__.py": 400_000}, ["click>=8.1.3"])}
    return Img([python_base(), pkgs])


def pip_cache() -> Img:
    return Img([python_base(), {"root/.cache/pip/http-v2/a/b/c": 5 * MB, "root/.cache/pip/wheels/x.whl": 2 * MB}],
               ["ADD file:abc in /", "RUN /bin/sh -c pip install flask"])


def apt() -> Img:
    return Img([python_base(), {"var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4": 9 * MB,
                                "var/lib/apt/lists/lock": 0,
                                "var/cache/apt/archives/curl_7.88.1_amd64.deb": 300_000,
                                "var/cache/apt/pkgcache.bin": 12 * MB, "usr/bin/curl": 250_000}],
               ["ADD file:abc in /", "/bin/sh -c apt-get update && apt-get install -y curl"])


def model_formats() -> Img:
    return Img([python_base(), {"app/model/config.json": '{"model_type": "bert"}', "app/model/model.safetensors": 90 * MB,
                                "app/model/pytorch_model.bin": 91 * MB, "app/model/onnx/model.onnx": 92 * MB}])


def model_copies() -> Img:
    weights = b"\x08\x00\x00\x00{}" + b"w" * 2 * MB
    return Img([python_base(), {"app/model/model.safetensors": weights, "srv/model/model.safetensors": weights,
                                "srv/other/model.safetensors": b"\x08\x00\x00\x00{}" + b"v" * 2 * MB}])


def hf_cache() -> Img:
    repo = "root/.cache/huggingface/hub/models--org--bert"
    return Img([python_base(), {f"{repo}/blobs/aaa": 90 * MB, f"{repo}/blobs/bbb": 88 * MB, f"{repo}/refs/main": "rev2",
                                f"{repo}/snapshots/rev2/model.safetensors": symlink(f"{repo}/snapshots/rev2/model.safetensors", "../../blobs/aaa")}])


# Priority: required in Debian itself: every base, slim or full, keeps them.
REQUIRED = frozenset({"libc6", "base-files", "dpkg", "bash", "coreutils"})


def dpkg(packages: Mapping[str, Mapping[str, int]], depends: Mapping[str, str] | None = None) -> Files:
    stanzas = []
    files: Files = {}
    for name, owned in packages.items():
        extra = "Priority: required\n" if name in REQUIRED else ""
        extra += f"Depends: {depends[name]}\n" if depends and name in depends else ""
        stanzas.append(f"Package: {name}\nStatus: install ok installed\nArchitecture: amd64\nVersion: 1.0\n{extra}"
                       f"Installed-Size: {sum(owned.values()) // 1024}\n")
        files[f"var/lib/dpkg/info/{name}.list"] = "/.\n" + "".join(f"/{p}\n" for p in owned)
        files.update(owned)
    files["var/lib/dpkg/status"] = "\n".join(stanzas)
    return files


def full_base() -> Img:
    pkgs = dpkg({"gcc-12": {"usr/libexec/gcc/x86_64-linux-gnu/12/cc1": 30 * MB, "usr/bin/x86_64-linux-gnu-gcc-12": 1 * MB},
                 "libc6-dev": {"usr/include/stdio.h": 30_000, "usr/lib/x86_64-linux-gnu/libc.a": 6 * MB},
                 "perl": {"usr/bin/perl": 4 * MB}, "git": {"usr/bin/git": 4 * MB},
                 "libc6": {"usr/lib/x86_64-linux-gnu/libc.so.6": 2 * MB}})
    return Img([{**python_base(), **pkgs}])


def compilers() -> Img:
    return Img([{**python_base(), **dpkg({"gcc-12": {"usr/libexec/gcc/x86_64-linux-gnu/12/cc1": 30 * MB},
                                           "libc6": {"usr/lib/x86_64-linux-gnu/libc.so.6": 2 * MB}})}])


def git_and_notebooks() -> Img:
    return Img([python_base(), {"app/.git/objects/pack/pack-1.pack": 20 * MB, "app/.git/HEAD": "ref: refs/heads/main\n",
                                "app/notebooks/explore.ipynb": 3 * MB, "app/main.py": "print()\n"}],
               ["ADD file:abc in /", "COPY . /app # buildkit"])


def hidden() -> Img:
    return Img([python_base(), {"opt/big.tar": 50 * MB, "opt/keep.txt": 10}, {"opt/other": 1}],
               ["ADD file:abc in /", "RUN /bin/sh -c curl -o /opt/big.tar x", "RUN /bin/sh -c rm /opt/big.tar"],
               whiteouts={2: ("opt/big.tar",)})


def site_leftovers() -> Img:
    return Img([python_base(), {**dist("scipy", "1.14.1", {"scipy/__init__.py": 1000, "scipy/linalg/tests/test_x.py": 4 * MB,
                                                           "scipy/linalg/tests/data/d.npz": 2 * MB}),
                                "usr/lib/x86_64-linux-gnu/libfoo.a": 3 * MB, "usr/include/foo/foo.h": 40_000,
                                "app/__pycache__/main.cpython-311.pyc": 20_000}])


Builder = Callable[[], Img]
# rule id -> the fixture that must trigger it. A rule missing here fails test_every_rule_has_a_trigger.
TRIGGERS: dict[str, Builder] = {
    "ml-onnx-export": onnx_candidate,
    "ml-model-not-exportable": not_exportable,
    "ml-cuda-torch": cuda_torch,
    "py-dev-tools": dev_tools,
    "py-pip-cache": pip_cache,
    "os-apt-lists": apt,
    "os-apt-archives": apt,
    "dockerfile-pip-cache": pip_cache,
    "dockerfile-apt-no-cleanup": apt,
    "model-duplicate-formats": model_formats,
    "model-duplicate-copies": model_copies,
    "model-hf-cache-stale": hf_cache,
    "os-full-base": full_base,
    "dockerfile-no-multistage": compilers,
    "vcs-git-dir": git_and_notebooks,
    "app-notebooks": git_and_notebooks,
    "dockerfile-copy-context": git_and_notebooks,
    "layer-hidden-bytes": hidden,
    "py-tests-in-site-packages": site_leftovers,
    "lib-static": site_leftovers,
    "lib-headers": site_leftovers,
    "py-bytecode": site_leftovers,
    # lib-unstripped needs a real ELF: tests/advise/rules/test_rules.py compiles one with gcc.
}


def unstripped_elf() -> Img:
    """A real shared object built with debug info and symbols (needs gcc), and its stripped twin."""
    import shutil
    import subprocess
    import tempfile
    from pathlib import Path

    import pytest

    if shutil.which("gcc") is None or shutil.which("strip") is None:
        pytest.skip("gcc and binutils are needed to build a real ELF (apt-get install -y gcc binutils)")
    with tempfile.TemporaryDirectory() as d:
        src = Path(d) / "ext.c"
        src.write_text("".join(f"int f{i}(int x) {{ return x * {i} + {i}; }}\n" for i in range(400)))
        so = Path(d) / "ext.so"
        subprocess.run(["gcc", "-g", "-O0", "-shared", "-fPIC", "-o", str(so), str(src)], check=True)
        stripped = Path(d) / "ext-stripped.so"
        subprocess.run(["strip", "--strip-unneeded", "-o", str(stripped), str(so)], check=True)
        data, lean = so.read_bytes(), stripped.read_bytes()
    return Img([python_base(), {f"{SITE}/ext/_ext.cpython-311-x86_64-linux-gnu.so": data,
                                "usr/lib/x86_64-linux-gnu/libclean.so.1": lean}])


TRIGGERS["lib-unstripped"] = unstripped_elf


def secrets() -> Img:
    """A .env with an AWS key pair (AWS's documented example values), deleted later: still shipped."""
    env = "AWS_ACCESS_KEY_ID=AKIAIOSFODNN7EXAMPLE\nAWS_SECRET_ACCESS_KEY=wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY\n"
    return Img([python_base(), {"app/.env": env, "app/main.py": "print()\n"}, {"app/x": 1}],
               ["ADD file:abc in /", "COPY . /app # buildkit", "RUN /bin/sh -c rm /app/.env"],
               whiteouts={2: ("app/.env",)})


TRIGGERS["sec-secrets-in-layers"] = secrets


def unused_packages() -> Img:
    """app.py imports flask and a local helper that imports requests; pandas is never imported."""
    pkgs = {**dist("flask", "3.0.3", {"flask/__init__.py": 400_000}, ["click>=8.1.3"]),
            **dist("click", "8.1.7", {"click/__init__.py": 300_000}),
            **dist("requests", "2.32.3", {"requests/__init__.py": 100_000}, ["idna"]),
            **dist("idna", "3.10", {"idna/__init__.py": 20_000}),
            **dist("pandas", "2.2.3", {"pandas/__init__.py": 40 * MB}, ["numpy>=1.23", "python-dateutil"]),
            **dist("python-dateutil", "2.9.0", {"dateutil/__init__.py": 300_000}),
            **dist("numpy", "2.4.6", {"numpy/__init__.py": 30 * MB}),
            **dist("gunicorn", "23.0.0", {"gunicorn/__init__.py": 200_000, "../../../bin/gunicorn": 200})}
    app: Files = {"app/app.py": "import os\nfrom flask import Flask\nfrom helpers import fetch\n",
                  "app/helpers.py": "import requests\n\ndef fetch():\n    return requests\n",
                  "app/train.py": "import pandas\n"}
    return Img([python_base(), pkgs, app], cmd=("gunicorn", "app:app"), working_dir="/app")


TRIGGERS["py-unused-packages"] = unused_packages


def hf_cache_copy() -> Img:
    """The hub cache holds the safetensors; the app copied a .bin export of the same model."""
    repo = "root/.cache/huggingface/hub/models--org--bert"
    snap = f"{repo}/snapshots/r1"
    config = '{"model_type": "bert", "hidden_size": 384}'
    return Img([python_base(), {
        f"{repo}/blobs/cfg": config, f"{repo}/blobs/w": 90 * MB,
        f"{snap}/config.json": symlink(f"{snap}/config.json", "../../blobs/cfg"),
        f"{snap}/model.safetensors": symlink(f"{snap}/model.safetensors", "../../blobs/w"),
        "app/model/config.json": config, "app/model/pytorch_model.bin": 91 * MB,
    }])


TRIGGERS["model-hf-cache-copy"] = hf_cache_copy


def conda() -> Img:
    return Img([python_base(), {"opt/conda/conda-meta/python-3.11.9-h1.json": "{}",
                                "opt/conda/pkgs/pytorch-2.3.0-py3.11_cuda12.1_0.conda": 900 * MB,
                                "opt/conda/pkgs/pytorch-2.3.0-py3.11_cuda12.1_0/info/index.json": "{}",
                                "opt/conda/lib/libpython3.11.so": 20 * MB}])


TRIGGERS["conda-pkgs-cache"] = conda
