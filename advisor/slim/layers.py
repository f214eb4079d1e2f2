"""The three layers advisor adds on top of a base: deps | model | app (and the user entry).

Each is a ``LayerSpec`` (in-image path -> bytes or FileSpec) for ``advisor.oci.tarball``:
ownership root, files world-readable (a non-root server must read the model, whatever mode
the exporter left), fixed mtimes from the tar builder, sorted entries.
"""

from __future__ import annotations

import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from advisor.errors import BuildError
from advisor.oci.tarball import FileSpec, LayerSpec, spec_from_dir

APP_DIR = "app"
DEPS_DIR = "app/deps"
MODEL_DIR = "app/model"
SERVE_PACKAGE = Path(__file__).resolve().parent.parent / "serve"
MODEL_FILES = ("model.onnx", "tokenizer.json", "labels.json", "serving.json")
OPTIONAL_MODEL_FILES = ("validation.json",)


@dataclass(frozen=True, slots=True)
class User:
    name: str = "advisor"
    uid: int = 10001
    gid: int = 10001
    home: str = "/app"


def readable(spec: Mapping[str, FileSpec]) -> dict[str, bytes | FileSpec]:
    """Root-owned, u+rw, go+r (and go+x where anyone could execute), no setuid bits."""
    out: dict[str, bytes | FileSpec] = {}
    for path, fs in spec.items():
        if fs.symlink is not None:
            out[path] = fs
            continue
        mode = fs.mode or 0o644
        mode = 0o755 if fs.dir or mode & 0o111 else 0o644
        out[path] = FileSpec(
            source=fs.source,
            content=fs.content,
            hardlink=fs.hardlink,
            dir=fs.dir,
            mode=mode,
            uid=0,
            gid=0,
        )
    return out


def deps_layer(site_dir: Path) -> dict[str, bytes | FileSpec]:
    return readable(spec_from_dir(site_dir, prefix=DEPS_DIR))


def model_files(artifacts: Path) -> list[Path]:
    """The artifact files the image ships; BuildError when the contract's files are missing."""
    missing = [n for n in MODEL_FILES if not (artifacts / n).is_file()]
    if missing:
        raise BuildError(
            f"artifacts directory {artifacts} lacks {', '.join(missing)}",
            hint="write it with `advisor export SOURCE --artifacts DIR`",
        )
    names = [*MODEL_FILES, *OPTIONAL_MODEL_FILES]
    names += sorted(p.name for p in artifacts.glob("*.onnx.data")) + sorted(
        p.name for p in artifacts.glob("*.onnx_data")
    )
    return sorted({artifacts / n for n in names if (artifacts / n).is_file()})


def model_layer(artifacts: Path) -> dict[str, bytes | FileSpec]:
    return {f"{MODEL_DIR}/{p.name}": FileSpec(source=p, mode=0o644) for p in model_files(artifacts)}


def stage_app(dest: Path) -> Path:
    """Copy the serving package (sources only) into ``dest/advisor/serve``."""
    target = dest / "advisor" / "serve"
    target.mkdir(parents=True)
    for src in sorted(SERVE_PACKAGE.glob("*.py")):
        shutil.copyfile(src, target / src.name)
    return dest


def app_layer(
    app_dir: Path, base_passwd: bytes | None, base_group: bytes | None, user: User
) -> dict[str, bytes | FileSpec]:
    spec = readable(spec_from_dir(app_dir, prefix=APP_DIR))
    spec["etc/passwd"] = FileSpec(
        content=with_user_line(base_passwd, passwd_line(user), user.name), mode=0o644
    )
    spec["etc/group"] = FileSpec(
        content=with_user_line(base_group, group_line(user), user.name), mode=0o644
    )
    return spec


def passwd_line(user: User) -> str:
    return f"{user.name}:x:{user.uid}:{user.gid}:advisor serving user:{user.home}:/usr/sbin/nologin"


def group_line(user: User) -> str:
    return f"{user.name}:x:{user.gid}:"


def with_user_line(base: bytes | None, line: str, name: str) -> bytes:
    """The base's file with ``line`` for ``name`` (replacing an existing entry), or a minimal one."""
    text = base.decode("utf-8", "replace") if base else "root:x:0:0:root:/root:/usr/sbin/nologin\n"
    kept = [row for row in text.splitlines() if row and not row.startswith(f"{name}:")]
    return ("\n".join([*kept, line]) + "\n").encode()


def content_size(spec: LayerSpec) -> int:
    """Regular-file bytes a layer spec ships (what ``docker history`` shows)."""
    total = 0
    for fs in spec.values():
        if isinstance(fs, bytes):
            total += len(fs)
        elif fs.content is not None:
            total += len(fs.content)
        elif fs.source is not None and fs.hardlink is None and fs.symlink is None and not fs.dir:
            total += fs.source.stat().st_size
    return total
