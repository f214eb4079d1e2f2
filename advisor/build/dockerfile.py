"""A small, honest, daemonless Dockerfile builder.

It exists so advisor can build realistic images (the fat case study and its fixed variant)
on machines without a Docker engine. The model is Docker's: each stage starts from a base
image (``FROM oci:DIR:TAG``, ``FROM scratch`` or an earlier stage) unpacked into a root
filesystem; each ``RUN`` runs inside it with ``unshare`` (own mount and PID namespaces,
the host's network); the filesystem is snapshotted before and after every step and the
difference becomes a layer (new and changed files, ``.wh.`` whiteouts for deleted paths,
opaque markers for replaced directories), written by ``advisor.oci.tarball``.

Supported: FROM [AS], RUN (shell and exec form), COPY/ADD of local files (``--from``,
``--chown``), ENV, ARG, WORKDIR, USER, EXPOSE, LABEL, CMD, ENTRYPOINT, ``.dockerignore``.
Not supported (a ``BuildError`` says so): ADD of URLs or auto-extraction of archives,
heredocs, SHELL, ONBUILD, HEALTHCHECK, RUN --mount, xattrs (file capabilities).

The final image is cached under ``$ADVISOR_CACHE/casestudy/<key>`` (an OCI layout), where
the key hashes the Dockerfile, the build args, the context files and the base digests.
"""

from __future__ import annotations

import contextlib
import fnmatch
import hashlib
import json
import os
import posixpath
import re
import shlex
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from advisor.errors import BadInputError, BuildError, UsageError

if TYPE_CHECKING:
    from advisor.oci.tarball import Compression

DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"
# Kernel filesystems mounted during RUN: their contents never belong in a layer.
_VIRTUAL_DIRS = ("proc", "sys", "dev")
_TAIL_LINES = 30
_ARCHIVES = (".tar", ".tar.gz", ".tgz", ".tar.bz2", ".tbz2", ".tar.xz", ".txz", ".tar.zst")
_KNOWN = {
    "FROM",
    "RUN",
    "COPY",
    "ADD",
    "ENV",
    "ARG",
    "WORKDIR",
    "USER",
    "EXPOSE",
    "LABEL",
    "CMD",
    "ENTRYPOINT",
}

OutputFn = Callable[[str], None]


# -- configuration and results -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bind:
    """A host path mounted into the root filesystem while a RUN step runs (never in a layer)."""

    host: str
    target: str
    readonly: bool = True


@dataclass(frozen=True)
class BuildConfig:
    """What to build and how. ``binds`` are extra RUN-time mounts (resolv.conf, wheel stores)."""

    context: Path
    dockerfile: Path | None = None  # default: context/Dockerfile
    build_args: Mapping[str, str] = field(default_factory=dict)
    binds: tuple[Bind, ...] = ()
    target: str | None = None
    tag: str = "latest"
    cache_root: Path | None = None  # default: $ADVISOR_CACHE/casestudy
    use_cache: bool = True
    compression: Compression = "gzip"
    on_output: OutputFn | None = None  # receives every line RUN prints, and step banners

    @property
    def dockerfile_path(self) -> Path:
        return self.dockerfile or self.context / "Dockerfile"


@dataclass(frozen=True, slots=True)
class LayerInfo:
    """One layer of the built image: both digests, both sizes, and the line that made it."""

    digest: str
    diff_id: str
    size: int  # bytes of the stored (compressed) blob
    tar_size: int  # bytes of the uncompressed tar
    created_by: str
    media_type: str


@dataclass(frozen=True, slots=True)
class BuildResult:
    """Where the image is (an OCI layout), its manifest digest, its layers, and how long it took."""

    layout: Path
    tag: str
    digest: str
    layers: tuple[LayerInfo, ...]
    history: tuple[Mapping[str, Any], ...]
    cached: bool
    seconds: float  # this call's wall time (a cache hit is fast)
    build_seconds: float = 0.0  # how long the build itself took, kept in the cache record

    @property
    def reference(self) -> str:
        return f"oci:{self.layout}:{self.tag}"

    @property
    def compressed_size(self) -> int:
        return sum(layer.size for layer in self.layers)

    @property
    def tar_size(self) -> int:
        return sum(layer.tar_size for layer in self.layers)


def cache_root() -> Path:
    """``$ADVISOR_CACHE/casestudy`` (default ``~/.cache/advisor/casestudy``)."""
    base = os.environ.get("ADVISOR_CACHE") or str(Path.home() / ".cache" / "advisor")
    return Path(base) / "casestudy"


# -- parsing ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Instruction:
    """One Dockerfile instruction: keyword, ``--flags``, the rest, and its exec-form list if any."""

    line: int
    keyword: str
    value: str
    flags: Mapping[str, str] = field(default_factory=dict)
    exec_form: tuple[str, ...] | None = None

    def __str__(self) -> str:
        flags = "".join(f"--{k}={v} " for k, v in self.flags.items())
        return f"{self.keyword} {flags}{self.value}".strip()


def _logical_lines(text: str) -> Iterator[tuple[int, str]]:
    """Join backslash continuations; drop comments and blank lines (comments inside too)."""
    buf: list[str] = []
    start = 0
    for number, raw in enumerate(text.splitlines(), 1):
        stripped = raw.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if not buf:
            start = number
        if raw.rstrip().endswith("\\"):
            buf.append(raw.rstrip()[:-1])
            continue
        buf.append(raw)
        yield start, " ".join(part.strip() for part in buf if part.strip())
        buf = []
    if buf:
        yield start, " ".join(part.strip() for part in buf if part.strip())


def _split_flags(rest: str) -> tuple[dict[str, str], str]:
    flags: dict[str, str] = {}
    while rest.startswith("--"):
        token, _, rest = rest.partition(" ")
        name, _, value = token[2:].partition("=")
        flags[name] = value
        rest = rest.lstrip()
    return flags, rest


def _exec_form(value: str) -> tuple[str, ...] | None:
    if not value.startswith("["):
        return None
    try:
        parsed = json.loads(value)
    except json.JSONDecodeError:
        return None  # Docker treats malformed JSON as shell form
    if isinstance(parsed, list) and all(isinstance(x, str) for x in parsed):
        return tuple(parsed)
    return None


