"""Write images deterministically and atomically: OCI layout, oci-archive, docker-archive, registry.

``write_image`` builds the new layers (``advisor.oci.tarball``), copies a base image's layers
blob for blob (every byte verified by the base's source), derives a canonical config and
manifest (sorted-key compact JSON, fixed timestamps), then publishes them in the destination
format. Everything is written into a temporary sibling of the destination and renamed into
place at the end, so an error or Ctrl-C never leaves a half-written image behind; adding a
tag to an existing OCI layout rewrites only its ``index.json``, via temp file and rename.
Same inputs -> same bytes -> same manifest digest.
"""

from __future__ import annotations

import copy
import datetime as _dt
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from advisor.errors import AdvisorError, BadInputError, BuildError
from advisor.fsutil import is_special, replace_target, staging_dir_for
from advisor.oci.model import Image, Layer
from advisor.oci.refs import ImageRef, Transport, as_ref
from advisor.oci.tarball import (
    MEDIA_TYPES_OCI,
    BuiltLayer,
    Compression,
    FileSpec,
    LayerSpec,
    TarOptions,
    build_layer,
    copy_stream,
    default_options,
    write_tar,
)

MANIFEST_MEDIA_TYPE = "application/vnd.oci.image.manifest.v1+json"
INDEX_MEDIA_TYPE = "application/vnd.oci.image.index.v1+json"
CONFIG_MEDIA_TYPE = "application/vnd.oci.image.config.v1+json"
REF_NAME = "org.opencontainers.image.ref.name"

LayerInput = LayerSpec | Path | BuiltLayer


@dataclass(frozen=True, slots=True)
class BlobRecord:
    """A layer as published: stored blob, uncompressed tar digest, media type."""

    digest: str
    size: int
    diff_id: str
    media_type: str


@dataclass(frozen=True, slots=True)
class WrittenImage:
    """What ``write_image`` produced."""

    reference: str
    manifest_digest: str
    config_digest: str
    layers: tuple[BlobRecord, ...]
    manifest: Mapping[str, Any] = field(default_factory=dict)


def canonical_json(obj: Any) -> bytes:
    """Sorted keys, no whitespace, UTF-8: the same object always hashes the same."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def created_timestamp(epoch: int) -> str:
    return _dt.datetime.fromtimestamp(epoch, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# -- staging: blobs in a temporary directory ------------------------------------------------


class _Staging:
    """A temp directory holding ``blobs/sha256/<hex>`` while the image is assembled."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.blobs = root / "blobs" / "sha256"
        self.blobs.mkdir(parents=True)

    def path(self, digest: str) -> Path:
        return self.blobs / digest.split(":", 1)[1]

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        digest = f"sha256:{hashlib.sha256(data).hexdigest()}"
        target = self.path(digest)
        if not target.exists():
            tmp = target.with_name(target.name + ".tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
        return digest, len(data)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's live process
    return True


def _sweep_stale_temps(dest: Path) -> None:
    """Remove temp dirs that a killed writer (SIGKILL, power loss) left beside ``dest``.

    Each temp dir names its writer's pid; only those whose process is gone are removed, so a
    concurrent writer's work is never touched.
    """
    prefix = f".{dest.name}.tmp-"
    for sibling in dest.parent.glob(prefix + "*"):
        pid_text = sibling.name[len(prefix):].split("-", 1)[0]
        if pid_text.isdigit() and not _pid_alive(int(pid_text)):
            shutil.rmtree(sibling, ignore_errors=True)


@contextmanager
def _temp_dir_near(dest: Path) -> Iterator[Path]:
    # Beside the final target, so the last rename is atomic; never inside /dev for /dev/null.
    dest = staging_dir_for(dest) / dest.name
    dest.parent.mkdir(parents=True, exist_ok=True)
    _sweep_stale_temps(dest)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dest.name}.tmp-{os.getpid()}-", dir=dest.parent))
    try:
        yield tmp
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


# -- layers --------------------------------------------------------------------------------


def _add_new_layer(
    layer: LayerInput, staging: _Staging, compression: Compression, opts: TarOptions
) -> BlobRecord:
    if isinstance(layer, BuiltLayer):
        target = staging.path(layer.digest)
        if not target.exists():
            try:  # a blob staged on the same filesystem (advisor fix's layers): no second copy
                os.link(layer.path, target)
            except OSError:
                shutil.copyfile(layer.path, target)
        return BlobRecord(layer.digest, layer.size, layer.diff_id, layer.media_type)
    built = build_layer(layer, staging.blobs, compression, opts)
    return BlobRecord(built.digest, built.size, built.diff_id, built.media_type)


