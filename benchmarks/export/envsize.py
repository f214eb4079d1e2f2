"""What an inference environment weighs, and whether serving in it imports torch.

Run with the interpreter of the environment to measure (it needs only the standard library
and ``packaging``, which both venvs have):

    python envsize.py size  REQ [REQ ...] [--no-deps]   # installed bytes of REQs (+ closure)
    python envsize.py serve advisor   ARTIFACTS_DIR     # advisor's server model, one prediction
    python envsize.py serve optimum   ORT_MODEL_DIR MODEL_DIR  # Optimum's ORTModel (+ tokenizer)

``size`` follows ``Requires-Dist`` (markers evaluated, extras honoured) and sums the files each
distribution's RECORD lists, as installed: the bytes a ``pip install`` of REQs puts on disk.
``serve`` prints the modules a prediction pulled in, so "no torch" is a measurement, not a
claim. Each prints one JSON object.
"""

from __future__ import annotations

import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Any


def installed_bytes(dist: metadata.Distribution) -> int:
    total = 0
    for f in dist.files or ():
        path = Path(str(dist.locate_file(f)))
        if path.is_file():
            total += path.stat().st_size
    return total


def closure(roots: list[str], follow: bool) -> dict[str, int]:
    from packaging.requirements import Requirement
    from packaging.utils import canonicalize_name

    sizes: dict[str, int] = {}
    todo = [Requirement(r) for r in roots]
    while todo:
        req = todo.pop()
        name = canonicalize_name(req.name)
        if name in sizes:
            continue
        try:
            dist = metadata.distribution(req.name)
        except metadata.PackageNotFoundError:
            continue  # an optional dependency this environment does not have
        sizes[name] = installed_bytes(dist)
        if not follow:
            continue
        for text in dist.requires or ():
            dep = Requirement(text)
            env = [{"extra": e} for e in req.extras] or [{"extra": ""}]
            if dep.marker is None or any(dep.marker.evaluate(e) for e in env):
                todo.append(dep)
    return dict(sorted(sizes.items(), key=lambda kv: -kv[1]))


def serve(kind: str, model_dir: str, tokenizer_dir: str = "") -> dict[str, Any]:
    texts = ["a gripping, beautifully acted film", "dull and far too long"]
    if kind == "advisor":
        from advisor.serve.model import Classifier

        labels = [p.label for p in Classifier(model_dir, intra_op_threads=1).predict(texts)]
    else:
        from optimum.onnxruntime import ORTModelForSequenceClassification
        from transformers import AutoTokenizer

        model = ORTModelForSequenceClassification.from_pretrained(model_dir)
        tok = AutoTokenizer.from_pretrained(tokenizer_dir or model_dir)
        logits = model(**tok(texts, padding=True, return_tensors="np")).logits
        labels = [model.config.id2label[int(i)] for i in logits.argmax(-1)]
    heavy = sorted(m for m in ("torch", "transformers", "optimum") if m in sys.modules)
    return {"labels": labels, "imported": heavy, "modules": len(sys.modules)}


def main() -> None:
    mode, *args = sys.argv[1:]
    if mode == "size":
        follow = "--no-deps" not in args
        sizes = closure([a for a in args if not a.startswith("--")], follow)
        print(json.dumps({"total_bytes": sum(sizes.values()), "distributions": sizes}))
    elif mode == "serve":
        print(json.dumps(serve(*args)))
    else:
        raise SystemExit(f"unknown mode {mode}")


if __name__ == "__main__":
    main()
