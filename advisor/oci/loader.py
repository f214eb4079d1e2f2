"""Resolve any ImageRef to an ``Image``: index -> manifest -> config, each verified and checked.

``open_image`` picks the source for the reference's transport, walks a multi-platform index
down to the requested platform, and parses the config. The returned ``Image`` owns its source:
close it (``image.close()`` or ``with open_image(...) as image``) to release files, sockets and
temporary files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from advisor.errors import AdvisorError, BadInputError
from advisor.oci.localref import detect, has_transport
from advisor.oci.model import Descriptor, HistoryEntry, Image, ImageConfig, Layer, Platform
from advisor.oci.refs import ImageRef, Transport, as_ref, host_platform, platform_matches
from advisor.oci.sources.base import ManifestSource, check_small
from advisor.oci.sources.manifests import (
    CONFIG_TYPES,
    INDEX_TYPES,
    LAYER_TYPES,
    MANIFEST_TYPES,
    field_of,
    load_json_object,
    parse_descriptor,
    parse_json,
    unknown_media_type,
)

_MAX_INDEX_DEPTH = 4


def open_source(ref: ImageRef, *, insecure: bool = False) -> ManifestSource:
    """The source that reads ``ref``'s transport (not yet resolved to one image)."""
    t = ref.transport
    if t is Transport.OCI:
        from advisor.oci.sources.oci import open_oci_layout

        return open_oci_layout(ref.path, ref.tag, str(ref))
    if t is Transport.OCI_ARCHIVE:
        from advisor.oci.sources.oci import open_oci_archive

        return open_oci_archive(ref.path, ref.tag, str(ref))
    if t is Transport.DOCKER_ARCHIVE:
        from advisor.oci.sources.archive import open_docker_archive

        return open_docker_archive(ref.path, ref.tag, str(ref))
    if t is Transport.REGISTRY:
        from advisor.oci.sources.registry import RegistrySource

        return RegistrySource(ref.docker_name, insecure=insecure)
    if t is Transport.DAEMON:
        from advisor.oci.sources.daemon import open_daemon_image

        return open_daemon_image(ref.docker_name)
    return _open_bare_name(ref, insecure=insecure)


def _open_bare_name(ref: ImageRef, *, insecure: bool) -> ManifestSource:
    source, _ = _bare_name_source(ref, insecure=insecure)
    return source


def _bare_name_source(ref: ImageRef, *, insecure: bool) -> tuple[ManifestSource, str]:
    """The engine's copy if one answers and holds it, else the registry's; and a note saying
    which engine was asked, for an error from the registry."""
    import os

    from advisor.oci.sources.daemon import DockerEngine, ImageNotInEngine, open_daemon_image
    from advisor.oci.sources.registry import RegistrySource

    engine = DockerEngine.from_env()
    at = f"{engine.where} (DOCKER_HOST)" if os.environ.get("DOCKER_HOST") else engine.where
    if engine.answers():
        try:
            return open_daemon_image(ref.docker_name, engine=engine, reference=str(ref)), ""
        except ImageNotInEngine:
            why = f"the Docker engine at {at} does not hold {ref.docker_name.familiar}"
    else:
        why = f"no Docker engine answered at {at}"
    note = f"{why}, so advisor asked the registry {ref.docker_name.registry}"
    return RegistrySource(ref.docker_name, insecure=insecure, reference=str(ref)), note


def open_image(
    ref: str | ImageRef, *, platform: Platform | None = None, insecure: bool = False
) -> Image:
    """Open and resolve one single-platform image; the caller closes it.

    ``platform`` given: an image for another platform is an error (exit 3, as skopeo), also
    when the reference names a single-platform manifest rather than an index.
    """
    if isinstance(ref, str) and not has_transport(ref.strip()):
        ref = detect(ref.strip()) or ref  # a file or directory named without its transport
    parsed = as_ref(ref)
    note = ""
    if parsed.transport is Transport.NAME:
        source, note = _bare_name_source(parsed, insecure=insecure)
    else:
        source = open_source(parsed, insecure=insecure)
    try:
        image = load_image(source, platform or host_platform())
        if platform is not None:
            check_platform(image, platform)
        return image
    except AdvisorError as e:
        source.close()
        if note:
            e.message = f"{e.message} ({note})"
            e.args = (e.message,)
        raise
    except BaseException:
        source.close()
        raise


def check_platform(image: Image, wanted: Platform) -> None:
    cfg = image.config
    variant = str(cfg.raw.get("variant") or "")
    have = Platform(cfg.os, cfg.architecture, variant)
    if cfg.os and cfg.architecture and not platform_matches(wanted, have):
        raise BadInputError(
            f"{image.reference} is an image for {have}, not {wanted}",
            hint=f"drop --platform, or ask for --platform {have}",
        )


def load_image(source: ManifestSource, platform: Platform) -> Image:
    """Resolve ``source``'s root to one manifest for ``platform`` and parse its config."""
    descriptor = source.root()
    body = source.read_manifest(descriptor)
    media_type = _media_type_of(descriptor, body)
    for _ in range(_MAX_INDEX_DEPTH):
        if media_type not in INDEX_TYPES:
            break
        descriptor = select_platform(
            parse_index(body, source.reference), platform, source.reference
        )
        body = source.read_manifest(descriptor)
        media_type = _media_type_of(descriptor, body)
    if media_type not in MANIFEST_TYPES:
        raise unknown_media_type(media_type, f"manifest of {source.reference}")
    manifest = load_json_object(body, f"manifest of {source.reference}")
    config_desc, layer_descs = parse_manifest(manifest, source.reference)
    check_small(config_desc, "config")
    config_bytes = source.read_manifest(config_desc)
    config = parse_config(config_bytes, config_desc.digest, source.reference)
    layers = _layers(layer_descs, config, source.reference)
    return Image(
        reference=source.reference,
        digest=descriptor.digest,
        manifest=manifest,
        config=config,
        layers=layers,
        source=source,
    )