def _copy_base_layer(
    base: Image, layer: Layer, staging: _Staging, uncompressed: bool
) -> BlobRecord:
    """Copy a base layer's blob as is (or decompressed, for docker-archive), verifying it."""
    target = staging.path(layer.blob.digest) if not uncompressed else None
    if target is not None and target.exists():
        return BlobRecord(layer.blob.digest, layer.blob.size, layer.diff_id, _oci_media_type(layer))
    tmp = staging.blobs / f".base-{layer.index}.tmp"
    try:
        with base.source.open_blob(layer.blob) as src, tmp.open("wb") as out:
            if uncompressed:
                from advisor.oci.pump import open_decompressed

                digest, size = copy_stream(open_decompressed(src, layer.compression), out)
                _drain(src)
            else:
                digest, size = copy_stream(src, out)
    except AdvisorError:
        tmp.unlink(missing_ok=True)
        raise
    except (OSError, EOFError, ValueError) as e:
        tmp.unlink(missing_ok=True)
        raise BadInputError(
            f"cannot read base layer {layer.index} ({layer.blob.digest}): {e}",
            hint="the base image is corrupt or unreadable; fetch it again",
        ) from e
    if uncompressed and digest != layer.diff_id:
        tmp.unlink(missing_ok=True)
        raise BadInputError(
            f"base layer {layer.index} decompresses to {digest}, its config says {layer.diff_id}",
            hint="the base image is corrupt; fetch it again",
        )
    os.replace(tmp, staging.path(digest))
    media = MEDIA_TYPES_OCI["none"] if uncompressed else _oci_media_type(layer)
    return BlobRecord(digest, size, layer.diff_id, media)


def _drain(stream: Any) -> None:
    # Read to EOF so a verifying stream checks the compressed blob's digest too.
    while stream.read(1 << 20):
        pass


def _oci_media_type(layer: Layer) -> str:
    mt = layer.blob.media_type
    if mt.startswith("application/vnd.oci.image.layer."):
        return mt
    return MEDIA_TYPES_OCI[layer.compression]


# -- config and manifest -------------------------------------------------------------------


def build_config(
    config: Mapping[str, Any],
    base: Image | None,
    diff_ids: Sequence[str],
    new_layers: int,
    epoch: int,
) -> dict[str, Any]:
    """The image config JSON: the base's (if any), overlaid with ``config``, new rootfs/history.

    ``config["config"]`` is merged key by key into the runtime config; ``config["history"]``
    (if given) must hold one non-empty entry per new layer, else one is generated per layer.
    """
    out: dict[str, Any] = copy.deepcopy(dict(base.config.raw)) if base else {}
    out.setdefault("architecture", "amd64")
    out.setdefault("os", "linux")
    runtime = dict(out.get("config") or {})
    runtime.update(config.get("config") or {})
    out["config"] = runtime
    for key, value in config.items():
        if key not in ("config", "history", "rootfs"):
            out[key] = copy.deepcopy(value)
    created = config.get("created") or created_timestamp(epoch)
    out["created"] = created
    out["rootfs"] = {"type": "layers", "diff_ids": list(diff_ids)}
    out["history"] = [*(out.get("history") or []), *_new_history(config, new_layers, created)]
    return out


def _new_history(config: Mapping[str, Any], new_layers: int, created: str) -> list[dict[str, Any]]:
    given = config.get("history")
    if given is None:
        return [
            {"created": created, "created_by": f"advisor: layer {i}"} for i in range(new_layers)
        ]
    history = [dict(h) for h in given]
    non_empty = sum(1 for h in history if not h.get("empty_layer"))
    if non_empty != new_layers:
        raise BuildError(
            f"history has {non_empty} non-empty entries for {new_layers} new layers",
            hint="give one history entry per layer (mark the others empty_layer: true)",
        )
    for h in history:
        h.setdefault("created", created)
    return history


def _descriptor(media_type: str, digest: str, size: int) -> dict[str, Any]:
    return {"mediaType": media_type, "digest": digest, "size": size}


def build_manifest(
    config_digest: str,
    config_size: int,
    layers: Sequence[BlobRecord],
    annotations: Mapping[str, str] | None,
) -> dict[str, Any]:
    manifest: dict[str, Any] = {
        "schemaVersion": 2,
        "mediaType": MANIFEST_MEDIA_TYPE,
        "config": _descriptor(CONFIG_MEDIA_TYPE, config_digest, config_size),
        "layers": [_descriptor(b.media_type, b.digest, b.size) for b in layers],
    }
    if annotations:
        manifest["annotations"] = dict(sorted(annotations.items()))
    return manifest


