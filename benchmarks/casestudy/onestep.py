"""A one-fix variant whose big step changes, measured without rebuilding its 10 GB layer (disk).

Rebuilding the fat image's ``RUN pip install`` layer for each variant needs ~10 GB for the
container and, while buildah commits it, ~10 GB more: on a disk shared by four jobs that ran
it under the 12 GB floor three times (stopped each time). So each variant's big step is
derived from the fat image's real layer instead, in buildah's own store:

- the variant's steps before the big one are built for real by ``build.py`` (buildah's cache
  answers most of them; clean-caches' apt step, slim-base's slim base, are new and small);
- what the big step would install is what pip's resolver says, run inside the fat image
  (``pip install --dry-run --ignore-installed --report`` on the variant's requirements, its
  wheels from the image's own pip cache): the distributions it no longer installs lose
  every file their RECORD lists, and their wheels in pip's cache (named by the zip's own
  central directory, read with ``zipfile``);
- what a same-RUN trim deletes is what the variant's ``find`` expressions match in that
  layer; what ``strip --strip-unneeded`` saves is measured by stripping a copy of each
  shared object, one at a time;
- the layer's size is the tar buildah writes of what remains (``tar_size``: ustar headers,
  PAX only when a name does not fit, 512-byte blocks; on the fat image's 9.7 GB pip layer
  it gives buildah's diff-size to the byte). The steps after it are the article's COPY
  steps: their layers are the fat image's.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
import zipfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import build
import buildah

SITE = "usr/local/lib/python3.11/dist-packages"
PIP_CACHE = "root/.cache/pip"


def tar_size(root: Path, keep: Callable[[str], bool] = lambda rel: True,
             sizes: dict[str, int] | None = None) -> int:  # fmt: skip
    """Bytes of the uncompressed tar of ``root``'s tree as containers/storage writes a layer,
    counting only the files ``keep`` accepts (``sizes`` overrides a file's size) and the
    directories still holding something (or empty from the start)."""
    total = 1024  # the two zero blocks that end an archive
    kept_in: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(root, topdown=False):
        rel_dir = os.path.relpath(dirpath, root)
        count = 0
        for name in filenames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if keep(rel):
                total += _entry_bytes(root, rel, sizes)
                count += 1
        for name in dirnames:
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if os.path.islink(os.path.join(root, rel)):
                if keep(rel):
                    total += _entry_bytes(root, rel, sizes)
                    count += 1
            elif kept_in.get(rel, 0) or not os.listdir(os.path.join(root, rel)):
                total += _entry_bytes(root, rel, sizes)
                count += 1
        kept_in[rel_dir] = count
    return total


def _entry_bytes(root: Path, rel: str, sizes: dict[str, int] | None) -> int:
    full = os.path.join(root, rel)
    st = os.lstat(full)
    info = tarfile.TarInfo(rel + ("/" if stat.S_ISDIR(st.st_mode) else ""))
    info.mtime, info.mode = int(st.st_mtime), stat.S_IMODE(st.st_mode)
    if stat.S_ISREG(st.st_mode):
        info.size = sizes.get(rel, st.st_size) if sizes else st.st_size
    elif stat.S_ISLNK(st.st_mode):
        info.type, info.linkname = tarfile.SYMTYPE, os.readlink(full)
    elif stat.S_ISDIR(st.st_mode):
        info.type = tarfile.DIRTYPE
    try:
        header = info.tobuf(tarfile.USTAR_FORMAT, "utf-8", "strict")
    except ValueError:  # a name or link too long for ustar: a PAX header first
        header = info.tobuf(tarfile.PAX_FORMAT, "utf-8", "surrogateescape")
    return len(header) + (info.size + 511) // 512 * 512


def _buildah(store: buildah.Store, *args: str) -> str:
    proc = subprocess.run([*store.argv(), *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join(proc.stderr.strip().splitlines()[-5:])
        raise SystemExit(f"buildah {args[0]} failed: {tail}")
    return proc.stdout.strip()


def layer_dir(store: buildah.Store, diff_id: str) -> Path:
    """The overlay directory holding the layer with this diff id (its files, unpacked)."""
    layers = json.loads((store.root / "storage" / "overlay-layers" / "layers.json").read_text())
    layer = next(entry["id"] for entry in layers if entry.get("diff-digest") == diff_id)
    return store.root / "storage" / "overlay" / layer / "diff"


def _container_dir(store: buildah.Store, container: str) -> Path:
    containers = json.loads((store.root / "storage" / "overlay-containers" / "containers.json").read_text())
    layer = next(c["layer"] for c in containers if c["id"] == container or container in c.get("names", []))
    return store.root / "storage" / "overlay" / layer / "diff"


def resolve(store: buildah.Store, image: str, requirements: dict[str, Path]) -> dict[str, set[str]]:
    """``name==version`` pip would install for each requirements file, asked in ``image``."""
    container = _buildah(store, "from", "--pull=never", "--quiet", image)
    out: dict[str, set[str]] = {}
    try:
        with tempfile.TemporaryDirectory(prefix="pipconf-measure-") as tmp, build.wheel_server(Path(tmp)) as conf:
            for key, path in requirements.items():
                _buildah(store, "copy", "--quiet", container, str(path), f"/tmp/req-{key}.txt")
                _buildah(store, "run", "--isolation", "chroot", *(f"-v={v}" for v in build.volumes(conf)), container,
                         "--", "pip", "install", "--dry-run", "--ignore-installed", "--quiet",
                         "--report", f"/tmp/report-{key}.json", "-r", f"/tmp/req-{key}.txt")  # fmt: skip
                report = json.loads((_container_dir(store, container) / f"tmp/report-{key}.json").read_text())
                out[key] = {f"{_norm(i['metadata']['name'])}=={i['metadata']['version']}" for i in report["install"]}
    finally:
        _buildah(store, "rm", container)
    return out


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def installed(layer: Path) -> dict[str, set[str]]:
    """``name==version`` -> the layer paths its RECORD lists (console scripts included)."""
    out: dict[str, set[str]] = {}
    for info in sorted((layer / SITE).glob("*.dist-info")):
        meta = (info / "METADATA").read_text(errors="replace")
        name = re.search(r"^Name: (.+)$", meta, re.M)
        version = re.search(r"^Version: (.+)$", meta, re.M)
        if not (name and version and (info / "RECORD").exists()):
            continue
        paths = set()
        for line in (info / "RECORD").read_text(errors="replace").splitlines():
            rel = line.rsplit(",", 2)[0] if line else ""
            if rel:
                paths.add(os.path.normpath(f"{SITE}/{rel}"))
        out[f"{_norm(name.group(1))}=={version.group(1).strip()}"] = paths
    return out


def cached_wheels(layer: Path) -> dict[str, set[str]]:
    """Distribution name -> the files of pip's cache holding its wheel (read as zips)."""
    out: dict[str, set[str]] = {}
    for path in sorted((layer / PIP_CACHE).rglob("*")):
        if not path.is_file():
            continue
        try:
            with zipfile.ZipFile(path) as z:
                names = {n.split("/", 1)[0] for n in z.namelist() if ".dist-info/" in n}
        except (zipfile.BadZipFile, OSError):
            continue  # an index page, or the response's headers
        for info in names:
            out.setdefault(_norm(info.rsplit("-", 1)[0]), set()).add(str(path.relative_to(layer)))
    return out


@dataclass(frozen=True)
class Change:
    """What the variant's big step does differently from the fat image's."""

    requirements: Path | None = None  # the variant's requirements.txt (packages left out)
    trim: bool = False  # trim-python's find expressions, in the same RUN
    strip: bool = False  # strip --strip-unneeded every shared object, in the same RUN
    no_pip_cache: bool = False  # pip install --no-cache-dir
    only: tuple[str, ...] = ()  # keep only these trees (slim-base: COPY --from=build)
    notes: list[str] = field(default_factory=list)


def _trimmed(rel: str) -> bool:
    """Dockerfile.trim's find expressions: tests/, test/, __pycache__ below a package, .a, headers."""
    if not rel.startswith(SITE + "/"):
        return False
    parts = rel[len(SITE) + 1 :].split("/")
    if "__pycache__" in parts[:-1]:  # pip install --no-compile writes none, at any depth
        return True
    if any(p in ("tests", "test") for p in parts[1:-1]):
        return True
    return parts[-1].endswith((".a", ".h", ".hpp", ".hh", ".cuh"))


def _stripped_sizes(layer: Path, paths: Iterable[str]) -> dict[str, int]:
    """Each shared object's size after ``strip --strip-unneeded`` (on a copy, one at a time)."""
    sizes: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="strip-measure-") as tmp:
        copy = Path(tmp) / "so"
        for rel in paths:
            shutil.copyfile(layer / rel, copy)
            proc = subprocess.run(["strip", "--strip-unneeded", str(copy)], capture_output=True, check=False)
            if proc.returncode == 0:
                sizes[rel] = copy.stat().st_size
            copy.unlink()
    return sizes