def parse_dockerfile(text: str) -> tuple[Instruction, ...]:
    """Parse a Dockerfile into instructions; ``UsageError`` for what this builder cannot do."""
    out: list[Instruction] = []
    for line, logical in _logical_lines(text):
        keyword, _, rest = logical.partition(" ")
        keyword = keyword.upper()
        if keyword not in _KNOWN:
            raise UsageError(
                f"Dockerfile line {line}: {keyword} is not supported by advisor's builder",
                hint=f"supported: {', '.join(sorted(_KNOWN))}",
            )
        rest = rest.strip()
        if keyword in ("RUN", "COPY", "ADD") and re.search(r"<<-?['\"]?[A-Za-z_]+", rest):
            raise UsageError(
                f"Dockerfile line {line}: heredocs are not supported", hint="use a script file"
            )
        flags, rest = (
            _split_flags(rest) if keyword in ("FROM", "RUN", "COPY", "ADD") else ({}, rest)
        )
        if keyword == "RUN" and flags:
            raise UsageError(f"Dockerfile line {line}: RUN --{next(iter(flags))} is not supported")
        out.append(Instruction(line, keyword, rest, flags, _exec_form(rest)))
    if not out or out[0].keyword not in ("FROM", "ARG"):
        raise UsageError("a Dockerfile must start with FROM (or ARG before FROM)")
    return tuple(out)


_VAR = re.compile(
    r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::(?P<op>[-+])(?P<word>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))"
)


def substitute(text: str, variables: Mapping[str, str]) -> str:
    """Docker's ``$VAR``, ``${VAR}``, ``${VAR:-default}``, ``${VAR:+alt}`` (``\\$`` escapes)."""

    def repl(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("plain")
        value = variables.get(name, "")
        op = m.group("op")
        if op == "-":
            return value or m.group("word")
        if op == "+":
            return m.group("word") if value else ""
        return value

    parts = text.split("\\$")
    return "$".join(_VAR.sub(repl, part) for part in parts)


# -- base images ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BaseImage:
    """An OCI layout image used by FROM: its blobs stay where they are and are linked in."""

    layout: Path
    tag: str
    digest: str
    config: Mapping[str, Any]
    layers: tuple[Mapping[str, Any], ...]  # manifest layer descriptors


def _read_json(path: Path, what: str) -> dict[str, Any]:
    try:
        data = json.loads(path.read_bytes())
    except (OSError, json.JSONDecodeError) as e:
        raise BadInputError(
            f"cannot read {what} {path}: {e}", hint="rebuild or fetch the image"
        ) from e
    if not isinstance(data, dict):
        raise BadInputError(f"{what} {path} is not a JSON object")
    return data


def _blob_path(layout: Path, digest: str) -> Path:
    algo, _, hexd = digest.partition(":")
    return layout / "blobs" / algo / hexd


def _parse_oci_ref(ref: str) -> tuple[Path, str]:
    if not ref.startswith("oci:"):
        raise UsageError(
            f"FROM {ref}: this builder reads bases from OCI layouts only",
            hint="use FROM oci:DIR:TAG (skopeo copy can make one)",
        )
    path, _, tag = ref[len("oci:") :].partition(":")
    return Path(path), tag


def open_base(ref: str) -> BaseImage:
    """Resolve ``oci:DIR[:TAG]`` to its manifest (one level of nested index for linux/amd64)."""
    layout, tag = _parse_oci_ref(ref)
    index = _read_json(layout / "index.json", "OCI index")
    manifests = index.get("manifests", [])
    chosen = [m for m in manifests if not tag or m.get("annotations", {}).get(REF_NAME) == tag]
    if len(chosen) != 1:
        raise BadInputError(
            f"{ref}: found {len(chosen)} manifests for tag {tag!r}",
            hint="name the tag: oci:DIR:TAG",
        )
    desc = chosen[0]
    if desc.get("mediaType") == OCI_INDEX:
        nested = _read_json(_blob_path(layout, desc["digest"]), "image index")
        amd64 = [
            m
            for m in nested.get("manifests", [])
            if m.get("platform", {}).get("architecture") == "amd64"
        ]
        if not amd64:
            raise BadInputError(f"{ref}: no linux/amd64 image in the index")
        desc = amd64[0]
    manifest = _read_json(_blob_path(layout, desc["digest"]), "manifest")
    config = _read_json(_blob_path(layout, manifest["config"]["digest"]), "image config")
    return BaseImage(layout, tag, desc["digest"], config, tuple(manifest.get("layers", [])))


def _unpack(base: BaseImage, bundle: Path) -> Path:
    """Unpack with umoci (whiteouts, ownership and device nodes handled by a proven tool)."""
    image = f"{base.layout}:{base.tag}" if base.tag else str(base.layout)
    _check_run(["umoci", "unpack", "--image", image, str(bundle)], f"unpack {image}")
    return bundle / "rootfs"


def _check_run(argv: Sequence[str], what: str) -> None:
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, check=False)
    except FileNotFoundError as e:
        raise BuildError(
            f"{what}: {argv[0]} is not installed", hint=f"apt-get install -y {argv[0]}"
        ) from e
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-_TAIL_LINES:])
        raise BuildError(f"{what} failed (exit {proc.returncode}):\n{tail}")


# -- filesystem snapshots and diffs -------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class PathStat:
    """What decides whether a path changed between two snapshots."""

    kind: str  # "f" file, "d" dir, "l" symlink, "o" other
    size: int
    mode: int
    mtime_ns: int
    ino: int
    uid: int
    gid: int
    link: str = ""


Snapshot = dict[str, PathStat]


def _kind(mode: int) -> str:
    if stat.S_ISREG(mode):
        return "f"
    if stat.S_ISDIR(mode):
        return "d"
    if stat.S_ISLNK(mode):
        return "l"
    return "o"


def snapshot(root: Path, skip: Iterable[str] = ()) -> Snapshot:
    """Every path under ``root`` (relative, no leading ``/``); virtual mounts stay unopened."""
    skipped = set(skip)
    out: Snapshot = {}
    stack = [""]
    while stack:
        rel = stack.pop()
        with os.scandir(root / rel if rel else root) as it:
            for entry in it:
                path = f"{rel}/{entry.name}" if rel else entry.name
                if path in skipped:
                    continue
                st = entry.stat(follow_symlinks=False)
                kind = _kind(st.st_mode)
                link = os.readlink(entry.path) if kind == "l" else ""
                size = st.st_size if kind == "f" else 0
                out[path] = PathStat(
                    kind, size, st.st_mode, st.st_mtime_ns, st.st_ino, st.st_uid, st.st_gid, link
                )
                if kind == "d" and path not in _VIRTUAL_DIRS:
                    stack.append(path)
    return out