# -- the entry point -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Assembled:
    staging: _Staging
    layers: tuple[BlobRecord, ...]
    config_digest: str
    config_bytes: bytes
    manifest: dict[str, Any]
    manifest_bytes: bytes
    manifest_digest: str


def write_image(
    dest: str | ImageRef,
    layers: Sequence[LayerInput],
    config: Mapping[str, Any],
    *,
    base: Image | None = None,
    annotations: Mapping[str, str] | None = None,
    compression: Compression = "gzip",
    tar_options: TarOptions | None = None,
    insecure: bool = False,
) -> WrittenImage:
    """Write an image (``base`` layers, then ``layers``) to ``dest``; return its digests.

    ``insecure`` allows plain HTTP / unverified TLS for a ``docker://`` destination that is
    not on loopback (loopback registries are reached over HTTP as Docker does).
    """
    ref = as_ref(dest)
    if ref.transport not in (
        Transport.OCI,
        Transport.OCI_ARCHIVE,
        Transport.DOCKER_ARCHIVE,
        Transport.REGISTRY,
    ):
        raise BuildError(
            f"cannot write images to {ref}",
            hint="write to oci:, oci-archive:, docker-archive: or docker://",
        )
    opts = tar_options or default_options()
    uncompressed = ref.transport is Transport.DOCKER_ARCHIVE
    comp: Compression = "none" if uncompressed else compression
    anchor = Path(ref.path) if ref.path else Path(tempfile.gettempdir()) / "advisor-push"
    with _temp_dir_near(anchor) as tmp:
        staging = _Staging(tmp / "layout")
        asm = _assemble(staging, layers, config, base, annotations, comp, opts, uncompressed)
        if ref.transport is Transport.REGISTRY:
            _publish_registry(ref, asm, insecure)
        else:
            _PUBLISHERS[ref.transport](ref, asm, tmp)
    return WrittenImage(str(ref), asm.manifest_digest, asm.config_digest, asm.layers, asm.manifest)


def _assemble(
    staging: _Staging,
    layers: Sequence[LayerInput],
    config: Mapping[str, Any],
    base: Image | None,
    annotations: Mapping[str, str] | None,
    compression: Compression,
    opts: TarOptions,
    uncompressed: bool,
) -> _Assembled:
    records: list[BlobRecord] = []
    if base is not None:
        records += [_copy_base_layer(base, layer, staging, uncompressed) for layer in base.layers]
    records += [_add_new_layer(layer, staging, compression, opts) for layer in layers]
    cfg = build_config(config, base, [r.diff_id for r in records], len(layers), opts.mtime)
    config_bytes = canonical_json(cfg)
    config_digest, config_size = staging.put_bytes(config_bytes)
    manifest = build_manifest(config_digest, config_size, records, annotations)
    manifest_bytes = canonical_json(manifest)
    manifest_digest, _ = staging.put_bytes(manifest_bytes)
    return _Assembled(
        staging,
        tuple(records),
        config_digest,
        config_bytes,
        manifest,
        manifest_bytes,
        manifest_digest,
    )


# -- publishers ----------------------------------------------------------------------------


def _index_entry(asm: _Assembled, tag: str) -> dict[str, Any]:
    entry = _descriptor(MANIFEST_MEDIA_TYPE, asm.manifest_digest, len(asm.manifest_bytes))
    if tag:
        entry["annotations"] = {REF_NAME: tag}
    return entry