def step_bytes(store: buildah.Store, fat: build.Result, pip_layer: int, change: Change) -> int:
    """The size of the variant's big-step layer, derived from the fat image's as above."""
    layer = layer_dir(store, fat.built.layers[pip_layer].diff_id)
    gone: set[str] = set()
    if change.requirements is not None:
        files = installed(layer)  # what the article's requirements.txt installed
        wanted = resolve(store, fat.built.tag, {"variant": change.requirements})["variant"]
        names = {d.split("==")[0] for d in wanted}
        left_out = sorted(d for d in files if d.split("==")[0] not in names)
        if other := sorted(wanted - set(files)):
            change.notes.append(f"resolves to what the fat image lacks: {', '.join(other)}")
        wheels = cached_wheels(layer)
        for dist in left_out:
            gone |= files[dist] | wheels.get(dist.split("==")[0], set())
        change.notes.append(f"left out: {', '.join(left_out)}")
    if change.no_pip_cache:
        gone |= {str(p.relative_to(layer)) for p in (layer / PIP_CACHE).rglob("*") if not p.is_dir()}
    sizes = None
    if change.strip:
        objects = [str(p.relative_to(layer)) for p in (layer / SITE).rglob("*.so*")
                   if p.is_file() and not p.is_symlink()]  # fmt: skip
        sizes = _stripped_sizes(layer, objects)

    def keep(rel: str) -> bool:
        if change.only and not rel.startswith(change.only):
            return False
        return rel not in gone and not (change.trim and _trimmed(rel))

    return tar_size(layer, keep, sizes)