@dataclass(frozen=True, slots=True)
class Changes:
    """A layer's worth of change: paths to write, paths to white out, directories made opaque."""

    changed: tuple[str, ...]
    deleted: tuple[str, ...]
    opaque: tuple[str, ...]

    def __bool__(self) -> bool:
        return bool(self.changed or self.deleted or self.opaque)


def _parent(path: str) -> str:
    return path.rpartition("/")[0]


def diff_snapshots(before: Snapshot, after: Snapshot) -> Changes:
    """New or changed paths, the topmost deleted paths, and directories that were replaced."""
    opaque = sorted(
        p
        for p, s in after.items()
        if s.kind == "d" and p in before and before[p].kind == "d" and before[p].ino != s.ino
    )
    opaque_set = set(opaque)
    changed = {p for p, s in after.items() if before.get(p) != s}
    for d in opaque:  # a replaced directory ships all of its new content
        prefix = d + "/"
        changed.update(p for p in after if p.startswith(prefix))
    deleted = []
    for p in before:
        if p in after:
            continue
        parent = _parent(p)
        if parent and (parent not in after or after[parent].kind != "d" or parent in opaque_set):
            continue  # the parent's deletion, replacement or opaque marker covers it
        if any(parent == d or parent.startswith(d + "/") for d in opaque):
            continue
        deleted.append(p)
    return Changes(tuple(sorted(changed)), tuple(sorted(deleted)), tuple(opaque))


def _with_parents(paths: Iterable[str]) -> set[str]:
    out: set[str] = set()
    for p in paths:
        parent = _parent(p)
        while parent and parent not in out:
            out.add(parent)
            parent = _parent(parent)
    return out


def layer_spec(root: Path, changes: Changes, after: Snapshot) -> dict[str, Any]:
    """The tarball spec of a layer: real metadata for every path and each of its parents."""
    from advisor.oci.tarball import FileSpec

    spec: dict[str, Any] = {}
    seen_inodes: dict[int, str] = {}
    wanted = set(changes.changed) | _with_parents(
        [*changes.changed, *changes.deleted, *changes.opaque]
    )
    for path in sorted(wanted, key=lambda p: p.split("/")):
        s = after[path]
        perm = stat.S_IMODE(s.mode)
        mtime = s.mtime_ns // 1_000_000_000
        if s.kind == "d":
            spec[path] = FileSpec(
                dir=True,
                mode=perm,
                uid=s.uid,
                gid=s.gid,
                mtime=mtime,
                opaque=path in changes.opaque,
            )
        elif s.kind == "l":
            spec[path] = FileSpec(symlink=s.link, uid=s.uid, gid=s.gid, mtime=mtime)
        elif s.kind == "f" and s.ino in seen_inodes:
            spec[path] = FileSpec(
                hardlink=seen_inodes[s.ino], mode=perm, uid=s.uid, gid=s.gid, mtime=mtime
            )
        elif s.kind == "f":
            seen_inodes[s.ino] = path
            spec[path] = FileSpec(source=root / path, mode=perm, uid=s.uid, gid=s.gid, mtime=mtime)
        # sockets, fifos and device nodes made by a RUN are left out, as Docker's differ does for sockets
    for path in changes.deleted:
        spec[path] = FileSpec(whiteout=True)
    return spec


# -- the build state of one stage --------------------------------------------------------------


@dataclass
class _Stage:
    name: str
    index: int
    rootfs: Path
    config: dict[str, Any]
    layers: list[LayerInfo]
    history: list[dict[str, Any]]
    base_blobs: list[Path]
    snap: Snapshot
    args: dict[str, str]
    record: bool  # write layers (only for the target stage and its FROM ancestors)

    @property
    def env(self) -> dict[str, str]:
        env: dict[str, str] = {}
        for item in self.config.get("Env") or []:
            k, _, v = item.partition("=")
            env[k] = v
        return env

    def set_env(self, key: str, value: str) -> None:
        env = self.env
        env[key] = value
        self.config["Env"] = [f"{k}={v}" for k, v in env.items()]

    @property
    def workdir(self) -> str:
        return str(self.config.get("WorkingDir") or "/")

    def variables(self) -> dict[str, str]:
        return {**self.args, **self.env}


def _now() -> str:
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    when = (
        datetime.fromtimestamp(int(epoch), UTC) if epoch and epoch.isdigit() else datetime.now(UTC)
    )
    return when.strftime("%Y-%m-%dT%H:%M:%SZ")


