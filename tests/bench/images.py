"""Real images for the rootfs benchmark, built without a Docker daemon:

- slim: advisor's own serving image (``build_serving_image``) around the tiny ONNX export,
  on the offline Debian slim base;
- original: the same base plus the torch + transformers packages this very test environment
  imports to run the tiny model (copied from the host's site-packages: cp311 manylinux
  wheels run under Debian's Python 3.11), plus the Hugging Face model folder.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from advisor.oci.tarball import FileSpec, spec_from_dir

SITE = "usr/local/lib/python3.11/dist-packages"
_NOT_NEEDED = ("advisor", "__editable__", "_distutils_hack", "zstandard", "setuptools")

_CLOSURE = r"""
import importlib.metadata as md, json, os, sys
os.environ["HF_HUB_OFFLINE"] = "1"
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer
model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1])
tok = AutoTokenizer.from_pretrained(sys.argv[1])
model(**tok(["hello"], return_tensors="pt", padding="max_length", max_length=8, truncation=True))
site = os.path.dirname(os.path.dirname(torch.__file__))
tops = {os.path.relpath(m.__file__, site).split("/")[0] for m in list(sys.modules.values())
        if (getattr(m, "__file__", None) or "").startswith(site + "/")}
names = set(tops)
for d in md.distributions():
    if any(str(f).split("/")[0] in tops for f in d.files or ()):
        names.add(d._path.name)
names |= {n for n in os.listdir(site) if n.endswith(".libs") and n[:-5] in tops}
print(json.dumps({"site": site, "names": sorted(names)}))
"""


def torch_closure(model_dir: Path) -> tuple[Path, list[str]]:
    """The site-packages entries that loading and running ``model_dir`` imports."""
    out = subprocess.run(
        [sys.executable, "-c", _CLOSURE, str(model_dir)],
        capture_output=True, text=True, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )  # fmt: skip
    doc = json.loads(out.stdout.strip().splitlines()[-1])
    names = [n for n in doc["names"] if not n.startswith(_NOT_NEEDED)]
    return Path(doc["site"]), names


def packages_layer(site: Path, names: list[str]) -> dict[str, bytes | FileSpec]:
    layer: dict[str, bytes | FileSpec] = {}
    for name in names:
        path = site / name
        if path.is_dir():
            spec = spec_from_dir(path, f"{SITE}/{name}", skip_special=True)
            layer.update({k: v for k, v in spec.items() if "/__pycache__" not in k})
        elif path.is_file():
            layer[f"{SITE}/{name}"] = FileSpec(source=path, mode=0o644)
    return layer


def build_original(dest: str, base_ref: str, model_dir: Path) -> str:
    from advisor.oci.loader import open_image
    from advisor.oci.writer import write_image

    site, names = torch_closure(model_dir)
    model = spec_from_dir(model_dir, "srv/models/sentiment")
    config = {
        "config": {
            "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HF_HUB_OFFLINE=1"],
            "Cmd": ["python3"],
            "WorkingDir": "/srv",
        },
        "history": [{"created_by": "pip install torch transformers"}, {"created_by": "COPY model /srv/models/sentiment"}],
    }  # fmt: skip
    with open_image(base_ref) as base:
        written = write_image(dest, [packages_layer(site, names), model], config, base=base)
    return written.reference


def build_slim(dest: str, base_ref: str, artifacts: Path) -> str:
    from advisor.slim.image import BuildConfig, build_serving_image

    return build_serving_image(
        BuildConfig(artifacts=artifacts, destination=dest, base=base_ref)
    ).destination