@dataclass(frozen=True)
class Measured:
    size_bytes: int  # the variant image, as the sum of its layer tars
    step_bytes: int  # the big step's layer
    seconds: float


def before_step(dockerfile: str, marker: str = "RUN pip install") -> str:
    """The Dockerfile's instructions before its big step."""
    lines = dockerfile.splitlines()
    return "\n".join(lines[: next(i for i, line in enumerate(lines) if line.startswith(marker))]) + "\n"


def measure_variant(name: str, before: str, fat: build.Result, layers: tuple[int, tuple[int, ...]],
                    change: Change, files: dict[str, Path], model_dir: Path | None) -> Measured:  # fmt: skip
    """Build the steps ``before`` the big one for real, derive the big step's layer, add the
    fat image's layers the variant makes again unchanged. ``layers``: the fat image's pip
    layer, and the fat layers reused as they are (the article's COPY steps)."""
    store = buildah.Store()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="onestep-") as tmp:
        head = Path(tmp) / "Dockerfile"
        head.write_text(before)
        prefix = build.build(f"{name}-before", model_dir, quiet=True, files={**files, "Dockerfile": head}, push=False)
    pip_layer, reused = layers
    step = step_bytes(store, fat, pip_layer, change)
    tail = sum(fat.built.layers[i].size_bytes for i in reused)
    return Measured(prefix.built.size_bytes + step + tail, step, time.monotonic() - started)