class _Builder:
    """Runs the instructions of one Dockerfile; ``build_image`` is its public face."""

    def __init__(self, cfg: BuildConfig, work: Path, blobs: Path) -> None:
        self.cfg = cfg
        self.work = work
        self.blobs = blobs
        self.stages: dict[str, _Stage] = {}
        self.global_args: dict[str, str] = {}
        self.ignore = _read_dockerignore(cfg.context)

    def say(self, text: str) -> None:
        if self.cfg.on_output is not None:
            self.cfg.on_output(text)

    # -- stages --------------------------------------------------------------------------
    def run(self, instructions: Sequence[Instruction]) -> _Stage:
        groups = _stages(instructions)
        names = [_stage_name(g[0], i) for i, g in enumerate(groups)]
        target = self.cfg.target or names[-1]
        if target not in names:
            raise UsageError(f"no stage named {target!r}", hint=f"stages: {', '.join(names)}")
        wanted, recorded = _needed_stages(groups, names, target)
        for ins in instructions:
            if ins.keyword != "ARG":
                break
            self._global_arg(ins)
        stage: _Stage | None = None
        for i, group in enumerate(groups):
            if names[i] not in wanted:
                continue
            stage = self._from(group[0], i, names[i], names[i] in recorded)
            for ins in group[1:]:
                self.say(f"[{stage.name}] {ins}")
                self._step(stage, ins)
            self.stages[stage.name] = stage
            if stage.name == target:
                self._commit_pending(stage)
                return stage
        raise BuildError(f"stage {target!r} was never built")  # unreachable: target is in names

    def _global_arg(self, ins: Instruction) -> None:
        name, _, default = ins.value.partition("=")
        self.global_args[name] = self.cfg.build_args.get(name, default)

    def _from(self, ins: Instruction, index: int, name: str, record: bool) -> _Stage:
        ref = substitute(ins.value.split()[0], self.global_args)
        rootfs = self.work / f"stage{index}" / "rootfs"
        if ref in self.stages:
            parent = self.stages[ref]
            rootfs.parent.mkdir(parents=True)
            _check_run(["cp", "-a", str(parent.rootfs), str(rootfs)], f"copy stage {ref}")
            stage = _Stage(
                name,
                index,
                rootfs,
                json.loads(json.dumps(parent.config)),
                list(parent.layers),
                [dict(h) for h in parent.history],
                list(parent.base_blobs),
                {},
                {},
                record,
            )
        elif ref == "scratch":
            rootfs.mkdir(parents=True)
            stage = _Stage(
                name, index, rootfs, {"Env": [f"PATH={DEFAULT_PATH}"]}, [], [], [], {}, {}, record
            )
        else:
            stage = self._from_image(ref, index, name, rootfs.parent, record)
        if record:
            stage.snap = snapshot(rootfs)
        return stage

    def _from_image(self, ref: str, index: int, name: str, bundle: Path, record: bool) -> _Stage:
        base = open_base(ref)
        self.say(f"[{name}] FROM {ref} ({base.digest})")
        rootfs = _unpack(base, bundle)
        diff_ids = base.config.get("rootfs", {}).get("diff_ids", [])
        made_by = [
            h.get("created_by", "")
            for h in base.config.get("history", [])
            if not h.get("empty_layer")
        ]
        made_by += [""] * (len(base.layers) - len(made_by))
        layers = [
            LayerInfo(d["digest"], diff_ids[i], int(d["size"]), -1, made_by[i], d["mediaType"])
            for i, d in enumerate(base.layers)
        ]
        blobs = [_blob_path(base.layout, d["digest"]) for d in base.layers]
        config = dict(base.config.get("config") or {})
        history = [dict(h) for h in base.config.get("history", [])]
        return _Stage(name, index, rootfs, config, layers, history, blobs, {}, {}, record)

    # -- instructions -----------------------------------------------------------------------
    def _step(self, stage: _Stage, ins: Instruction) -> None:
        handler = getattr(self, f"_do_{ins.keyword.lower()}")
        created_by, layered = handler(stage, ins)
        self._commit(stage, created_by, layered)

    def _commit(self, stage: _Stage, created_by: str, layered: bool) -> None:
        entry: dict[str, Any] = {
            "created": _now(),
            "created_by": created_by,
            "comment": "advisor dockerfile builder",
        }
        changes = Changes((), (), ())
        after: Snapshot = {}
        if stage.record and layered:
            after = snapshot(stage.rootfs)
            changes = diff_snapshots(stage.snap, after)
        if not changes:
            entry["empty_layer"] = True
            stage.history.append(entry)
            return
        from advisor.oci.tarball import TarOptions, build_layer

        built = build_layer(
            layer_spec(stage.rootfs, changes, after),
            self.blobs / "sha256",
            self.cfg.compression,
            TarOptions(),
        )
        stage.layers.append(
            LayerInfo(
                built.digest,
                built.diff_id,
                built.size,
                built.tar_size,
                created_by,
                built.media_type,
            )
        )
        stage.history.append(entry)
        stage.snap = after
        self.say(
            f"  -> layer {built.digest[:19]} {built.tar_size:,} bytes ({built.size:,} compressed)"
        )

    def _commit_pending(self, stage: _Stage) -> None:
        """A directory made by a final WORKDIR still needs a layer; nothing else is pending."""
        if stage.record and diff_snapshots(stage.snap, snapshot(stage.rootfs)):
            created_by = f"/bin/sh -c #(nop) WORKDIR {stage.workdir}"
            last = stage.history[-1] if stage.history else {}
            if last.get("created_by") == created_by and last.get("empty_layer"):
                stage.history.pop()  # that WORKDIR is the step that made the layer
            self._commit(stage, created_by, True)

    def _nop(self, text: str) -> str:
        return f"/bin/sh -c #(nop)  {text}"

    def _do_arg(self, stage: _Stage, ins: Instruction) -> tuple[str, bool]:
        name, eq, default = ins.value.partition("=")
        if name in self.cfg.build_args:
            value = self.cfg.build_args[name]
        elif eq:
            value = substitute(default, stage.variables())
        else:
            value = self.global_args.get(name, "")
        stage.args[name] = value
        return self._nop(f"ARG {ins.value}"), False

    def _do_env(self, stage: _Stage, ins: Instruction) -> tuple[str, bool]:
        for key, value in _pairs(ins.value, legacy=True):
            stage.set_env(key, substitute(value, stage.variables()))
        return self._nop(f"ENV {ins.value}"), False

    def _do_label(self, stage: _Stage, ins: Instruction) -> tuple[str, bool]:
        labels = dict(stage.config.get("Labels") or {})
        for key, value in _pairs(ins.value, legacy=False):
            labels[key] = substitute(value, stage.variables())
        stage.config["Labels"] = labels
        return self._nop(f"LABEL {ins.value}"), False

    def _do_expose(self, stage: _Stage, ins: Instruction) -> tuple[str, bool]:
        ports = dict(stage.config.get("ExposedPorts") or {})
        for port in substitute(ins.value, stage.variables()).split():
            ports[port if "/" in port else f"{port}/tcp"] = {}
        stage.config["ExposedPorts"] = ports
        return self._nop(f"EXPOSE {ins.value}"), False

    def _do_user(self, stage: _Stage, ins: Instruction) -> tuple[str, bool]:
        stage.config["User"] = substitute(ins.value, stage.variables())
        return self._nop(f"USER {stage.config['User']}"), False

    def _do_workdir(self, stage: _Stage, ins: Instruction) -> tuple[str, bool]:
        path = posixpath.join(stage.workdir, substitute(ins.value, stage.variables()))
        stage.config["WorkingDir"] = posixpath.normpath(path)
        _mkdirs(stage.rootfs, stage.config["WorkingDir"])
        # Kept out of the layers as the brief's Docker history shows it: a new directory rides
        # with the next layer-making step (its snapshot diff sees it), or with a trailing
        # layer if the stage ends first (``run``).
        return f"/bin/sh -c #(nop) WORKDIR {stage.config['WorkingDir']}", False

    def _do_cmd(self, stage: _Stage, ins: Instruction) -> tuple[str, bool]:
        stage.config["Cmd"] = _command(ins)
        return self._nop(f"CMD {_go_list(stage.config['Cmd'])}"), False

    def _do_entrypoint(self, stage: _Stage, ins: Instruction) -> tuple[str, bool]:
        stage.config["Entrypoint"] = _command(ins)
        stage.config.pop("Cmd", None)  # as Docker: ENTRYPOINT resets an inherited CMD
        return self._nop(f"ENTRYPOINT {_go_list(stage.config['Entrypoint'])}"), False

    def _do_run(self, stage: _Stage, ins: Instruction) -> tuple[str, bool]:
        argv = list(ins.exec_form) if ins.exec_form is not None else ["/bin/sh", "-c", ins.value]
        _run_in_rootfs(stage, argv, self.cfg.binds, str(ins), self.say)
        prefix = (
            f"|{len(stage.args)} "
            + " ".join(f"{k}={v}" for k, v in sorted(stage.args.items()))
            + " "
            if stage.args
            else ""
        )
        shown = f"/bin/sh -c {ins.value}" if ins.exec_form is None else " ".join(ins.exec_form)
        return prefix + shown, True

    def _do_add(self, stage: _Stage, ins: Instruction) -> tuple[str, bool]:
        sources = _copy_args(ins)[0]
        if any(src.startswith(("http://", "https://", "git@")) for src in sources):
            raise BuildError(
                f"line {ins.line}: ADD of a URL is not supported",
                hint="download in a RUN step or use COPY",
            )
        if any(src.endswith(_ARCHIVES) for src in sources):
            raise BuildError(
                f"line {ins.line}: ADD would extract {sources}; not supported",
                hint="use COPY and RUN tar -x",
            )
        return self._copy(stage, ins, "ADD")

    def _do_copy(self, stage: _Stage, ins: Instruction) -> tuple[str, bool]:
        return self._copy(stage, ins, "COPY")

    def _copy(self, stage: _Stage, ins: Instruction, keyword: str) -> tuple[str, bool]:
        sources, dest = _copy_args(ins)
        variables = stage.variables()
        sources = [substitute(s, variables) for s in sources]
        dest = substitute(dest, variables)
        src_stage = ins.flags.get("from")
        if src_stage is not None and src_stage not in self.stages:
            raise BuildError(
                f"line {ins.line}: COPY --from={src_stage}: no such earlier stage",
                hint="name stages with FROM ... AS NAME",
            )
        root = self.stages[src_stage].rootfs if src_stage else self.cfg.context
        ignore = [] if src_stage else self.ignore
        owner = _owner(stage.rootfs, ins.flags.get("chown", ""))
        target = posixpath.normpath(posixpath.join(stage.workdir, dest))
        as_dir = dest.endswith("/") or len(sources) > 1 or dest in (".", "./")
        digest, kind = _copy_sources(
            root, sources, stage.rootfs, target, as_dir, ignore, owner, ins.line
        )
        where = f"--from={src_stage} " if src_stage else ""
        return f"/bin/sh -c #(nop) {keyword} {where}{kind}:{digest} in {dest} ", True