def _media_type_of(descriptor: Descriptor, body: bytes) -> str:
    """The document's own mediaType wins; OCI allows omitting it, then the descriptor's."""
    obj = parse_json(body, f"manifest {descriptor.digest}")
    own = obj.get("mediaType") if isinstance(obj, dict) else None
    if isinstance(own, str) and own:
        return own
    if descriptor.media_type:
        return descriptor.media_type
    if isinstance(obj, dict) and "manifests" in obj:
        return INDEX_TYPES[0]
    return MANIFEST_TYPES[0]


def parse_index(body: bytes, reference: str) -> list[Descriptor]:
    what = f"index of {reference}"
    index = load_json_object(body, what)
    entries = field_of(index, "manifests", list, what)
    return [parse_descriptor(e, f"{what} manifests[{i}]") for i, e in enumerate(entries)]


def select_platform(entries: Sequence[Descriptor], wanted: Platform, reference: str) -> Descriptor:
    """The first entry for ``wanted``, else a nested index to descend into.

    Attestation entries (platform ``unknown/unknown``) never match.
    """
    for entry in entries:
        if entry.platform is not None and platform_matches(wanted, entry.platform):
            return entry
    for entry in entries:  # a nested index without a platform of its own: look inside
        if entry.platform is None and entry.media_type in INDEX_TYPES:
            return entry
    offered = sorted(
        {str(e.platform) for e in entries if e.platform and e.platform.os != "unknown"}
    )
    raise BadInputError(
        f"{reference} has no image for platform {wanted}",
        hint=f"platforms there: {', '.join(offered) or 'none'}; choose one with --platform",
    )


def parse_manifest(
    manifest: Mapping[str, Any], reference: str
) -> tuple[Descriptor, list[Descriptor]]:
    what = f"manifest of {reference}"
    version = field_of(manifest, "schemaVersion", int, what)
    if version != 2:
        raise unknown_media_type(f"schemaVersion {version}", what)
    config = parse_descriptor(field_of(manifest, "config", dict, what), f"{what} config")
    if config.media_type not in CONFIG_TYPES:
        raise unknown_media_type(config.media_type, f"config of {reference}")
    entries = field_of(manifest, "layers", list, what)
    layers = [parse_descriptor(e, f"{what} layers[{i}]") for i, e in enumerate(entries)]
    for layer in layers:
        if layer.media_type not in LAYER_TYPES:
            raise unknown_media_type(layer.media_type, f"layer {layer.digest} of {reference}")
    return config, layers


def parse_config(data: bytes, digest: str, reference: str) -> ImageConfig:
    what = f"config of {reference}"
    raw = load_json_object(data, what)
    rootfs = field_of(raw, "rootfs", dict, what)
    diff_ids = field_of(rootfs, "diff_ids", list, f"{what} rootfs")
    if not all(isinstance(d, str) for d in diff_ids):
        raise BadInputError(f"{what}: rootfs.diff_ids should be digest strings")
    cfg = field_of(raw, "config", dict, what, default={})
    labels = field_of(cfg, "Labels", dict, f"{what} config", default={})
    return ImageConfig(
        digest=digest,
        os=field_of(raw, "os", str, what, default="") or "",
        architecture=field_of(raw, "architecture", str, what, default="") or "",
        diff_ids=tuple(diff_ids),
        history=tuple(_history(raw, what)),
        env=tuple(_strings(cfg, "Env", what)),
        entrypoint=tuple(_strings(cfg, "Entrypoint", what)),
        cmd=tuple(_strings(cfg, "Cmd", what)),
        working_dir=str(cfg.get("WorkingDir") or ""),
        user=str(cfg.get("User") or ""),
        labels={str(k): str(v) for k, v in labels.items()},
        raw=raw,
    )


def _strings(cfg: Mapping[str, Any], key: str, what: str) -> list[str]:
    values = cfg.get(key) or []
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise BadInputError(f"{what}: config.{key} should be a list of strings")
    return values


def _history(raw: Mapping[str, Any], what: str) -> list[HistoryEntry]:
    entries = field_of(raw, "history", list, what, default=[])
    out = []
    for i, h in enumerate(entries):
        if not isinstance(h, dict):
            raise BadInputError(f"{what}: history[{i}] should be an object")
        out.append(
            HistoryEntry(
                created_by=str(h.get("created_by") or ""),
                created=str(h.get("created") or ""),
                comment=str(h.get("comment") or ""),
                empty_layer=bool(h.get("empty_layer", False)),
            )
        )
    return out


def _layers(descs: Sequence[Descriptor], config: ImageConfig, reference: str) -> list[Layer]:
    if len(descs) != len(config.diff_ids):
        raise BadInputError(
            f"{reference}: the manifest lists {len(descs)} layers but the config {len(config.diff_ids)} diff_ids",
            hint="the image is corrupt",
        )
    return [
        Layer(i, d, diff_id)
        for i, (d, diff_id) in enumerate(zip(descs, config.diff_ids, strict=True))
    ]