def _write_layout_files(root: Path, manifests: list[dict[str, Any]]) -> None:
    (root / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    index = {"schemaVersion": 2, "mediaType": INDEX_MEDIA_TYPE, "manifests": manifests}
    tmp = root / "index.json.tmp"
    tmp.write_bytes(canonical_json(index))
    os.replace(tmp, root / "index.json")


def _publish_oci(ref: ImageRef, asm: _Assembled, tmp: Path) -> None:
    dest = replace_target(Path(ref.path))
    entry = _index_entry(asm, ref.tag)
    if not dest.exists():
        _write_layout_files(asm.staging.root, [entry])
        os.replace(asm.staging.root, dest)
        return
    if not (dest / "oci-layout").is_file():
        raise BuildError(
            f"{dest} exists and is not an OCI layout",
            hint="choose a new path or an existing layout",
        )
    _merge_into_layout(dest, asm, entry)


def _merge_into_layout(dest: Path, asm: _Assembled, entry: dict[str, Any]) -> None:
    blobs = dest / "blobs" / "sha256"
    blobs.mkdir(parents=True, exist_ok=True)
    for blob in sorted(asm.staging.blobs.iterdir()):
        if not (blobs / blob.name).exists():
            os.replace(blob, blobs / blob.name)
    try:
        index = json.loads((dest / "index.json").read_bytes())
    except (OSError, ValueError) as e:
        raise BadInputError(
            f"cannot read {dest / 'index.json'}: {e}", hint="the OCI layout is corrupt"
        ) from e
    tag = entry.get("annotations", {}).get(REF_NAME, "")
    kept = [m for m in index.get("manifests", []) if not _same_slot(m, tag, entry["digest"])]
    _write_layout_files(dest, [*kept, entry])


def _same_slot(m: Mapping[str, Any], tag: str, digest: str) -> bool:
    their_tag = (m.get("annotations") or {}).get(REF_NAME, "")
    if tag:
        return bool(their_tag == tag)
    return not their_tag and m.get("digest") == digest


def _publish_oci_archive(ref: ImageRef, asm: _Assembled, tmp: Path) -> None:
    root = asm.staging.root
    _write_layout_files(root, [_index_entry(asm, ref.tag)])
    spec = _spec_of_tree(root)
    _write_archive(Path(ref.path), spec, tmp)


def _publish_docker_archive(ref: ImageRef, asm: _Assembled, tmp: Path) -> None:
    repo_tags = [ref.name.familiar] if ref.name is not None else []
    layer_paths = [f"{r.diff_id.split(':', 1)[1]}/layer.tar" for r in asm.layers]
    config_name = f"{asm.config_digest.split(':', 1)[1]}.json"
    manifest = [{"Config": config_name, "RepoTags": repo_tags, "Layers": layer_paths}]
    spec: dict[str, bytes | FileSpec] = {
        "manifest.json": canonical_json(manifest),
        config_name: asm.config_bytes,
    }
    for record, path in zip(asm.layers, layer_paths, strict=True):
        spec[path] = FileSpec(source=asm.staging.path(record.digest))
    if ref.name is not None and asm.layers:
        name = ref.name
        repo = ref.name.familiar.rsplit(":", 1)[0]
        spec["repositories"] = canonical_json({repo: {name.tag: layer_paths[-1].split("/")[0]}})
    _write_archive(Path(ref.path), spec, tmp)


def _spec_of_tree(root: Path) -> dict[str, bytes | FileSpec]:
    spec: dict[str, bytes | FileSpec] = {}
    for path in sorted(root.rglob("*")):
        rel = path.relative_to(root).as_posix()
        spec[rel] = FileSpec(dir=True) if path.is_dir() else FileSpec(source=path)
    return spec


def _write_archive(dest: Path, spec: Mapping[str, bytes | FileSpec], tmp: Path) -> None:
    if dest.is_dir():
        raise BuildError(f"{dest} is a directory", hint="name an archive file")
    if is_special(dest):  # /dev/null, a pipe: written in place, never renamed over
        with open(dest, "wb") as fh:
            write_tar(spec, fh, TarOptions(mtime=default_options().mtime))
        return
    part = tmp / "archive.tar"  # tmp sits beside the target: the rename below is atomic
    with part.open("wb") as fh:
        write_tar(spec, fh, TarOptions(mtime=default_options().mtime))
    os.replace(part, replace_target(dest))


def _publish_registry(ref: ImageRef, asm: _Assembled, insecure: bool) -> None:
    from advisor.oci.model import Descriptor
    from advisor.oci.sources.registry import RegistryClient

    name = ref.docker_name
    client = RegistryClient(name.registry, insecure=insecure)
    try:
        blobs = [(r.digest, r.size, r.media_type) for r in asm.layers]
        blobs.append((asm.config_digest, len(asm.config_bytes), CONFIG_MEDIA_TYPE))
        for digest, size, media_type in blobs:
            path = asm.staging.path(digest)
            client.push_blob(
                name.repository,
                Descriptor(media_type, digest, size),
                lambda path=path: path.open("rb"),  # type: ignore[misc]
            )
        client.push_manifest(
            name.repository,
            name.reference or asm.manifest_digest,
            MANIFEST_MEDIA_TYPE,
            asm.manifest_bytes,
        )
    finally:
        client.close()


_PUBLISHERS = {
    Transport.OCI: _publish_oci,
    Transport.OCI_ARCHIVE: _publish_oci_archive,
    Transport.DOCKER_ARCHIVE: _publish_docker_archive,
}