def _stages(instructions: Sequence[Instruction]) -> list[list[Instruction]]:
    groups: list[list[Instruction]] = []
    for ins in instructions:
        if ins.keyword == "FROM":
            groups.append([ins])
        elif groups:
            groups[-1].append(ins)
    return groups


def _stage_name(ins: Instruction, index: int) -> str:
    parts = ins.value.split()
    if len(parts) == 3 and parts[1].lower() == "as":
        return parts[2]
    return str(index)


def _needed_stages(
    groups: list[list[Instruction]], names: list[str], target: str
) -> tuple[set[str], set[str]]:
    """Stages the target needs (as BuildKit skips the rest) and those whose layers it carries."""
    by_name = dict(zip(names, groups, strict=True))
    wanted: set[str] = set()
    recorded: set[str] = set()
    todo = deque([(target, True)])
    while todo:
        name, layered = todo.popleft()
        if layered:
            recorded.add(name)
        if name in wanted and not layered:
            continue
        wanted.add(name)
        group = by_name[name]
        base = group[0].value.split()[0]
        if base in by_name:
            todo.append((base, layered))
        for ins in group:
            src = ins.flags.get("from") if ins.keyword in ("COPY", "ADD") else None
            if src is not None and src in by_name:
                todo.append((src, False))
    return wanted, recorded


def _pairs(text: str, legacy: bool) -> list[tuple[str, str]]:
    """``K=V K2="v 2"`` (and ``ENV K V`` when ``legacy``) into pairs."""
    first = text.split(None, 1)
    if legacy and first and "=" not in first[0]:
        return [(first[0], first[1] if len(first) > 1 else "")]
    out = []
    for token in shlex.split(text, posix=True):
        key, eq, value = token.partition("=")
        if not eq:
            raise UsageError(f"expected KEY=VALUE, got {token!r}")
        out.append((key, value))
    return out


def _command(ins: Instruction) -> list[str]:
    return list(ins.exec_form) if ins.exec_form is not None else ["/bin/sh", "-c", ins.value]


def _go_list(items: Sequence[str]) -> str:
    return "[" + " ".join(json.dumps(x) for x in items) + "]"


def _copy_args(ins: Instruction) -> tuple[list[str], str]:
    parts = list(ins.exec_form) if ins.exec_form is not None else shlex.split(ins.value)
    if len(parts) < 2:
        raise UsageError(f"line {ins.line}: {ins.keyword} needs a source and a destination")
    return parts[:-1], parts[-1]


# -- COPY ---------------------------------------------------------------------------------------


def _read_dockerignore(context: Path) -> list[str]:
    path = context / ".dockerignore"
    if not path.exists():
        return []
    lines = (line.strip() for line in path.read_text().splitlines())
    return [line for line in lines if line and not line.startswith("#")]


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    """A .dockerignore pattern (Go filepath.Match plus ``**``) as a regex over relative paths."""
    pattern = posixpath.normpath(pattern.lstrip("/"))
    out = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            if pattern.startswith("/", i):
                out[-1] = "(?:.*/)?"
                i += 1
            continue
        out.append(
            fnmatch.translate(pattern[i]).removeprefix("(?s:").removesuffix(")\\Z")
            if pattern[i] in "*?["
            else re.escape(pattern[i])
        )
        if pattern[i] == "*":
            out[-1] = "[^/]*"
        elif pattern[i] == "?":
            out[-1] = "[^/]"
        i += 1
    return re.compile("".join(out) + r"(?:/.*)?\Z")


def ignored(path: str, patterns: Sequence[str]) -> bool:
    """Docker's rule: the last matching pattern wins; ``!pattern`` re-includes."""
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern[1:] if negate else pattern
        if _pattern_regex(body).match(path):
            result = not negate
    return result


def _resolve_sources(root: Path, sources: Sequence[str], line: int) -> list[Path]:
    out: list[Path] = []
    for src in sources:
        rel = posixpath.normpath(src.lstrip("/"))
        if rel == ".." or rel.startswith("../"):
            raise BuildError(f"line {line}: COPY source {src!r} is outside the build context")
        matches = (
            sorted(root.glob(rel))
            if any(c in rel for c in "*?[")
            else [root / rel]
            if rel != "."
            else [root]
        )
        if not matches or not all(m.exists() or m.is_symlink() for m in matches):
            raise BuildError(
                f"line {line}: COPY source {src!r} not found in {root}",
                hint="check the path and .dockerignore",
            )
        out.extend(matches)
    return out


def _copy_sources(
    root: Path,
    sources: Sequence[str],
    rootfs: Path,
    target: str,
    as_dir: bool,
    ignore: Sequence[str],
    owner: tuple[int, int],
    line: int,
) -> tuple[str, str]:
    """Copy into the rootfs; return the content digest and kind (``file``/``dir``) for history."""
    digest = hashlib.sha256()
    kinds = set()
    for src in _resolve_sources(root, sources, line):
        is_dir = src.is_dir() and not src.is_symlink()
        kinds.add("dir" if is_dir else "file")
        if is_dir:
            dest = target
            _mkdirs(rootfs, target)
        else:
            dest = (
                posixpath.join(target, src.name) if as_dir or _is_dir_in(rootfs, target) else target
            )
        for rel_src, rel_dest in _walk_copy(root, src, dest, ignore):
            _copy_one(root / rel_src if rel_src else root, rootfs, rel_dest, owner, digest)
    return digest.hexdigest(), "dir" if "dir" in kinds or len(sources) > 1 else "file"


def _is_dir_in(rootfs: Path, path: str) -> bool:
    return (rootfs / path.lstrip("/")).is_dir()


def _walk_copy(
    root: Path, src: Path, dest: str, ignore: Sequence[str]
) -> Iterator[tuple[str, str]]:
    """(source relative to root, destination in the image) pairs; directories before contents."""
    base = src.relative_to(root).as_posix() if src != root else ""
    if not (src.is_dir() and not src.is_symlink()):
        yield base, dest
        return
    # a directory source copies its contents, not the directory itself (Docker's rule)
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for name in sorted([*dirnames, *filenames]):
            full = Path(dirpath) / name
            rel = full.relative_to(root).as_posix()
            if ignore and ignored(rel, ignore):
                if name in dirnames:
                    dirnames.remove(name)
                continue
            yield rel, posixpath.join(dest, full.relative_to(src).as_posix())


def _copy_one(src: Path, rootfs: Path, dest: str, owner: tuple[int, int], digest: Any) -> None:
    out = rootfs / dest.lstrip("/")
    _mkdirs(rootfs, posixpath.dirname(dest))
    st = src.lstat()
    digest.update(f"{dest}\0{stat.S_IMODE(st.st_mode)}\0".encode())
    if stat.S_ISLNK(st.st_mode):
        if out.is_symlink() or out.exists():
            out.unlink()
        os.symlink(os.readlink(src), out)
        digest.update(os.readlink(src).encode())
    elif stat.S_ISDIR(st.st_mode):
        out.mkdir(exist_ok=True)
        os.chmod(out, stat.S_IMODE(st.st_mode))
    else:
        if out.is_symlink():
            out.unlink()
        shutil.copyfile(src, out)
        os.chmod(out, stat.S_IMODE(st.st_mode))
        with out.open("rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    os.lchown(out, *owner)
    os.utime(out, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)


def _mkdirs(rootfs: Path, path: str) -> None:
    current = rootfs
    for part in [p for p in path.split("/") if p]:
        current = current / part
        if current.is_symlink():
            target = os.readlink(current)
            current = (
                rootfs / target.lstrip("/") if target.startswith("/") else current.parent / target
            )
        if not current.exists():
            current.mkdir(mode=0o755)


def _lookup(rootfs: Path, table: str, name: str) -> int | None:
    try:
        lines = (rootfs / "etc" / table).read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split(":")
        if len(fields) > 2 and fields[0] == name:
            return int(fields[2])
    return None


def _owner(rootfs: Path, spec: str) -> tuple[int, int]:
    """``--chown=user[:group]`` (names looked up in the image's /etc/passwd and /etc/group)."""
    if not spec:
        return 0, 0
    user, _, group = spec.partition(":")
    uid = int(user) if user.isdigit() else _lookup(rootfs, "passwd", user)
    if uid is None:
        raise BuildError(f"--chown: no user {user!r} in the image's /etc/passwd")
    if not group:
        return uid, _primary_gid(rootfs, user) if not user.isdigit() else uid
    gid = int(group) if group.isdigit() else _lookup(rootfs, "group", group)
    if gid is None:
        raise BuildError(f"--chown: no group {group!r} in the image's /etc/group")
    return uid, gid


def _primary_gid(rootfs: Path, user: str) -> int:
    for line in (rootfs / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) > 3 and fields[0] == user:
            return int(fields[3])
    return 0


# -- RUN ------------------------------------------------------------------------------------------


def _user_ids(rootfs: Path, user: str) -> tuple[int, int, str] | None:
    """(uid, gid, home) for ``USER``; None for root."""
    if not user or user in ("root", "0", "0:0"):
        return None
    name, _, group = user.partition(":")
    uid = int(name) if name.isdigit() else _lookup(rootfs, "passwd", name)
    if uid is None:
        raise BuildError(f"USER {user}: no such user in the image's /etc/passwd")
    gid = (
        int(group)
        if group.isdigit()
        else (_lookup(rootfs, "group", group) if group else _primary_gid(rootfs, name))
    )
    home = "/"
    for line in (rootfs / "etc" / "passwd").read_text().splitlines():
        fields = line.split(":")
        if len(fields) > 5 and (fields[0] == name or fields[2] == name):
            home = fields[5]
    return uid, gid or 0, home


def _mountpoints(rootfs: Path, binds: Sequence[Bind]) -> list[Path]:
    """Create missing mount targets; return what was created (deepest first) to remove later."""
    created: list[Path] = []
    for bind in binds:
        target = rootfs / bind.target.lstrip("/")
        missing = []
        probe = target
        while not (probe.exists() or probe.is_symlink()):
            missing.append(probe)
            probe = probe.parent
        for path in reversed(missing):
            if path == target and not Path(bind.host).is_dir():
                path.touch()
            else:
                path.mkdir()
            created.append(path)
    return list(reversed(created))


def _remove_mountpoints(created: Sequence[Path]) -> None:
    for path in created:
        if path.is_dir() and not path.is_symlink():
            with contextlib.suppress(OSError):  # the RUN step put files there: they stay
                path.rmdir()
        elif path.exists() and path.stat().st_size == 0:
            path.unlink()


def _mount_script(rootfs: Path, binds: Sequence[Bind], argv: Sequence[str], stage: _Stage) -> str:
    lines = ["set -e", f"mount --rbind /dev {shlex.quote(str(rootfs / 'dev'))}"]
    for bind in binds:
        target = shlex.quote(str(rootfs / bind.target.lstrip("/")))
        lines.append(f"mount --bind {shlex.quote(bind.host)} {target}")
        if bind.readonly:
            lines.append(f"mount -o remount,bind,ro {target}")
    who = _user_ids(rootfs, str(stage.config.get("User") or ""))
    ids = f"--setuid {who[0]} --setgid {who[1]} " if who else ""
    cmd = " ".join(shlex.quote(a) for a in argv)
    lines.append(
        f"exec unshare --pid --fork --kill-child --mount-proc --root={shlex.quote(str(rootfs))} "
        f"--wd={shlex.quote(stage.workdir)} {ids}-- {cmd}"
    )
    return "\n".join(lines)


def _run_env(stage: _Stage) -> dict[str, str]:
    env = {**stage.args, **stage.env}
    env.setdefault("PATH", DEFAULT_PATH)
    who = _user_ids(stage.rootfs, str(stage.config.get("User") or ""))
    env.setdefault("HOME", who[2] if who else "/root")
    return env


def _follow(proc: subprocess.Popen[str], tail: deque[str], say: OutputFn) -> int:
    """Stream the step's output; on interruption kill the step's whole process group."""
    assert proc.stdout is not None
    try:
        for line in proc.stdout:
            tail.append(line.rstrip("\n"))
            say(line.rstrip("\n"))
        return proc.wait()
    except BaseException:
        # the whole group: --kill-child's death signal is dropped when USER makes RUN setuid
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        raise


def _run_in_rootfs(
    stage: _Stage, argv: Sequence[str], binds: Sequence[Bind], step: str, say: OutputFn
) -> None:
    """Run one RUN step in its own mount and PID namespaces; the network stays the host's.

    Binds live in the outer private mount namespace, so they vanish with it: nothing is
    unmounted by hand and nothing leaks to the host; mount targets we had to create are
    removed afterwards so they never reach a layer.
    """
    binds = [b for b in binds if Path(b.host).exists()]
    created = _mountpoints(stage.rootfs, [Bind("/dev", "/dev"), Bind("/proc", "/proc"), *binds])
    script = _mount_script(stage.rootfs, binds, argv, stage)
    tail: deque[str] = deque(maxlen=_TAIL_LINES)
    try:
        proc = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "/bin/sh", "-c", script],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            env=_run_env(stage),
            start_new_session=True,
            text=True,
            errors="replace",
        )
        code = _follow(proc, tail, say)
    finally:
        _remove_mountpoints(created)
    if code != 0:
        raise BuildError(
            f"step '{step}' failed with exit code {code}; last lines:\n" + "\n".join(tail),
            hint="fix the command, or run it by hand: unshare --mount --pid --fork --mount-proc --root=ROOTFS",
        )


# -- output ----------------------------------------------------------------------------------------


def _image_config(stage: _Stage) -> dict[str, Any]:
    return {
        "created": _now(),
        "architecture": "amd64",
        "os": "linux",
        "config": {k: v for k, v in sorted(stage.config.items()) if v not in (None, "", [], {})},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in stage.layers]},
        "history": stage.history,
    }


def _write_blob(blobs: Path, data: bytes) -> dict[str, Any]:
    digest = hashlib.sha256(data).hexdigest()
    path = blobs / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return {"digest": f"sha256:{digest}", "size": len(data)}


def _link_or_copy(src: Path, dst: Path) -> None:
    if dst.exists():
        return
    dst.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.link(src, dst)
    except OSError:
        shutil.copyfile(src, dst)


def _canonical(obj: Any) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def write_layout(layout: Path, stage: _Stage, tag: str) -> str:
    """Write the stage as an OCI image layout (base blobs linked in); return the manifest digest."""
    blobs = layout / "blobs"
    for path, layer in zip(stage.base_blobs, stage.layers, strict=False):
        _link_or_copy(path, blobs / "sha256" / layer.digest.partition(":")[2])
    config = _write_blob(blobs, _canonical(_image_config(stage)))
    manifest = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "config": {"mediaType": OCI_CONFIG, **config},
        "layers": [
            {"mediaType": layer.media_type, "digest": layer.digest, "size": layer.size}
            for layer in stage.layers
        ],
    }
    man = _write_blob(blobs, _canonical(manifest))
    index = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_MANIFEST, **man, "annotations": {REF_NAME: tag}}],
    }
    (layout / "index.json").write_bytes(_canonical(index))
    (layout / "oci-layout").write_bytes(_canonical({"imageLayoutVersion": "1.0.0"}))
    return str(man["digest"])


def _layer_tar_sizes(stage: _Stage) -> list[LayerInfo]:
    """Fill the uncompressed size of base layers (unknown until their blobs are read once)."""
    from advisor.oci.pump import open_decompressed

    out = []
    for i, layer in enumerate(stage.layers):
        if layer.tar_size >= 0:
            out.append(layer)
            continue
        size = 0
        with stage.base_blobs[i].open("rb") as raw, open_decompressed(raw) as stream:
            while chunk := stream.read(1 << 20):
                size += len(chunk)
        out.append(
            LayerInfo(
                layer.digest, layer.diff_id, layer.size, size, layer.created_by, layer.media_type
            )
        )
    return out


def _result_record(
    layers: Sequence[LayerInfo], history: Sequence[Mapping[str, Any]], digest: str, tag: str
) -> dict[str, Any]:
    return {
        "digest": digest,
        "tag": tag,
        "layers": [_layer_dict(layer) for layer in layers],
        "history": list(history),
    }


def _layer_dict(layer: LayerInfo) -> dict[str, Any]:
    return {
        "digest": layer.digest,
        "diff_id": layer.diff_id,
        "size": layer.size,
        "tar_size": layer.tar_size,
        "created_by": layer.created_by,
        "media_type": layer.media_type,
    }


def _load_result(layout: Path, seconds: float) -> BuildResult:
    record = _read_json(layout / "advisor-build.json", "build record")
    layers = tuple(LayerInfo(**item) for item in record["layers"])
    built = float(record.get("build_seconds", 0.0))
    return BuildResult(
        layout,
        record["tag"],
        record["digest"],
        layers,
        tuple(record["history"]),
        True,
        seconds,
        built,
    )


# -- cache key and the public entry point ------------------------------------------------------------


def _context_files(context: Path, ignore: Sequence[str]) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(context):
        dirnames.sort()
        rel_dir = Path(dirpath).relative_to(context).as_posix()
        for name in list(dirnames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if ignore and ignored(rel, ignore):
                dirnames.remove(name)
        for name in sorted(filenames):
            rel = name if rel_dir == "." else f"{rel_dir}/{name}"
            if not (ignore and ignored(rel, ignore)):
                yield Path(dirpath) / name


def cache_key(cfg: BuildConfig, instructions: Sequence[Instruction]) -> str:
    """Hash of the Dockerfile, build args, target, context files (minus ignored) and base digests."""
    h = hashlib.sha256()
    h.update(cfg.dockerfile_path.read_bytes())
    h.update(
        _canonical(
            {
                "args": dict(cfg.build_args),
                "target": cfg.target,
                "tag": cfg.tag,
                "compression": cfg.compression,
                # where RUN steps look for things changes what they install; the host
                # contents of the binds do not enter the key (a loopback port would churn it)
                "binds": sorted(b.target for b in cfg.binds),
            }
        )
    )
    global_args = {
        i.value.partition("=")[0]: cfg.build_args.get(
            i.value.partition("=")[0], i.value.partition("=")[2]
        )
        for i in instructions
        if i.keyword == "ARG"
    }
    for ins in instructions:
        ref = substitute(ins.value.split()[0], global_args) if ins.keyword == "FROM" else ""
        if ref.startswith("oci:"):
            h.update(open_base(ref).digest.encode())
    ignore = _read_dockerignore(cfg.context)
    for path in _context_files(cfg.context, ignore):
        st = path.lstat()
        h.update(
            f"{path.relative_to(cfg.context).as_posix()}\0{stat.S_IMODE(st.st_mode)}\0".encode()
        )
        if stat.S_ISLNK(st.st_mode):
            h.update(os.readlink(path).encode())
        elif stat.S_ISREG(st.st_mode):
            with path.open("rb") as fh:
                h.update(hashlib.file_digest(fh, "sha256").digest())
    return h.hexdigest()[:24]


def build_image(cfg: BuildConfig) -> BuildResult:
    """Build the Dockerfile (or reuse the cached image with the same key); return where it is."""
    started = time.monotonic()
    try:
        instructions = parse_dockerfile(cfg.dockerfile_path.read_text())
    except OSError as e:
        raise BadInputError(f"cannot read {cfg.dockerfile_path}: {e}") from e
    root = cfg.cache_root or cache_root()
    layout = root / cache_key(cfg, instructions)
    if cfg.use_cache and (layout / "advisor-build.json").exists():
        return _load_result(layout, time.monotonic() - started)
    root.mkdir(parents=True, exist_ok=True)
    tmp_layout = Path(tempfile.mkdtemp(prefix=f".{layout.name}-", dir=root))
    work = Path(tempfile.mkdtemp(prefix=".work-", dir=root))
    try:
        builder = _Builder(cfg, work, tmp_layout / "blobs")
        stage = builder.run(instructions)
        stage.layers = _layer_tar_sizes(stage)
        digest = write_layout(tmp_layout, stage, cfg.tag)
        record = _result_record(stage.layers, stage.history, digest, cfg.tag)
        record["build_seconds"] = round(time.monotonic() - started, 2)
        (tmp_layout / "advisor-build.json").write_text(json.dumps(record, indent=1, sort_keys=True))
        if layout.exists():
            shutil.rmtree(layout)
        os.replace(tmp_layout, layout)
    finally:
        _remove_tree(work)
        _remove_tree(tmp_layout)
    seconds = time.monotonic() - started
    return BuildResult(
        layout, cfg.tag, digest, tuple(stage.layers), tuple(stage.history), False, seconds, seconds
    )


def _remove_tree(path: Path) -> None:
    """``rm -rf`` (several times faster than ``shutil.rmtree`` on a multi-GB root filesystem)."""
    if path.exists():
        subprocess.run(["rm", "-rf", "--one-file-system", str(path)], check=False)


def export_image(result: BuildResult, dest: str) -> str:
    """Copy the built image to any writable reference (``oci:``, ``oci-archive:``,
    ``docker-archive:``, ``docker://``) with advisor's image writer; return the manifest digest.

    The writer re-derives the config (its fixed ``created`` stamp), so the digest at ``dest``
    may differ from the cached layout's; layers and history are kept byte for byte.
    """
    from advisor.oci.loader import open_image
    from advisor.oci.writer import write_image

    image = open_image(result.reference)
    try:
        return write_image(dest, [], {}, base=image).manifest_digest
    finally:
        image.source.close()


def image_from_rootfs(
    rootfs: Path, layout: Path, tag: str, config: Mapping[str, Any], created_by: str
) -> str:
    """Write a root filesystem as a one-layer OCI layout (a base image); return its digest.

    Ownership, modes, links and mtimes come from disk; device nodes and sockets are left out
    (a runtime mounts /dev), as in the official base images.
    """
    from advisor.oci.tarball import TarOptions, build_layer

    after = snapshot(rootfs)
    changes = Changes(tuple(sorted(after)), (), ())
    built = build_layer(
        layer_spec(rootfs, changes, after), layout / "blobs" / "sha256", "gzip", TarOptions()
    )
    layer = LayerInfo(
        built.digest, built.diff_id, built.size, built.tar_size, created_by, built.media_type
    )
    entry = {"created": _now(), "created_by": created_by, "comment": "advisor dockerfile builder"}
    stage = _Stage("base", 0, rootfs, dict(config), [layer], [entry], [], after, {}, True)
    digest = write_layout(layout, stage, tag)
    record = _result_record(stage.layers, stage.history, digest, tag)
    (layout / "advisor-build.json").write_text(json.dumps(record, indent=1, sort_keys=True))
    return digest


def load_result(layout: Path) -> BuildResult:
    """The build record of a layout this module wrote (for reports on cached images)."""
    return _load_result(layout, 0.0)
